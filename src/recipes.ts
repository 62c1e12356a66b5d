/**
 * Reload recipes: how one kind of server picks up a new secret without a restart, and when it
 * must not be signalled at all.
 *
 * Built-in recipes are TypeScript modules in `recipes/`, listed in {@linkcode BUILT_IN_RECIPES}
 * with literal imports so `deno compile` embeds them. User recipes are JSON files in
 * `/etc/oci-secretsync/recipes.d/` (a compiled binary cannot load code from disk), validated
 * against the same schema; a user recipe overrides a built-in one of the same name.
 *
 * A recipe's reload is exactly one of:
 * - `{ "signal": "HUP" }`: sent to the container's main process (PID 1);
 * - `{ "exec": ["postfix", "reload"] }`: run inside the container (`docker|podman exec`);
 * - `{ "none": "why, and what to do instead" }`: nothing is sent; the run logs the text as a
 *   warning. For servers that have no safe reload (slapd, Traefik).
 *
 * An optional `validate` command runs inside the container first; when it fails, nothing is
 * reloaded and the run fails (exit 1) naming the container, with the validator's output.
 *
 * @example
 * ```ts
 * const registry = await loadRecipes({ dir: "/etc/oci-secretsync/recipes.d" });
 * registry.get("nginx")?.recipe.validate; // ["nginx", "-t"]
 * ```
 *
 * @module
 */
import { z } from "zod";
import type { Entry, MapProblem } from "./map.ts";
import { targetLabel } from "./plan.ts";
import { normalizeSignal, RELOAD_SIGNALS, STOP_SIGNALS } from "./signals.ts";
import { ownershipProblem } from "./ownership.ts";
import { errorMessage } from "./text.ts";
import { readTrustedText } from "./trusted_file.ts";
import nginx from "../recipes/nginx.ts";
import haproxy from "../recipes/haproxy.ts";
import postfix from "../recipes/postfix.ts";
import dovecot from "../recipes/dovecot.ts";
import postgres from "../recipes/postgres.ts";
import openldap from "../recipes/openldap.ts";
import traefik from "../recipes/traefik.ts";

/** Where user recipes live unless `--recipes-dir` says otherwise. */
export const DEFAULT_RECIPES_DIR = "/etc/oci-secretsync/recipes.d";

/** The largest user recipe file read, in bytes. */
const MAX_RECIPE_FILE_BYTES = 64 * 1024;

/** Recipe names: lower case, never a signal name (the map's fifth column tries signals first). */
const NAME = /^[a-z][a-z0-9-]{0,39}$/;
/** One argument of a command: anything printable on one line, no NUL. */
const ARG = /^[^\0\r\n]{1,1024}$/;

const signalSchema = z.string().transform((value, ctx) => {
  const signal = normalizeSignal(value);
  if (!signal || !RELOAD_SIGNALS.includes(signal)) {
    ctx.addIssue({
      code: "custom",
      message: `"${value}" is not a signal secretsync sends (${RELOAD_SIGNALS.join(", ")})`,
    });
    return z.NEVER;
  }
  return signal;
});

const commandSchema = z
  .array(z.string().regex(ARG, "each argument must be 1-1024 characters on one line"))
  .min(1, "a command needs at least the program")
  .max(64, "a command has at most 64 arguments");

const reloadSchema = z
  .strictObject({
    signal: signalSchema.optional(),
    exec: commandSchema.optional(),
    none: z.string().min(1, "must say why and what to do instead").max(1000).optional(),
  })
  .superRefine((reload, ctx) => {
    const kinds = [reload.signal, reload.exec, reload.none].filter((k) => k !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: 'must have exactly one of "signal", "exec" or "none"',
      });
    }
  });

