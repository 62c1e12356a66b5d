/**
 * Builds `dist/secretsync-<target>` with `deno compile`, the permissions of
 * `src/permissions.ts` baked in, and the git commit stamped into `--version`.
 *
 * ```
 * deno task compile          # release: both Linux targets, SHA256SUMS; downloads denort
 * deno task compile:check    # CI: same payload with a stand-in runtime, checks, no dist/
 * ```
 *
 * How a build goes:
 *
 * 1. Checks: deno.json and src/version.ts agree on the version; src/assets.ts matches
 *    systemd/; the module graph has no missing module and no dynamic import the compiler
 *    cannot see (`deno compile` embeds neither, and says nothing about it).
 * 2. Copies the graph's local modules, deno.json and deno.lock into a temp directory and
 *    stamps the commit into the copy of src/version.ts; the checkout is never modified.
 * 3. In the copy only: switches deno.json to `nodeModulesDir: "auto"`, installs the npm
 *    packages into its `node_modules/` (the checkout keeps `"none"`), type-checks, and then
 *    deletes the package files the program can never load ({@linkcode pruneNodeModules}):
 *    type declarations, source maps, Markdown, and in ESM packages the program imports,
 *    every file outside the import graph of what it imports. They are most of the payload.
 * 4. Smoke run ({@linkcode smokeRun}): runs the pruned copy under `deno run` with exactly the
 *    release permission flags and its `node_modules/`, through every path that loads a
 *    dependency: `--version`, `--help`, `recipe list`, `check`, and a real `sync` against the
 *    OCI stand-in of `tests/oci/` with instance principals and with an API key. A pruned file
 *    that is needed after all fails the build here.
 * 5. Compiles each target from the copy, with `--exclude` for every pruned path as well.
 *    `--check` sets `DENORT_BIN` to a stand-in runtime (denort cannot be downloaded
 *    everywhere): the result is the real payload on a runtime that does not run it, enough
 *    to check the graph, the size and what is baked in.
 * 6. Reads the metadata back out of each binary: the permissions must be exactly
 *    {@linkcode COMPILE_FLAGS}, no prompt, and the units and commit must be in the payload;
 *    no pruned path may have come back (the payload is the tree the smoke run ran).
 * 7. `--check`: the payload (binary minus runtime) must stay within the budget.
 *    Release: writes `dist/SHA256SUMS`, checkable with `sha256sum -c`.
 *
 * @module
 */
import { PERMISSIONS, type PermissionSet } from "../src/permissions.ts";
import { UNITS } from "../src/assets.ts";
import { syncAssets } from "./assets.ts";
import { COMPILE_FLAGS, REPO_ROOT, RUNTIME_FLAGS } from "./permissions.ts";
import { startOciStandIn } from "../tests/oci/standin.ts";

/** The targets a release ships. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] as const;

/**
 * Largest payload (binary minus runtime) `--check` accepts: 12 MB, decimal (11.44 MiB). The
 * pruned payload is about 6 MB; the rest is room for growth that someone decided on.
 */
export const PAYLOAD_BUDGET_BYTES = 12_000_000;

/** Options for {@linkcode build}. */
export interface BuildOptions {
  /** Stand-in runtime, checks and budget; nothing in dist/. @default false */
  check?: boolean;
  /** @default TARGETS */
  targets?: readonly string[];
  /** Where a release goes. @default `${REPO_ROOT}/dist` */
  outDir?: string;
  /** Repository to build. @default REPO_ROOT */
  root?: string;
  /** @default PAYLOAD_BUDGET_BYTES */
  budgetBytes?: number;
  /**
   * Runtime used with `check`: any file will do, its size is subtracted from the payload.
   * @default DENORT_BIN, else /usr/bin/true or /bin/true
   */
  standInRuntime?: string;
  /** Where progress lines go. @default console.log */
  print?: (line: string) => void;
  /** Run the pruned copy before compiling ({@linkcode smokeRun}). @default true */
  smoke?: boolean;
  /**
   * Also prune these paths, relative to the copy's `node_modules/.deno/` (for tests: a
   * needed file pruned must fail the smoke run). @default []
   */
  alsoPrune?: readonly string[];
}

