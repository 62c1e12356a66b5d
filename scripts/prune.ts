/**
 * Installs the npm packages into the build copy's `node_modules/` and deletes from it what
 * the program can never load ({@linkcode pruneNodeModules}): type declarations, source maps,
 * Markdown and, in ESM packages the program imports, every file outside the import graph of
 * what it imports. They are most of the payload; `deno compile` then embeds the rest, with
 * `--exclude` for every pruned path. Used by `scripts/compile.ts` on its temp copy only.
 *
 * @module
 */
import { BuildError, exists, run, size, unseenDynamicImports } from "./_util.ts";

/**
 * In the build copy only: sets `nodeModulesDir: "auto"` in its deno.json, installs the npm
 * packages of the lockfile into its `node_modules/`, and type-checks it while the packages'
 * type declarations are still there (the compile runs with `--no-check` after pruning).
 */
export async function installNodeModules(stage: string): Promise<void> {
  const configFile = `${stage}/deno.json`;
  const config = JSON.parse(await Deno.readTextFile(configFile));
  await Deno.writeTextFile(configFile, JSON.stringify({ ...config, nodeModulesDir: "auto" }));
  const env = { NO_COLOR: "1" };
  const entry = `${stage}/src/main.ts`;
  try {
    await run(Deno.execPath(), [
      "install",
      "--frozen",
      `--config=${configFile}`,
      "--entrypoint",
      entry,
    ], { cwd: stage, env });
    await run(Deno.execPath(), ["check", "--frozen", `--config=${configFile}`, entry], {
      cwd: stage,
      env,
    });
  } catch (error) {
    throw new BuildError(`Preparing the build copy failed: ${(error as Error).message}`);
  }
}

/** What {@linkcode pruneNodeModules} deleted. */
export interface PruneResult {
  /** Deleted files and whole directories, absolute; each one is also an `--exclude`. */
  paths: string[];
  files: number;
  bytes: number;
  /** Bytes deleted per rule, in rule order. */
  byRule: Record<PruneRule, number>;
  /** Packages pruned to the import graph of what the program imports: `name@version`. */
  esmPackages: string[];
  /** Packages the program imports that keep their code, and why. */
  kept: string[];
  /** Size of the installed packages before pruning. */
  totalBytes: number;
}

/** Why a file was pruned; the first rule that matches a file wins. */
export type PruneRule = "types" | "sourceMaps" | "docs" | "outsideEsmGraph" | "requested";

const RULE_NAMES: Record<PruneRule, string> = {
  types: "type declarations (*.d.ts, *.d.cts, *.d.mts)",
  sourceMaps: "source maps (*.map)",
  docs: "Markdown (README, CHANGELOG, docs)",
  outsideEsmGraph: "outside the ESM import graph",
  requested: "requested (alsoPrune)",
};

/**
 * Deletes from the build copy's `node_modules/` what the program can never load, and returns
 * it. Every rule rests on how Deno loads a package, not on what a run happened to touch:
 *
 * - `types`: declaration files are read by the type checker only, never executed. Packages
 *   that are nothing else (`@types/*`, `undici-types`) keep only package.json and licence.
 * - `sourceMaps`: read, at most, to rewrite stack traces; never executed. No package reads
 *   one itself (checked: none names a `.map` file in code).
 * - `docs`: Markdown is not a module format, and no package reads its own docs.
 * - `outsideEsmGraph`: for a package the program imports as ESM and nothing else depends
 *   on (so no `require()` reaches it), Deno loads the file its `exports` map gives for the
 *   `import` condition and, from there, only what static and string-literal dynamic imports
 *   name. That graph is taken from `deno info` on a copy of the package; a package whose
 *   graph leaves the package, has a computed dynamic import, or can find its own files
 *   another way (`require`, `createRequire`, `import.meta.url`, `__dirname`) keeps all files.
 *   For zod this drops `src/` (TypeScript, only for the `@zod/source` condition), `v3/`,
 *   `mini/` and the `.cjs` build; for csv-parse its `dist/` builds.
 *
 * Never pruned: `package.json` files (they set the module type of their directory) unless
 * no kept file is below them, and licence files.
 */