/** The schema every recipe, built-in or user, is validated against. */
export const recipeSchema = z
  .strictObject({
    name: z.string().regex(NAME, "must be lower case letters, digits and -, 1-40 long")
      .refine((name) => !normalizeSignal(name), {
        message: "must not be a signal name (the map would read it as a signal)",
      }),
    description: z.string().min(1, "must not be empty").max(200, "at most 200 characters"),
    images: z.array(z.string().regex(/^[^\0\r\n]{1,200}$/, "1-200 characters on one line"))
      .min(1, "name at least one image (or kind of image) the recipe fits"),
    reload: reloadSchema,
    validate: commandSchema.optional(),
    neverSignals: z.array(signalSchema).default([]),
    notes: z.array(z.string().min(1).max(2000)).default([]),
    sources: z.array(z.strictObject({
      url: z.string().regex(/^https:\/\/\S+$/, "must be an https URL"),
      fact: z.string().min(1, "must quote or state the fact"),
    })).default([]),
  })
  .superRefine((recipe, ctx) => {
    const signal = recipe.reload.signal;
    if (signal && recipe.neverSignals.includes(signal)) {
      ctx.addIssue({
        code: "custom",
        path: ["reload", "signal"],
        message: `${signal} is in neverSignals: the recipe would send what it forbids`,
      });
    }
  });

/** A recipe as written: in a `recipes/*.ts` module or a user JSON file. */
export type RecipeSpec = z.input<typeof recipeSchema>;
/** A validated recipe: signals normalized, defaults filled in. */
export type Recipe = z.output<typeof recipeSchema>;

/** Where a registered recipe came from. */
export type RecipeSource =
  | { kind: "built-in" }
  | { kind: "file"; path: string; overrides: boolean };

/** One recipe in the registry, with its origin. */
export interface RegisteredRecipe {
  recipe: Recipe;
  source: RecipeSource;
}

/** The recipes a run knows, by name: built-ins, overridden by user files. */
export interface RecipeRegistry {
  /** The recipe named `name`, or `undefined`. */
  get(name: string): RegisteredRecipe | undefined;
  /** Every recipe name, sorted. */
  names(): string[];
  /** Every recipe, sorted by name. */
  list(): RegisteredRecipe[];
}

/** A recipe (file) that cannot be used; the run stops with exit code 2. */
export class RecipeError extends Error {
  /** Creates a recipe error. */
  constructor(message: string) {
    super(message);
    this.name = "RecipeError";
  }
}

/**
 * The built-in recipes, one module each under `recipes/`. Literal imports, so `deno compile`
 * embeds every one of them.
 */
export const BUILT_IN_RECIPES: readonly RecipeSpec[] = [
  nginx,
  haproxy,
  postfix,
  dovecot,
  postgres,
  openldap,
  traefik,
];

/**
 * Validates one recipe object.
 *
 * @param spec The object, from a module or parsed JSON.
 * @param origin How messages name it: `built-in recipe "nginx"`, `recipe file /etc/…/x.json`.
 * @throws {RecipeError} naming the origin and every bad field.
 */
export function parseRecipe(spec: unknown, origin: string): Recipe {
  const result = recipeSchema.safeParse(spec);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join(".") : "(the recipe)";
      return `field "${field}": ${issue.message}`;
    });
    throw new RecipeError(`Cannot use ${origin}: ${issues.join("; ")}`);
  }
  return result.data;
}

/** Options of {@linkcode loadRecipes}. */
export interface LoadRecipesOptions {
  /** Directory of user recipe files (`*.json`). @default DEFAULT_RECIPES_DIR */
  dir?: string;
  /** Whether a missing `dir` is an error (it is when the user named it). @default false */
  required?: boolean;
  /** The built-in recipes. @default BUILT_IN_RECIPES */
  builtIns?: readonly RecipeSpec[];
}

/**
 * Builds the registry: every built-in recipe, then every `*.json` file of `dir` in name order,
 * each validated. A user recipe with a built-in's name replaces it. Files whose names start
 * with `.` or do not end in `.json` are ignored.
 *
 * A recipe file names commands secretsync runs as root in containers, so the directory and
 * each file must belong to root (or the user running secretsync) and be writable by nobody
 * else.
 *
 * Requires `--allow-read` for `dir`.
 *
 * @throws {RecipeError} for a bad file (naming the file and field), two files with one name,
 *   an unsafe directory or file, or a missing `dir` when `required`.
 */