/** What was built for one target. */
export interface BuiltTarget {
  target: string;
  /** The binary (a temp file with `check`, removed when the build returns). */
  path: string;
  bytes: number;
  /** Bytes of the binary that are not the runtime; with `check` only. */
  payloadBytes?: number;
  sha256: string;
  seconds: number;
}

/** What {@linkcode build} produced. */
export interface BuildResult {
  commit: string;
  targets: BuiltTarget[];
  /** What was deleted from the build copy's node_modules before compiling. */
  pruned: PruneResult;
  /** The steps of the smoke run (`--version`, `sync --auth api_key`, …); empty without `smoke`. */
  smoked: string[];
}

/** A problem that stops the build; its message is the whole story. */
export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BuildError";
  }
}

/**
 * Builds (or, with `check`, test-builds) the binaries. Throws {@linkcode BuildError} on any
 * failed check. Requires `-A` (runs deno and git, reads and writes temp files).
 */
export async function build(options: BuildOptions = {}): Promise<BuildResult> {
  // Real path: the module graph names files by theirs.
  const root = await Deno.realPath(options.root ?? REPO_ROOT);
  const print = options.print ?? console.log;
  const targets = options.targets ?? TARGETS;
  const check = options.check ?? false;
  const budget = options.budgetBytes ?? PAYLOAD_BUDGET_BYTES;
  const denort = check
    ? options.standInRuntime ?? Deno.env.get("DENORT_BIN") ?? await standInRuntime()
    : Deno.env.get("DENORT_BIN");
  if (!check && denort && targets.length > 1) {
    throw new BuildError(
      `DENORT_BIN is set (${denort}): a release would use it for every target. Unset it, or ` +
        "build one target whose real runtime it is (--target).",
    );
  }

  await checkVersion(root);
  if (!(await syncAssets({ root }))) {
    throw new BuildError(
      "src/assets.ts differs from systemd/: run " +
        "`deno run --allow-read=. --allow-write=src/assets.ts scripts/assets.ts`",
    );
  }
  const modules = await checkGraph(root);
  const commit = await gitCommit(root);
  const stage = await Deno.makeTempDir({ prefix: "secretsync-build-" });
  const outDir = check
    ? await Deno.makeTempDir({ prefix: "secretsync-check-" })
    : options.outDir ?? `${root}/dist`;
  const built: BuiltTarget[] = [];
  let pruned: PruneResult;
  let smoked: string[] = [];
  try {
    await stageTree(root, stage, modules, commit);
    await installNodeModules(stage);
    pruned = await pruneNodeModules(stage, options.alsoPrune ?? []);
    print(describePrune(pruned));
    if (options.smoke ?? true) {
      const started = performance.now();
      smoked = await smokeRun(stage, commit);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      print(`Smoke run of the pruned copy ok (${smoked.join(", ")}), ${seconds} s`);
      await checkStillPruned(stage, pruned, "the smoke run");
    }
    await Deno.mkdir(outDir, { recursive: true });
    for (const target of targets) {
      const output = `${outDir}/secretsync-${target}`;
      const started = performance.now();
      await compileTarget({ stage, target, output, denort, exclude: pruned.paths });
      const seconds = (performance.now() - started) / 1000;
      const bytes = await Deno.readFile(output);
      verifyPayload(bytes, target, commit);
      const runtimeBytes = check && denort ? (await Deno.stat(denort)).size : undefined;
      const result: BuiltTarget = {
        target,
        path: output,
        bytes: bytes.length,
        payloadBytes: runtimeBytes === undefined ? undefined : bytes.length - runtimeBytes,
        sha256: await sha256(bytes),
        seconds,
      };
      built.push(result);
      print(describe(result));
      if (result.payloadBytes !== undefined && result.payloadBytes > budget) {
        throw new BuildError(
          `The ${target} payload is ${size(result.payloadBytes)}, over the budget of ` +
            `${size(budget)}: see what grew with \`deno compile\` without -q, or raise ` +
            "PAYLOAD_BUDGET_BYTES in scripts/compile.ts with a reason.",
        );
      }
    }
    await checkStillPruned(stage, pruned, "deno compile");
    if (!check) {
      const sums = built.map((b) => `${b.sha256}  secretsync-${b.target}\n`).join("");
      await Deno.writeTextFile(`${outDir}/SHA256SUMS`, sums);
      print(`Wrote ${outDir}/SHA256SUMS (check with: cd ${outDir} && sha256sum -c SHA256SUMS)`);
    }
  } finally {
    await Deno.remove(stage, { recursive: true });
    if (check) await Deno.remove(outDir, { recursive: true });
  }
  return { commit, targets: built, pruned, smoked };
}