export async function pruneNodeModules(
  stage: string,
  alsoPrune: readonly string[] = [],
): Promise<PruneResult> {
  const store = `${stage}/node_modules/.deno`;
  const info = JSON.parse(
    await run(Deno.execPath(), [
      "info",
      "--json",
      `--config=${stage}/deno.json`,
      `${stage}/src/main.ts`,
    ], { cwd: stage, env: { NO_COLOR: "1" } }),
  ) as DenoInfo;
  const packages = Object.entries(info.npmPackages ?? {});
  const dependedOn = new Set(packages.flatMap(([, p]) => p.dependencies ?? []));
  // What the program imports: `npm:/name@version/subpath` modules of its graph.
  const imported = new Map<string, Set<string>>();
  for (const module of info.modules) {
    const match = /^npm:\/?((?:@[^/]+\/)?[^@/]+@[^/]+)(\/.*)?$/.exec(module.specifier);
    if (module.kind !== "npm" || !match) continue;
    imported.set(match[1], (imported.get(match[1]) ?? new Set()).add(`.${match[2] ?? ""}`));
  }
  const graphs = new Map<string, Set<string>>();
  const kept: string[] = [];
  for (const [id, subpaths] of imported) {
    const pkg = info.npmPackages?.[id];
    if (!pkg?.localPath) continue;
    const graph = dependedOn.has(id)
      ? "another package depends on it"
      : await esmGraph(pkg.localPath, [...subpaths]);
    if (typeof graph === "string") kept.push(`${id} (${graph})`);
    else graphs.set(id, graph);
  }

  const result: PruneResult = {
    paths: [],
    files: 0,
    bytes: 0,
    byRule: { types: 0, sourceMaps: 0, docs: 0, outsideEsmGraph: 0, requested: 0 },
    esmPackages: [...graphs.keys()],
    kept,
    totalBytes: 0,
  };
  const requested = new Set(alsoPrune.map((path) => `${store}/${path}`));
  for (const [id, pkg] of packages) {
    if (!pkg.localPath?.startsWith(`${store}/`)) continue;
    const graph = graphs.get(id);
    const keptDirs = graph && new Set([...graph].flatMap(parentDirs));
    const rule = (relative: string, absolute: string): PruneRule | undefined => {
      const name = relative.slice(relative.lastIndexOf("/") + 1);
      if (requested.has(absolute)) return "requested";
      if (/^(licen[cs]e|licence|copying|notice)/i.test(name)) return undefined;
      if (name === "package.json") {
        const dir = relative.includes("/") ? relative.slice(0, relative.lastIndexOf("/")) : "";
        return dir !== "" && keptDirs && !keptDirs.has(dir) ? "outsideEsmGraph" : undefined;
      }
      if (/\.d\.[cm]?ts$/.test(name)) return "types";
      if (name.endsWith(".map")) return "sourceMaps";
      if (/\.(md|markdown)$/i.test(name)) return "docs";
      if (graph && !graph.has(relative)) return "outsideEsmGraph";
      return undefined;
    };
    await prunePackage(pkg.localPath, "", rule, result);
  }
  for (const path of result.paths) await Deno.remove(path, { recursive: true });
  return result;
}

/** Walks one directory of a package; returns whether everything in it was pruned. */
async function prunePackage(
  packageDir: string,
  relativeDir: string,
  rule: (relative: string, absolute: string) => PruneRule | undefined,
  result: PruneResult,
): Promise<boolean> {
  const dir = relativeDir === "" ? packageDir : `${packageDir}/${relativeDir}`;
  const found: string[] = [];
  let all = true;
  for await (const entry of Deno.readDir(dir)) {
    const relative = relativeDir === "" ? entry.name : `${relativeDir}/${entry.name}`;
    const absolute = `${packageDir}/${relative}`;
    if (entry.isSymlink) {
      all = false; // never followed, never pruned
    } else if (entry.isDirectory) {
      const before = result.paths.length;
      if (await prunePackage(packageDir, relative, rule, result)) {
        result.paths.splice(before);
        found.push(absolute);
      } else all = false;
    } else {
      const bytes = (await Deno.stat(absolute)).size;
      result.totalBytes += bytes;
      const why = rule(relative, absolute);
      if (why) {
        result.files++;
        result.bytes += bytes;
        result.byRule[why] += bytes;
        found.push(absolute);
      } else all = false;
    }
  }
  result.paths.push(...found);
  return all && relativeDir !== "";
}

interface DenoInfo {
  modules: {
    specifier: string;
    kind?: string;
    local?: string;
    error?: string;
    dependencies?: { specifier: string; code?: { specifier?: string; error?: string } }[];
  }[];
  npmPackages?: Record<string, { localPath?: string; dependencies?: string[] }>;
}

/** The conditions Deno resolves an `import` of an npm package with, in no particular order. */
const IMPORT_CONDITIONS = new Set(["deno", "node", "import", "module", "default"]);

/**
 * The files (relative to the package) Deno can load when the program imports the given
 * subpaths of the package at `dir` as ESM, or why that cannot be told statically.
 */