export async function loadRecipes(options: LoadRecipesOptions = {}): Promise<RecipeRegistry> {
  const byName = new Map<string, RegisteredRecipe>();
  for (const spec of options.builtIns ?? BUILT_IN_RECIPES) {
    const name = (spec as { name?: unknown }).name;
    const recipe = parseRecipe(spec, `built-in recipe "${String(name)}"`);
    if (byName.has(recipe.name)) {
      throw new RecipeError(`Cannot use built-in recipe "${recipe.name}": defined twice`);
    }
    byName.set(recipe.name, { recipe, source: { kind: "built-in" } });
  }

  const dir = options.dir ?? DEFAULT_RECIPES_DIR;
  const files = await _recipeFiles(dir, options.required ?? false);
  const fromFile = new Map<string, string>();
  for (const path of files) {
    const recipe = parseRecipe(await _readRecipeFile(path), `recipe file ${path}`);
    const earlier = fromFile.get(recipe.name);
    if (earlier) {
      throw new RecipeError(
        `Cannot use recipe file ${path}: recipe "${recipe.name}" is already defined in ${earlier}`,
      );
    }
    fromFile.set(recipe.name, path);
    const overrides = byName.get(recipe.name)?.source.kind === "built-in";
    byName.set(recipe.name, { recipe, source: { kind: "file", path, overrides } });
  }
  return _registry(byName);
}

/** A registry of the built-in recipes only, without touching the disk (for tests and docs). */
export function builtInRegistry(): RecipeRegistry {
  const byName = new Map<string, RegisteredRecipe>();
  for (const spec of BUILT_IN_RECIPES) {
    const recipe = parseRecipe(spec, `built-in recipe "${String(spec.name)}"`);
    byName.set(recipe.name, { recipe, source: { kind: "built-in" } });
  }
  return _registry(byName);
}

/** Options for {@link recipeProblems} and {@link signalPolicy}. */
export interface SignalPolicyOptions {
  /** Let a reload send KILL, STOP, TERM, INT or QUIT (`--allow-stop-signals`). @default false */
  allowStopSignals?: boolean;
}

/**
 * What the map asks of recipes that cannot be honoured, found before anything is fetched:
 *
 * - a recipe whose reload is `exec` on a `pidfile:` target (a host process has no container
 *   to run the command in);
 * - a signal (bare, or a recipe's) that {@linkcode signalRefusal} refuses: a stop signal
 *   without `allowStopSignals`, or one that a line reloads the same target with a recipe
 *   forbidding (`HUP` to a container reloaded with `openldap`: slapd shuts down on HUP).
 *
 * @returns one problem per offending line, in line order; empty when all is well.
 */
export function recipeProblems(
  entries: readonly Entry[],
  registry: RecipeRegistry,
  options: SignalPolicyOptions = {},
): MapProblem[] {
  const problems: MapProblem[] = [];
  const policy = signalPolicy(entries, registry, options);
  for (const entry of entries) {
    if (!entry.target || !entry.reload) continue;
    const label = targetLabel(entry.target);
    let signal: string | undefined = entry.reload.kind === "signal"
      ? entry.reload.signal
      : undefined;
    if (entry.reload.kind === "recipe") {
      const recipe = registry.get(entry.reload.name)?.recipe;
      if (recipe?.reload.exec && entry.target.kind === "pidfile") {
        problems.push({
          line: entry.line,
          message: `recipe "${recipe.name}" reloads by running a command in a container, ` +
            `which a pidfile: target does not have; give a signal instead`,
        });
      }
      signal = recipe?.reload.signal;
    }
    const refusal = signal ? signalRefusal(policy, label, signal) : undefined;
    if (refusal) problems.push({ line: entry.line, message: refusal });
  }
  return problems;
}

/** Which signals a run may send to which target; see {@link signalRefusal}. */
export interface SignalPolicy {
  allowStopSignals: boolean;
  /** Target label → signal → the first line (and its recipe) forbidding it. */
  forbidden: Map<string, Map<string, { line: number; recipe: string }>>;
}

/** The signal policy of a run over `entries`: the one input of {@link signalRefusal}. */
export function signalPolicy(
  entries: readonly Entry[],
  registry: RecipeRegistry,
  options: SignalPolicyOptions = {},
): SignalPolicy {
  return {
    allowStopSignals: options.allowStopSignals ?? false,
    forbidden: forbiddenSignals(entries, registry),
  };
}