/** `deno.json`'s version and `VERSION` in src/version.ts must agree. */
async function checkVersion(root: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
  const source = await Deno.readTextFile(`${root}/src/version.ts`);
  const match = /export const VERSION = "([^"]+)";/.exec(source);
  if (!match || match[1] !== config.version) {
    throw new BuildError(
      `src/version.ts has VERSION ${match ? `"${match[1]}"` : "(not found)"} but deno.json ` +
        `has version "${config.version}": make them the same`,
    );
  }
}

interface GraphModule {
  specifier: string;
  local?: string;
  error?: string;
}

/**
 * Returns the graph's local files. Fails on a missing module (a dynamic import of a missing
 * file compiles silently) and on a dynamic import whose specifier is not a string literal,
 * which `deno compile` cannot see and so does not embed.
 */
export async function checkGraph(root: string): Promise<string[]> {
  const output = await run(Deno.execPath(), [
    "info",
    "--json",
    `--config=${root}/deno.json`,
    `${root}/src/main.ts`,
  ], { cwd: root });
  const graph = JSON.parse(output) as { modules: GraphModule[] };
  const problems: string[] = [];
  const locals: string[] = [];
  for (const module of graph.modules) {
    if (module.error) problems.push(module.error);
    if (!module.specifier.startsWith("file://") || !module.local) continue;
    if (!module.local.startsWith(`${root}/`)) {
      problems.push(`${module.local} is outside the repository; the build copy would lack it`);
      continue;
    }
    locals.push(module.local);
    problems.push(...unseenDynamicImports(module.local, await Deno.readTextFile(module.local)));
  }
  if (problems.length > 0) {
    throw new BuildError(
      `The module graph of src/main.ts is not complete:\n  ${problems.join("\n  ")}`,
    );
  }
  return locals;
}

/**
 * Finds `import(…)` calls whose argument is not a plain string literal. Comments are skipped
 * line by line; good enough for this code base, where a false alarm costs a rewrite.
 */
