/**
 * `secretsync recipe list` and `secretsync recipe show NAME`: what each reload recipe does,
 * where it comes from (built in, or a user file overriding one), and why.
 *
 * ```
 * secretsync recipe list [--json] [--recipes-dir DIR]
 * secretsync recipe show NAME [--json] [--recipes-dir DIR]
 * ```
 *
 * @module
 */
import { Command } from "commander";
import type { Logger } from "../log.ts";
import type { Target } from "../map.ts";
import { openRecipes } from "../inputs.ts";
import { commandText, DEFAULT_RECIPES_DIR, type RegisteredRecipe, reloadText } from "../recipes.ts";
import { reloadSteps, stepText } from "../reload/reloader.ts";
import { errorMessage } from "../text.ts";
import { UsageError } from "./usage.ts";

/** Parsed options of `secretsync recipe`. */
export type RecipeOptions =
  | { action: "list"; json: boolean; recipesDir?: string }
  | { action: "show"; name: string; json: boolean; recipesDir?: string };

/** Where output goes; tests capture it. */
export interface RecipeIo {
  out(text: string): void;
  err(text: string): void;
}

const RECIPES_DIR_HELP = `directory of user recipe files (default: ${DEFAULT_RECIPES_DIR})`;
const WIDTH = 96;

/** Declares `recipe` and its two subcommands, for help. */
export function recipeCommand(): Command {
  return new Command("recipe")
    .description("List the reload recipes, or show one with its notes and sources")
    .addCommand(listCommand())
    .addCommand(showCommand());
}

function listCommand(): Command {
  return new Command("list")
    .description("List every recipe: name, action, validation, source (built-in or file)")
    .option("--json", "one JSON array", false)
    .option("--recipes-dir <dir>", RECIPES_DIR_HELP);
}

function showCommand(): Command {
  return new Command("show")
    .description("Show everything about one recipe, including its notes and sources")
    .argument("<name>", "recipe name")
    .option("--json", "one JSON object", false)
    .option("--recipes-dir <dir>", RECIPES_DIR_HELP);
}

/** Parses `recipe` arguments; throws UsageError (or CommanderError) on bad input. */
export function parseRecipeArgs(args: string[]): RecipeOptions {
  const [sub, ...rest] = args;
  if (sub === "list" || sub === "show") {
    const command = (sub === "list" ? listCommand() : showCommand()).exitOverride();
    command.parse(rest, { from: "user" });
    const raw = command.opts<{ json: boolean; recipesDir?: string }>();
    if (raw.recipesDir === "") throw new UsageError("--recipes-dir must name a directory");
    return sub === "list"
      ? { action: "list", json: raw.json, recipesDir: raw.recipesDir }
      : { action: "show", name: command.args[0], json: raw.json, recipesDir: raw.recipesDir };
  }
  // Help, or commander's own error for an unknown subcommand.
  recipeCommand().exitOverride().parse(args, { from: "user" });
  throw new UsageError("recipe needs a subcommand: list or show");
}

/** Runs `recipe list` or `recipe show`; returns the exit code (0, or 2 for a usage problem). */
export async function runRecipe(options: RecipeOptions, io: RecipeIo = consoleIo): Promise<number> {
  const log: Logger = { log: (_level, _component, message) => io.err(`secretsync: ${message}`) };
  const registry = await openRecipes(options.recipesDir, log);
  if (!registry) return 2;
  if (options.action === "list") {
    const all = registry.list();
    io.out(
      options.json ? JSON.stringify(all.map((found) => recipeJson(found)), null, 2) : listText(all),
    );
    return 0;
  }
  const found = registry.get(options.name);
  if (!found) {
    io.err(
      `secretsync: no recipe "${options.name}"; see \`secretsync recipe list\` (known: ${
        registry.names().join(", ")
      })`,
    );
    return 2;
  }
  io.out(
    options.json ? JSON.stringify(recipeJson(found, true), null, 2) : showText(found),
  );
  return 0;
}

const consoleIo: RecipeIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

