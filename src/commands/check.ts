/**
 * `secretsync check`: validates the map and the roots without any network.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { DEFAULT_MAP, loadMap, openRecipes } from "../inputs.ts";
import { COMMANDER_ERROR_OUTPUT, createLogger } from "../log.ts";
import { isNormalizedAbsolute } from "../paths.ts";
import { targetLabel } from "../plan.ts";
import { DEFAULT_STATE_DIR } from "../state.ts";
import { fetchKey, referenceOf } from "../reference.ts";
import { rootOption, rootsSchema, validateOptions } from "./usage.ts";

/** Parsed options of `secretsync check`. */
export interface CheckOptions {
  map: string;
  roots: string[];
  /** Checked to lie in no root, as `sync` would use it. */
  stateDir: string;
  json: boolean;
  /** `--recipes-dir` when given; else the default directory, which may be missing. */
  recipesDir?: string;
  /** `--allow-stop-signals`: the map may reload with KILL, STOP, TERM, INT or QUIT. */
  allowStopSignals: boolean;
}

const checkSchema = z.object({
  map: z.string().min(1, "--map must name a file"),
  roots: rootsSchema,
  stateDir: z.string().refine(
    isNormalizedAbsolute,
    "--state-dir must be an absolute, normalized path",
  ),
  json: z.boolean(),
  recipesDir: z.string().min(1, "--recipes-dir must name a directory").optional(),
  allowStopSignals: z.boolean(),
});

/** Declares `check` and its flags. */
export function checkCommand(): Command {
  return new Command("check")
    .description("Validate the map file and the roots; no network, nothing written")
    .option("--map <file>", "map file", DEFAULT_MAP)
    .addOption(rootOption())
    .option(
      "--state-dir <dir>",
      "the state directory sync will use; it must lie in no root",
      DEFAULT_STATE_DIR,
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
  const command = checkCommand().exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT);
  command.parse(args, { from: "user" });
  const raw = command.opts();
  return validateOptions(checkSchema, { ...raw, roots: raw.root });
}

/** Runs `check`; returns the exit code (0 valid, 2 not). */
export async function runCheck(options: CheckOptions): Promise<number> {
  const log = createLogger({ json: options.json });
  const recipes = await openRecipes(options.recipesDir, log);
  if (!recipes) return 2;
  const entries = await loadMap(options, log, recipes);
  if (!entries) return 2;
  // What a sync fetches: one per distinct secret and version, whatever keys lines take.
  const secrets = new Set(entries.map((e) => fetchKey(referenceOf(e)))).size;
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
