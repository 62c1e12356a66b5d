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
 * 3. Compiles each target from the copy. `--check` sets `DENORT_BIN` to a stand-in runtime
 *    (denort cannot be downloaded everywhere): the result is the real payload on a runtime
 *    that does not run it, enough to check the graph, the size and what is baked in.
 * 4. Reads the metadata back out of each binary: the permissions must be exactly
 *    {@linkcode COMPILE_FLAGS}, no prompt, and the units and commit must be in the payload.
 * 5. `--check`: the payload (binary minus runtime) must stay within the budget.
 *    Release: writes `dist/SHA256SUMS`, checkable with `sha256sum -c`.
 *
 * @module
 */
import { PERMISSIONS, type PermissionSet } from "../src/permissions.ts";
import { UNITS } from "../src/assets.ts";
import { syncAssets } from "./assets.ts";
import { COMPILE_FLAGS, REPO_ROOT } from "./permissions.ts";

/** The targets a release ships. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] as const;

/** Largest payload (binary minus runtime) `--check` accepts: 15 MiB, Deno's "15MB". */
export const PAYLOAD_BUDGET_BYTES = 15 * 1024 * 1024;

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
  try {
    await stageTree(root, stage, modules, commit);
    await Deno.mkdir(outDir, { recursive: true });
    for (const [index, target] of targets.entries()) {
      const output = `${outDir}/secretsync-${target}`;
      const started = performance.now();
      await compileTarget({ stage, target, output, denort, typeCheck: index === 0 });
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
          `The ${target} payload is ${mib(result.payloadBytes)}, over the budget of ` +
            `${mib(budget)}: see what grew with \`deno compile\` without -q, or raise ` +
            "PAYLOAD_BUDGET_BYTES in scripts/compile.ts with a reason.",
        );
      }
    }
    if (!check) {
      const sums = built.map((b) => `${b.sha256}  secretsync-${b.target}\n`).join("");
      await Deno.writeTextFile(`${outDir}/SHA256SUMS`, sums);
      print(`Wrote ${outDir}/SHA256SUMS (check with: cd ${outDir} && sha256sum -c SHA256SUMS)`);
    }
  } finally {
    await Deno.remove(stage, { recursive: true });
    if (check) await Deno.remove(outDir, { recursive: true });
  }
  return { commit, targets: built };
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

async function compileTarget(
  options: { stage: string; target: string; output: string; denort?: string; typeCheck: boolean },
) {
  const args = [
    "compile",
    "--quiet", // also bakes log level "error" into the binary (see scripts/permissions.ts)
    `--config=${options.stage}/deno.json`,
    "--frozen",
    ...(options.typeCheck ? [] : ["--no-check"]),
    ...COMPILE_FLAGS.filter((flag) => flag !== "--quiet"),
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
  const payload = b.payloadBytes === undefined ? "" : `, payload ${mib(b.payloadBytes)}`;
  return `secretsync-${b.target}: ${mib(b.bytes)}${payload}, ${
    b.seconds.toFixed(1)
  } s, sha256 ${b.sha256}`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB (${bytes} bytes)`;
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
