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
 * 6. Reads the metadata back out of each binary: the permissions and V8 flags must be those of
 *    {@linkcode COMPILE_FLAGS}, no prompt, and the units and commit must be in the payload;
 *    no pruned path may have come back (the payload is the tree the smoke run ran).
 * 7. `--check`: the payload (binary minus runtime) must stay within the budget.
 *    Release: writes `dist/SHA256SUMS`, checkable with `sha256sum -c`.
 *
 * This module runs those steps; step 3 lives in `prune.ts`, step 4 in `smoke.ts`, and
 * reading a binary back (step 6) in `payload.ts`.
 *
 * @module
 */
import { syncAssets } from "./assets.ts";
import { COMPILE_FLAGS, REPO_ROOT } from "./permissions.ts";
import { BuildError, exists, run, size, unseenDynamicImports } from "./_util.ts";
import {
  checkStillPruned,
  describePrune,
  installNodeModules,
  pruneNodeModules,
  type PruneResult,
} from "./prune.ts";
import { smokeRun } from "./smoke.ts";
import { verifyPayload } from "./payload.ts";

export { BuildError, size, unseenDynamicImports };

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
        'dl.deno.land (docs/maintainers.md, "Release"), or check the payload here with `deno task compile:check`.'
      : "";
    throw new BuildError(`deno compile for ${options.target} failed: ${message}${hint}`);
  }
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

async function standInRuntime(): Promise<string> {
  for (const path of ["/usr/bin/true", "/bin/true"]) if (await exists(path)) return path;
  throw new BuildError("No stand-in runtime for --check: set DENORT_BIN to any executable");
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