export async function esmGraph(dir: string, subpaths: string[]): Promise<Set<string> | string> {
  const manifest = JSON.parse(await Deno.readTextFile(`${dir}/package.json`));
  const entries: string[] = [];
  for (const subpath of subpaths) {
    if (manifest.exports === undefined && manifest.type !== "module") return "CommonJS";
    const target = exportTarget(manifest.exports, subpath);
    if (!target?.startsWith("./")) return `no plain exports entry for "${subpath}"`;
    const esm = target.endsWith(".mjs") || (target.endsWith(".js") && manifest.type === "module");
    if (!esm) return `"${subpath}" loads as CommonJS (${target})`;
    entries.push(target.slice(2));
  }
  // deno info analyses nothing inside node_modules: analyse a copy.
  const copy = await Deno.makeTempDir({ prefix: "secretsync-esm-graph-" });
  try {
    await copyPlainFiles(dir, copy);
    const files = new Set<string>();
    for (const entry of entries) {
      const info = JSON.parse(
        await run(Deno.execPath(), [
          "info",
          "--json",
          "--no-config",
          "--no-lock",
          "--no-remote",
          `${copy}/${entry}`,
        ], { cwd: copy, env: { NO_COLOR: "1" } }),
      ) as DenoInfo;
      for (const module of info.modules) {
        if (module.kind === "node") continue;
        if (module.error || !module.local?.startsWith(`${copy}/`)) {
          return `its graph reaches ${module.specifier}${module.error ? `: ${module.error}` : ""}`;
        }
        for (const dependency of module.dependencies ?? []) {
          const code = dependency.code;
          if (code?.error) return `unresolved import "${dependency.specifier}"`;
          if (code?.specifier && !/^(file|node):/.test(code.specifier)) {
            return `it imports ${code.specifier}`;
          }
        }
        const relative = module.local.slice(copy.length + 1);
        const source = await Deno.readTextFile(module.local);
        if (unseenDynamicImports(relative, source).length > 0) {
          return `${relative} has a dynamic import the analysis cannot see`;
        }
        if (findsOwnFiles(source)) return `${relative} can locate files by path`;
        files.add(relative);
      }
    }
    return files;
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

/** Whether ESM code (outside line comments and JSDoc lines) can locate files by path. */
function findsOwnFiles(source: string): boolean {
  return source.split("\n").some((line) => {
    const code = line.replace(/\/\/.*$/, "");
    if (/^\s*\*/.test(code)) return false;
    return /\brequire\s*\(|\bcreateRequire\b|import\.meta\.(url|dirname|filename|resolve)|\b__(dirname|filename)\b/
      .test(code);
  });
}

/** Node's `exports` resolution for the import conditions; undefined for anything unusual. */
export function exportTarget(exports: unknown, subpath: string): string | undefined {
  if (exports === null || exports === undefined) return undefined;
  const isSubpathMap = typeof exports === "object" && !Array.isArray(exports) &&
    Object.keys(exports).some((key) => key.startsWith("."));
  if (isSubpathMap) {
    return conditionalTarget((exports as Record<string, unknown>)[subpath]);
  }
  return subpath === "." ? conditionalTarget(exports) : undefined;
}

function conditionalTarget(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  for (const [condition, target] of Object.entries(value)) {
    if (!IMPORT_CONDITIONS.has(condition)) continue;
    const resolved = conditionalTarget(target);
    if (resolved !== undefined) return resolved;
  }
  return undefined;
}

/** `a/b/c.js` → `["a", "a/b"]`: the directories a kept file needs. */
function parentDirs(relative: string): string[] {
  const parts = relative.split("/").slice(0, -1);
  return parts.map((_, index) => parts.slice(0, index + 1).join("/"));
}

async function copyPlainFiles(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyPlainFiles(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** One line on what was pruned, by rule and package. */
export function describePrune(pruned: PruneResult): string {
  const rules = (Object.keys(RULE_NAMES) as PruneRule[])
    .filter((rule) => pruned.byRule[rule] > 0)
    .map((rule) => `${RULE_NAMES[rule]} ${(pruned.byRule[rule] / 1e6).toFixed(2)} MB`);
  return `Pruned ${pruned.files} files, ${size(pruned.bytes)}, of ${
    size(pruned.totalBytes)
  } in node_modules: ${rules.join(", ")}. ESM graph only: ${
    pruned.esmPackages.join(", ") || "none"
  }; kept whole: ${pruned.kept.join(", ") || "none"}.`;
}

/** Fails when a pruned path exists again, e.g. re-installed by `deno run` or `deno compile`. */
export async function checkStillPruned(stage: string, pruned: PruneResult, after: string) {
  const back: string[] = [];
  for (const path of pruned.paths) {
    if (await exists(path)) back.push(path.slice(stage.length + 1));
  }
  if (back.length > 0) {
    throw new BuildError(
      `After ${after}, pruned paths exist again, so the smoke run did not test the payload:\n  ${
        back.slice(0, 10).join("\n  ")
      }`,
    );
  }
}
