/**
 * `secretsync check`: validates the map and the roots without any network.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { createLogger, type Logger } from "../log.ts";
import { type Entry, formatProblems, parseMap } from "../map.ts";
import { accessProblems } from "../permissions.ts";
import { targetLabel } from "../plan.ts";
import { recipeProblems, type RecipeRegistry } from "../recipes.ts";
import { directoryProblems } from "../roots.ts";
import { quoted } from "../text.ts";
import { readTrustedText } from "../trusted_file.ts";
import { openRecipes } from "./recipe.ts";
import { collect, rootsSchema, validateOptions } from "./usage.ts";

/** Default map file, as in the original tool. */
export const DEFAULT_MAP = "/etc/oci-secretsync/map.csv";
/** Largest map accepted: about 80,000 lines, far beyond one host's secrets. */
export const MAX_MAP_BYTES = 8 << 20;
/** Map problems printed; the rest are counted in one last line. */
export const MAX_PROBLEMS_SHOWN = 20;

/** Parsed options of `secretsync check`. */
export interface CheckOptions {
  map: string;
  roots: string[];
  json: boolean;
  /** `--recipes-dir` when given; else the default directory, which may be missing. */
  recipesDir?: string;
  /** `--allow-stop-signals`: the map may reload with KILL, STOP, TERM, INT or QUIT. */
  allowStopSignals: boolean;
}

const checkSchema = z.object({
  map: z.string().min(1, "--map must name a file"),
  roots: rootsSchema,
  json: z.boolean(),
  recipesDir: z.string().min(1, "--recipes-dir must name a directory").optional(),
  allowStopSignals: z.boolean(),
});

/** Declares `check` and its flags. */
export function checkCommand(): Command {
  return new Command("check")
    .description("Validate the map file and the roots; no network, nothing written")
    .option("--map <file>", "map file", DEFAULT_MAP)
    .option(
      "--root <dir>",
      "directory secrets may be written in (repeatable) (default: /run/secrets)",
      collect,
      [],
    )
    .option("--json", "one JSON object per line", false)
    .option(
      "--recipes-dir <dir>",
      "directory of user recipe files (default: /etc/oci-secretsync/recipes.d)",
    )
    .option(
      "--allow-stop-signals",
      "let a reload send KILL, STOP, TERM, INT or QUIT (refused otherwise)",
      false,
    );
}

/** Parses `check` arguments into options; throws UsageError on bad input. */
export function parseCheckArgs(args: string[]): CheckOptions {
  const command = checkCommand().exitOverride();
  command.parse(args, { from: "user" });
  const raw = command.opts();
  return validateOptions(checkSchema, { ...raw, roots: raw.root });
}

/**
 * Reads and validates the map and roots, logging every problem.
 *
 * @returns the entries, or `undefined` after logging why the run cannot go on (exit 2)
 */
export async function loadMap(
  options: { map: string; roots: string[]; allowStopSignals?: boolean },
  log: Logger,
  recipes?: RecipeRegistry,
): Promise<Entry[] | undefined> {
  // A path outside this build's permissions gets a message saying how to proceed, rather than
  // Deno's advice to pass a flag the compiled binary cannot take.
  const denied = accessProblems({ read: [options.map, ...options.roots] });
  for (const message of denied) {
    log.log("error", "map", message, { event: "not_permitted", map: options.map });
  }
  if (denied.length > 0) return undefined;
  // The map says which files root writes and which processes it signals: it is held to the
  // recipe files' rules, and a FIFO or device cannot hang the run.
  const read = await readTrustedText(options.map, MAX_MAP_BYTES);
  if (!read.ok) {
    log.log("error", "map", `Cannot use map ${quoted(options.map, 300)}: ${read.reason}`, {
      event: "map_unreadable",
      map: options.map,
    });
    return undefined;
  }
  const text = read.text;
  const parsed = parseMap(text, { roots: options.roots, recipes: recipes?.names() ?? [] });
  const problems = [
    ...(parsed.ok ? [] : formatProblems(options.map, parsed.problems)),
    ...(parsed.ok && recipes
      ? formatProblems(options.map, recipeProblems(parsed.entries, recipes, options))
      : []),
    ...(await directoryProblems(options.roots, "Root")),
  ];
  // A broken generator can write a million bad lines; the first few say what is wrong.
  for (const message of problems.slice(0, MAX_PROBLEMS_SHOWN)) {
    log.log("error", "map", message, { event: "map_invalid", map: options.map });
  }
  if (problems.length > MAX_PROBLEMS_SHOWN) {
    const more = problems.length - MAX_PROBLEMS_SHOWN;
    log.log("error", "map", `… and ${more} more problems in map ${quoted(options.map, 300)}`, {
      event: "map_invalid_more",
      map: options.map,
      more,
    });
  }
  return parsed.ok && problems.length === 0 ? parsed.entries : undefined;
}

/** Runs `check`; returns the exit code (0 valid, 2 not). */
export async function runCheck(options: CheckOptions): Promise<number> {
  const log = createLogger({ json: options.json });
  const recipes = await openRecipes(options.recipesDir, log);
  if (!recipes) return 2;
  const entries = await loadMap(options, log, recipes);
  if (!entries) return 2;
  const secrets = new Set(entries.map((e) => e.secretId)).size;
  const targets = new Set(entries.flatMap((e) => (e.target ? [targetLabel(e.target)] : []))).size;
  log.log(
    "info",
    "map",
    `Map ${options.map} is valid: ${entries.length} files, ${secrets} secrets, ${targets} reload targets`,
    {
      event: "map_valid",
      map: options.map,
      files: entries.length,
      secrets,
      targets,
    },
  );
  for (const entry of entries) {
    if (entry.target && !entry.reload) {
      log.log(
        "warn",
        "map",
        `Line ${entry.line}: ${
          targetLabel(entry.target)
        } has no signal or recipe, so it is never reloaded`,
        {
          event: "no_reload",
          line: entry.line,
        },
      );
    }
    const none = entry.reload?.kind === "recipe" &&
      recipes.get(entry.reload.name)?.recipe.reload.none;
    if (entry.target && none) {
      log.log("warn", "map", `Line ${entry.line}: ${targetLabel(entry.target)}: ${none}`, {
        event: "recipe_sends_nothing",
        line: entry.line,
      });
    }
  }
  return 0;
}