export function unseenDynamicImports(file: string, source: string): string[] {
  const found: string[] = [];
  source.split("\n").forEach((line, index) => {
    const code = line.replace(/\/\/.*$/, "");
    if (/^\s*\*/.test(code)) return; // JSDoc line
    for (const match of code.matchAll(/\bimport\s*\(\s*(.?)/g)) {
      const rest = code.slice(match.index + match[0].length - match[1].length);
      const literal = /^(["'])[^"'\\]*\1\s*[,)]/.test(rest) || /^`[^`$\\]*`\s*[,)]/.test(rest);
      if (!literal) {
        found.push(
          `${file}:${index + 1}: dynamic import the compiler cannot see: ${line.trim()} ` +
            "(use a string literal, or add the module to --include)",
        );
      }
    }
  });
  return found;
}

/** `abc1234def56`, `abc1234def56-dirty` when the built files have changes, or `unknown`. */
export async function gitCommit(root: string): Promise<string> {
  try {
    const head = (await run("git", ["rev-parse", "--short=12", "HEAD"], { cwd: root })).trim();
    const status = await run("git", [
      "status",
      "--porcelain",
      "--",
      "src",
      "recipes",
      "systemd",
      "scripts",
      "deno.json",
      "deno.lock",
    ], { cwd: root });
    return status.trim() === "" ? head : `${head}-dirty`;
  } catch {
    // No git, or not a repository (a source tarball): say so rather than guess.
    return "unknown";
  }
}

async function stageTree(root: string, stage: string, modules: string[], commit: string) {
  const files = [...modules, `${root}/deno.json`];
  for (const optional of ["deno.lock", "package.json"]) {
    if (await exists(`${root}/${optional}`)) files.push(`${root}/${optional}`);
  }
  for (const file of files) {
    const target = `${stage}/${file.slice(root.length + 1)}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(file, target);
  }
  const versionFile = `${stage}/src/version.ts`;
  const source = await Deno.readTextFile(versionFile);
  const stamped = stampCommit(source, commit);
  await Deno.writeTextFile(versionFile, stamped);
}

/** Replaces the `COMMIT` constant's value in src/version.ts's source. */
export function stampCommit(source: string, commit: string): string {
  const pattern = /^export const COMMIT: string = "[^"]*";$/m;
  if (!pattern.test(source)) {
    throw new BuildError(
      'src/version.ts has no line `export const COMMIT: string = "…";` to stamp',
    );
  }
  if (!/^[0-9a-z-]+$/.test(commit)) throw new BuildError(`Cannot stamp commit "${commit}"`);
  return source.replace(pattern, `export const COMMIT: string = "${commit}";`);
}

/**
 * In the build copy only: sets `nodeModulesDir: "auto"` in its deno.json, installs the npm
 * packages of the lockfile into its `node_modules/`, and type-checks it while the packages'
 * type declarations are still there (the compile runs with `--no-check` after pruning).
 */
async function installNodeModules(stage: string): Promise<void> {
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

function describePrune(pruned: PruneResult): string {
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
async function checkStillPruned(stage: string, pruned: PruneResult, after: string) {
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

/**
 * Runs the pruned build copy the way the binary runs: `deno run` with its `node_modules/`
 * and exactly the release permission flags ({@linkcode RUNTIME_FLAGS}), plus read and write
 * on one temp directory (as `cliCommand`'s `paths` does), from `/`. Exercises every path
 * that loads a dependency: commander (`--version`, `--help`), csv-parse and zod (`check` and
 * `sync` parse a map and options), the recipes (`recipe list`) and the OCI SDK, imported
 * lazily (`sync` against the OCI stand-in, with instance principals and with an API key;
 * the files must hold the secrets). Returns the steps it ran; throws
 * {@linkcode BuildError} with the output of the first one that misbehaves.
 */
export async function smokeRun(stage: string, commit: string): Promise<string[]> {
  const version = JSON.parse(await Deno.readTextFile(`${stage}/deno.json`)).version;
  const dir = await Deno.makeTempDir({ prefix: "secretsync-smoke-" });
  const oci = await startOciStandIn();
  const ran: string[] = [];
  try {
    const root = `${dir}/secrets`;
    await Deno.mkdir(root, { mode: 0o700 });
    await Deno.chmod(root, 0o700);
    const secrets = {
      instance: "ocid1.vaultsecret.oc1.iad.amaaaaaasmokeinstance",
      apiKey: "ocid1.vaultsecret.oc1.iad.amaaaaaasmokeapikey",
    };
    const values = { instance: crypto.randomUUID(), apiKey: crypto.randomUUID() };
    oci.setSecret(secrets.instance, values.instance);
    oci.setSecret(secrets.apiKey, values.apiKey);
    const maps = { instance: `${dir}/instance.csv`, apiKey: `${dir}/api_key.csv` };
    await Deno.writeTextFile(
      maps.instance,
      `# ocid,path,mode,container,signal\n${secrets.instance},${root}/instance,0600,,\n`,
    );
    await Deno.writeTextFile(maps.apiKey, `${secrets.apiKey},${root}/app/api_key,0440\n`);
    const { configFile, profile } = await oci.writeApiKeyConfig(dir);
    const state = ["--root", root, "--state-dir", `${dir}/state`];

    const flags = RUNTIME_FLAGS.map((flag) =>
      /^--allow-(read|write)=/.test(flag) ? `${flag},${dir}` : flag
    );
    const cli = async (label: string, args: string[], expectCode: number, expectOut?: RegExp) => {
      const shown = `secretsync ${args.join(" ").replaceAll(dir, "$SMOKE")}`;
      ran.push(label);
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          `--config=${stage}/deno.json`,
          "--node-modules-dir=auto",
          "--frozen",
          ...flags,
          `${stage}/src/main.ts`,
          ...args,
        ],
        cwd: "/",
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      const leaked = Object.values(values).some((v) => stdout.includes(v) || stderr.includes(v));
      // src/vault/sdk.ts keeps the SDK quiet; its frames now live under node_modules/.
      const noisy = /DeprecationWarning|punycode/.test(stderr);
      if (output.code !== expectCode || (expectOut && !expectOut.test(stdout)) || leaked || noisy) {
        throw new BuildError(
          `Smoke run of the pruned build copy failed: \`${shown}\` exited with ${output.code} ` +
            `(expected ${expectCode}${expectOut ? `, stdout matching ${expectOut}` : ""})` +
            `${leaked ? " and printed a secret" : ""}${noisy ? " and the SDK was not quiet" : ""}` +
            ". A file pruned from node_modules may " +
            `be needed after all (see pruneNodeModules in scripts/compile.ts).\n` +
            `stdout:\n${stdout.trim()}\nstderr:\n${stderr.trim()}`,
        );
      }
    };
    const escaped = `${version} (commit ${commit})`.replace(/[.()]/g, "\\$&");
    await cli("--version", ["--version"], 0, new RegExp(`^secretsync ${escaped}\n$`));
    await cli("--help", ["--help"], 0, /Usage: secretsync/);
    await cli("recipe list", ["recipe", "list"], 0, /nginx/);
    await cli("check", ["check", "--map", maps.instance, "--root", root], 0);
    await cli("sync (instance principal)", [
      "sync",
      "--map",
      maps.instance,
      ...state,
      "--imds-url",
      oci.imdsUrl,
      "--auth-endpoint",
      oci.authEndpoint,
      "--endpoint",
      oci.secretsEndpoint,
    ], 3);
    await cli("sync --auth api_key", [
      "sync",
      "--map",
      maps.apiKey,
      ...state,
      "--auth",
      "api_key",
      "--oci-config",
      configFile,
      "--profile",
      profile,
      "--endpoint",
      oci.secretsEndpoint,
    ], 3);
    const written = {
      instance: await Deno.readTextFile(`${root}/instance`).catch(() => undefined),
      apiKey: await Deno.readTextFile(`${root}/app/api_key`).catch(() => undefined),
    };
    if (written.instance !== values.instance || written.apiKey !== values.apiKey) {
      throw new BuildError("Smoke run: sync exited 3 but did not write the secrets it fetched");
    }
    if (oci.calls.imds === 0 || oci.calls.federation === 0 || oci.calls.rejected > 0) {
      throw new BuildError(
        `Smoke run: the stand-in saw ${oci.calls.imds} metadata and ${oci.calls.federation} ` +
          `federation requests and rejected ${oci.calls.rejected}: ${oci.rejections.join("; ")}`,
      );
    }
    return ran;
  } finally {
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function compileTarget(
  options: {
    stage: string;
    target: string;
    output: string;
    denort?: string;
    exclude: readonly string[];
  },
) {
  const args = [
    "compile",
    "--quiet", // also bakes log level "error" into the binary (see scripts/permissions.ts)
    `--config=${options.stage}/deno.json`,
    "--frozen",
    "--no-check", // installNodeModules() type-checked the copy before pruning its types
    ...COMPILE_FLAGS.filter((flag) => flag !== "--quiet"),
    ...options.exclude.map((path) => `--exclude=${path}`),
    `--target=${options.target}`,
    `--output=${options.output}`,
    `${options.stage}/src/main.ts`,
  ];
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (options.denort) env.DENORT_BIN = options.denort;
  try {
    await run(Deno.execPath(), args, { cwd: options.stage, env });
  } catch (error) {
    const message = (error as Error).message;
    const hint = /denort/.test(message) && !options.denort
      ? "\nThe Deno runtime (denort) could not be downloaded: build on a machine that reaches " +
        'dl.deno.land (README, "Release"), or check the payload here with `deno task compile:check`.'
      : "";
    throw new BuildError(`deno compile for ${options.target} failed: ${message}${hint}`);
  }
}

/** The compile metadata a Deno 2.9 binary carries: the parts checked here. */
interface CompileMetadata {
  permissions: Record<string, string[] | boolean | null>;
  log_level: string | null;
}

/** Checks what is baked into a built binary: permissions, no prompt, units and commit. */
export function verifyPayload(bytes: Uint8Array, target: string, commit: string): void {
  const metadata = readMetadata(bytes);
  if (!metadata) throw new BuildError(`${target}: no compile metadata found in the binary`);
  const problems = permissionDifferences(metadata.permissions, PERMISSIONS);
  if (metadata.permissions.prompt !== false) problems.push("it may prompt for permissions");
  if (metadata.log_level !== "ERROR") problems.push(`log level is ${metadata.log_level}`);
  for (const [name, text] of Object.entries(UNITS)) {
    if (indexOf(bytes, new TextEncoder().encode(text)) < 0) {
      problems.push(`the unit ${name} is not in the payload`);
    }
  }
  if (indexOf(bytes, new TextEncoder().encode(`"${commit}"`)) < 0) {
    problems.push(`the commit "${commit}" is not in the payload`);
  }
  if (problems.length > 0) {
    throw new BuildError(
      `${target}: the binary is not what was asked for:\n  ${problems.join("\n  ")}`,
    );
  }
}

/** Compares baked permissions with the set; returns one line per difference. */
export function permissionDifferences(
  baked: Record<string, unknown>,
  set: PermissionSet,
): string[] {
  const expected: Record<string, readonly string[] | null> = {
    allow_read: set.read,
    allow_write: set.write,
    allow_run: set.run,
    allow_env: set.env,
    ignore_env: set.ignoreEnv,
    allow_net: set.net,
    allow_sys: set.sys,
    allow_ffi: null,
    deny_read: null,
    deny_write: null,
    deny_run: null,
    deny_env: null,
    deny_net: null,
    deny_sys: null,
    deny_ffi: null,
    ignore_read: null,
  };
  const problems: string[] = [];
  for (const [key, want] of Object.entries(expected)) {
    const got = baked[key] ?? null;
    const norm = (v: unknown) => JSON.stringify(Array.isArray(v) && v.length === 0 ? null : v);
    if (norm(got) !== norm(want)) {
      problems.push(`${key} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
  }
  return problems;
}

/** Finds the compile metadata JSON (`{"argv":[…`) in a binary and parses it. */
export function readMetadata(bytes: Uint8Array): CompileMetadata | undefined {
  const start = lastIndexOf(bytes, new TextEncoder().encode('{"argv":['));
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      return JSON.parse(new TextDecoder().decode(bytes.subarray(start, i + 1)));
    }
  }
  return undefined;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  for (let i = haystack.indexOf(first, from); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function lastIndexOf(haystack: Uint8Array, needle: Uint8Array): number {
  let found = -1;
  for (let i = indexOf(haystack, needle); i >= 0; i = indexOf(haystack, needle, i + 1)) {
    found = i;
  }
  return found;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(b: BuiltTarget): string {
  const payload = b.payloadBytes === undefined ? "" : `, payload ${size(b.payloadBytes)}`;
  return `secretsync-${b.target}: ${size(b.bytes)}${payload}, ${
    b.seconds.toFixed(1)
  } s, sha256 ${b.sha256}`;
}

/** `9.41 MB (8.97 MiB, 9412345 bytes)`: decimal first, as budgets are stated. */
export function size(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB (${(bytes / 1024 / 1024).toFixed(2)} MiB, ${bytes} bytes)`;
}

async function standInRuntime(): Promise<string> {
  for (const path of ["/usr/bin/true", "/bin/true"]) if (await exists(path)) return path;
  throw new BuildError("No stand-in runtime for --check: set DENORT_BIN to any executable");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Runs a program; returns its stdout, or throws with its stderr when it fails. */
async function run(
  program: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<string> {
  const result = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr).trim();
  if (!result.success) {
    throw new Error(
      `${program} ${args[0]} exited with code ${result.code}: ${stderr || "no output"}`,
    );
  }
  return new TextDecoder().decode(result.stdout);
}

function parseArgs(args: string[]): BuildOptions {
  const options: BuildOptions = { check: false };
  const targets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--check") options.check = true;
    else if (arg === "--target" && args[i + 1]) targets.push(args[++i]);
    else if (arg.startsWith("--target=")) targets.push(arg.slice("--target=".length));
    else {
      throw new BuildError(`Unknown argument "${arg}": use [--check] [--target <triple>]...`);
    }
  }
  if (targets.length > 0) options.targets = targets;
  return options;
}

if (import.meta.main) {
  try {
    const options = parseArgs(Deno.args);
    const started = performance.now();
    const result = await build(options);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      options.check
        ? `compile:check ok: ${result.targets.length} targets, commit ${result.commit}, ${seconds} s`
        : `Built ${result.targets.length} binaries in dist/ from commit ${result.commit} in ${seconds} s`,
    );
  } catch (error) {
    console.error(`compile: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