/**
 * Why `signal` must not be sent to the target `label`, or `undefined` when it may. The one check
 * for forbidden signals: the map check runs it on every line before anything is fetched, and
 * the reloader again on every signal it is about to send.
 *
 * @example
 * ```ts
 * import { signalRefusal } from "./recipes.ts";
 * const policy = { allowStopSignals: false, forbidden: new Map() };
 * signalRefusal(policy, "web", "HUP"); // undefined
 * signalRefusal(policy, "web", "KILL"); // "KILL stops a process, it does not reload it; …"
 * ```
 */
export function signalRefusal(
  policy: SignalPolicy,
  label: string,
  signal: string,
): string | undefined {
  if (STOP_SIGNALS.includes(signal) && !policy.allowStopSignals) {
    return `${signal} stops a process, it does not reload it; ` +
      `give --allow-stop-signals to send it to ${label} anyway`;
  }
  const ban = policy.forbidden.get(label)?.get(signal);
  if (ban) {
    return `${signal} must not be sent to ${label}: line ${ban.line} ` +
      `reloads it with recipe "${ban.recipe}", which never sends ${signal} ` +
      `(see \`secretsync recipe show ${ban.recipe}\`)`;
  }
  return undefined;
}

/**
 * Signals that must never reach each target, because a line reloads that target with a recipe
 * listing them in `neverSignals`: target label → signal → the first such line and recipe.
 */
export function forbiddenSignals(
  entries: readonly Entry[],
  registry: RecipeRegistry,
): Map<string, Map<string, { line: number; recipe: string }>> {
  const result = new Map<string, Map<string, { line: number; recipe: string }>>();
  for (const entry of entries) {
    if (!entry.target || entry.reload?.kind !== "recipe") continue;
    const recipe = registry.get(entry.reload.name)?.recipe;
    if (!recipe) continue;
    const label = targetLabel(entry.target);
    const signals = result.get(label) ?? new Map();
    for (const signal of recipe.neverSignals) {
      if (!signals.has(signal)) signals.set(signal, { line: entry.line, recipe: recipe.name });
    }
    result.set(label, signals);
  }
  return result;
}

/** How a recipe's reload reads in one line: `signal HUP`, `exec postfix reload`, `none`. */
export function reloadText(recipe: Recipe): string {
  if (recipe.reload.signal) return `signal ${recipe.reload.signal}`;
  if (recipe.reload.exec) return `exec ${commandText(recipe.reload.exec)}`;
  return "none (see notes)";
}

/** A command as a shell would read it: arguments with spaces or quotes are single-quoted. */
export function commandText(argv: readonly string[]): string {
  return argv.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}

function _registry(byName: Map<string, RegisteredRecipe>): RecipeRegistry {
  const sorted = [...byName.keys()].sort();
  return {
    get: (name) => byName.get(name),
    names: () => [...sorted],
    list: () => sorted.map((name) => byName.get(name)!),
  };
}

/** The `*.json` files of `dir`, sorted; checks the directory's owner and mode. */
async function _recipeFiles(dir: string, required: boolean): Promise<string[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !required) return [];
    const reason = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : errorMessage(error);
    throw new RecipeError(`Cannot read recipes directory ${dir}: ${reason}`);
  }
  if (!info.isDirectory) {
    throw new RecipeError(`Cannot read recipes directory ${dir}: it is not a directory`);
  }
  _checkOwnership(`recipes directory ${dir}`, info);
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.name.startsWith(".") && entry.name.endsWith(".json")) names.push(entry.name);
    }
  } catch (error) {
    throw new RecipeError(`Cannot read recipes directory ${dir}: ${errorMessage(error)}`);
  }
  return names.sort().map((name) => `${dir.replace(/\/+$/, "")}/${name}`);
}

async function _readRecipeFile(path: string): Promise<unknown> {
  const read = await readTrustedText(path, MAX_RECIPE_FILE_BYTES);
  if (!read.ok) throw new RecipeError(`Cannot use recipe file ${path}: ${read.reason}`);
  const text = read.text;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RecipeError(
      `Cannot use recipe file ${path}: not valid JSON (${errorMessage(error)})`,
    );
  }
}

/** Root or the running user must own it, and neither group nor others may write it. */
function _checkOwnership(what: string, info: Deno.FileInfo): void {
  const why = ownershipProblem(info, { owners: "root-or-self" });
  if (why) throw new RecipeError(`Cannot use ${what}: ${why}`);
}
