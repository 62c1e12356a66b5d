/**
 * A run's inputs, read and checked with every problem logged: the recipes (built in, plus the
 * user's JSON files) and the map. Shared by `check`, `sync` and the run layer.
 *
 * @module
 */
import type { Logger } from "./log.ts";
import { type Entry, formatProblems, parseMap } from "./map.ts";
import { accessProblems } from "./permissions.ts";
import {
  DEFAULT_RECIPES_DIR,
  loadRecipes,
  RecipeError,
  recipeProblems,
  type RecipeRegistry,
} from "./recipes.ts";
import { directoryProblems, stateDirProblems } from "./roots.ts";
import { quoted } from "./text.ts";
import { readTrustedText } from "./trusted_file.ts";

/** Default map file, as in the original tool. */
export const DEFAULT_MAP = "/etc/oci-secretsync/map.csv";
/** Largest map accepted: about 80,000 lines, far beyond one host's secrets. */
export const MAX_MAP_BYTES = 8 << 20;
/** Map problems printed; the rest are counted in one last line. */
export const MAX_PROBLEMS_SHOWN = 20;

/**
 * Loads the registry for a command, logging why it cannot be used.
 *
 * @param recipesDir `--recipes-dir` as given; when absent, the default directory, which may be
 *   missing.
 * @returns the registry, or `undefined` after logging the problem (exit 2).
 */
export async function openRecipes(
  recipesDir: string | undefined,
  log: Logger,
): Promise<RecipeRegistry | undefined> {
  try {
    return await loadRecipes({
      dir: recipesDir ?? DEFAULT_RECIPES_DIR,
      required: recipesDir !== undefined,
    });
  } catch (error) {
    if (!(error instanceof RecipeError)) throw error;
    log.log("error", "recipe", error.message, { event: "recipe_invalid" });
    return undefined;
  }
}

/**
 * Reads and validates the map and roots (and that the state directory, when given, is in no
 * root), logging every problem.
 *
 * @returns the entries, or `undefined` after logging why the run cannot go on (exit 2)
 */
export async function loadMap(
  options: { map: string; roots: string[]; stateDir?: string; allowStopSignals?: boolean },
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
    ...(options.stateDir ? await stateDirProblems(options.stateDir, options.roots) : []),
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