/** The example targets `recipe show` describes a recipe's steps for. */
const EXAMPLE_TARGETS: { kind: string; target: Target }[] = [
  { kind: "container", target: { kind: "container", name: "NAME" } },
  { kind: "unit", target: { kind: "unit", name: "NAME.service" } },
  { kind: "pidfile", target: { kind: "pidfile", path: "/PATH" } },
];

/** What a run does for each kind of target, as text lines (or why it cannot). */
export function targetSteps(found: RegisteredRecipe): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const { kind, target } of EXAMPLE_TARGETS) {
    const label = kind === "container"
      ? "container NAME"
      : kind === "unit"
      ? "unit:NAME.service"
      : "pidfile:/PATH";
    try {
      const steps = reloadSteps(target, { kind: "recipe", name: found.recipe.name }, found.recipe);
      result[label] = steps.map((step) =>
        step.kind === "warn" && found.recipe.reload.none !== undefined
          ? "send nothing; log the warning above"
          : stepText(step, kind === "container" ? "container NAME" : label)
      );
    } catch (error) {
      result[label] = [
        `cannot be used: ${errorMessage(error)} ` +
        "(`secretsync check` rejects such a map line)",
      ];
    }
  }
  return result;
}

function recipeJson(found: RegisteredRecipe, withSteps = false): Record<string, unknown> {
  const { recipe, source } = found;
  return {
    ...recipe,
    source,
    ...(withSteps ? { targets: targetSteps(found) } : {}),
  };
}

function sourceText(found: RegisteredRecipe): string {
  const { source } = found;
  if (source.kind === "built-in") return "built-in";
  return `file ${source.path}${source.overrides ? " (overrides built-in)" : ""}`;
}

function listText(all: RegisteredRecipe[]): string {
  const rows = [
    ["NAME", "ACTION", "VALIDATION", "SOURCE"],
    ...all.map((found) => [
      found.recipe.name,
      reloadText(found.recipe),
      found.recipe.validate ? commandText(found.recipe.validate) : "-",
      sourceText(found),
    ]),
  ];
  const widths = [0, 1, 2].map((col) => Math.max(...rows.map((row) => row[col].length)));
  return rows.map((row) =>
    row.map((cell, col) => col < 3 ? cell.padEnd(widths[col]) : cell).join("  ").trimEnd()
  ).join("\n");
}

function showText(found: RegisteredRecipe): string {
  const { recipe } = found;
  const lines = [
    `${recipe.name} — ${recipe.description}`,
    "",
    `source:       ${sourceText(found)}`,
    `images:       ${recipe.images.join(", ")}`,
    `validation:   ${recipe.validate ? commandText(recipe.validate) : "none"}`,
    `reload:       ${
      recipe.reload.none !== undefined ? "none: sends nothing, logs a warning" : reloadText(recipe)
    }`,
    `never sends:  ${recipe.neverSignals.length > 0 ? recipe.neverSignals.join(", ") : "-"}`,
  ];
  if (recipe.reload.none !== undefined) {
    lines.push(...wrap(`warning:      ${recipe.reload.none}`, "              "));
  }
  lines.push("", "What a run does when a changed secret names this recipe:");
  for (const [label, steps] of Object.entries(targetSteps(found))) {
    lines.push(`  ${label}:`);
    steps.forEach((step, i) => lines.push(...wrap(`    ${i + 1}. ${step}`, "       ")));
  }
  if (recipe.notes.length > 0) {
    lines.push("", "Notes:");
    for (const note of recipe.notes) lines.push(...wrap(`  - ${note}`, "    "));
  }
  if (recipe.sources.length > 0) {
    lines.push("", "Sources:");
    for (const source of recipe.sources) {
      lines.push(`  - ${source.url}`, ...wrap(`    "${source.fact}"`, "     "));
    }
  }
  return lines.join("\n");
}

/** Word-wraps `text` at {@linkcode WIDTH}, continuing lines with `indent`. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/(?<=\S) (?=\S)/)) {
    if (line !== "" && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = indent + word.trimStart();
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}
