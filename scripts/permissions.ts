/**
 * The Deno flags secretsync runs with, built from {@linkcode PERMISSIONS} in
 * `src/permissions.ts`: `scripts/compile.ts` bakes them into the binary, and tests run the CLI
 * under `deno run` with the same flags through {@linkcode cliCommand}, so a permission the
 * binary lacks fails a test here.
 *
 * @example
 * ```ts
 * import { cliCommand } from "./permissions.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const { code, stdout } = await cliCommand(["check", "--map", `${dir}/map.csv`, "--root", dir], {
 *   paths: [dir],
 * }).output();
 * ```
 *
 * @module
 */
import { PERMISSIONS, type PermissionSet } from "../src/permissions.ts";

export { PERMISSIONS };

/** The repository root this script lives in. */
export const REPO_ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The CLI's entry point. */
export const MAIN_MODULE = `${REPO_ROOT}/src/main.ts`;

/**
 * The permission flags for a permission set, one flag per kind, in a fixed order.
 *
 * @example
 * ```ts
 * permissionFlags(PERMISSIONS); // ["--allow-read=/etc/oci-secretsync,…", …]
 * ```
 */
export function permissionFlags(set: PermissionSet): string[] {
  const flag = (name: string, values: readonly string[]) =>
    values.length > 0 ? [`--${name}=${values.join(",")}`] : [];
  for (const [kind, values] of Object.entries(set)) {
    for (const value of values as string[]) {
      if (value === "" || value.includes(",")) {
        throw new Error(`Cannot use ${kind} permission "${value}": empty or contains a comma`);
      }
    }
  }
  return [
    ...flag("allow-read", set.read),
    ...flag("allow-write", set.write),
    ...flag("allow-run", set.run),
    ...flag("allow-env", set.env),
    ...flag("ignore-env", set.ignoreEnv),
    ...flag("allow-net", set.net),
    ...flag("allow-sys", set.sys),
  ];
}

/**
 * Everything `deno run` and `deno compile` share: the permissions, never a prompt (a timer
 * job has no one to ask), and `--quiet` so Deno's own notices stay out of the journal (it
 * prints one per `--allow-run` program missing from `PATH`, e.g. docker on a podman host).
 */
export const RUNTIME_FLAGS: readonly string[] = [...permissionFlags(PERMISSIONS), ...runOptions()];

/**
 * `deno compile` only: {@linkcode RUNTIME_FLAGS}, plus no V8 code cache, which a compiled
 * binary would otherwise write to `$TMPDIR` on its first run: the service has a private /tmp,
 * so it would be rewritten on every run, and nothing is written outside the paths above.
 */
export const COMPILE_FLAGS: readonly string[] = [...RUNTIME_FLAGS, "--no-code-cache"];

/** Options for {@linkcode cliCommand}. */
export interface CliOptions {
  /** Working directory: anything but the checkout, like an installed binary. @default "/" */
  cwd?: string;
  /**
   * Test fixture directories, added to `--allow-read` and `--allow-write` only; every other
   * permission stays exactly the compiled set. @default []
   */
  paths?: readonly string[];
  /**
   * Environment of the CLI, on top of this process's (or instead, with `clearEnv`).
   * `NO_COLOR=1` and `DENO_NO_UPDATE_CHECK=1` are set unless given here: `deno run` otherwise
   * looks up dl.deno.land once a process has lived half a second (a compiled binary never does).
   */
  env?: Record<string, string>;
  /**
   * A program (and its arguments) to run `deno` under, e.g. `["strace", "-f", …]`.
   * @default none: `deno` itself
   */
  prefix?: readonly string[];
  /** @default false */
  clearEnv?: boolean;
  /** @default "null" */
  stdin?: "piped" | "inherit" | "null";
  /** @default "piped" */
  stdout?: "piped" | "inherit" | "null";
  /** @default "piped" */
  stderr?: "piped" | "inherit" | "null";
}

/**
 * A `Deno.Command` that runs `secretsync <args>` from source with exactly the compiled
 * binary's flags (not `-A`), from a directory other than the checkout. Requires `--allow-run`
 * for `deno`.
 *
 * @example
 * ```ts
 * const { code, stdout } = await cliCommand(["--version"]).output();
 * ```
 */
export function cliCommand(args: readonly string[], options: CliOptions = {}): Deno.Command {
  const paths = options.paths ?? [];
  for (const path of paths) {
    if (!path.startsWith("/")) throw new Error(`Cannot allow path "${path}": it must be absolute`);
  }
  const set: PermissionSet = {
    ...PERMISSIONS,
    read: [...PERMISSIONS.read, ...paths],
    write: [...PERMISSIONS.write, ...paths],
  };
  const [program, ...before] = [...(options.prefix ?? []), Deno.execPath()];
  return new Deno.Command(program, {
    args: [
      ...before,
      "run",
      `--config=${REPO_ROOT}/deno.json`,
      ...permissionFlags(set),
      ...runOptions(),
      MAIN_MODULE,
      ...args,
    ],
    cwd: options.cwd ?? "/",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...options.env },
    clearEnv: options.clearEnv ?? false,
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "piped",
    stderr: options.stderr ?? "piped",
  });
}

function runOptions(): string[] {
  // A young generation of at most 2 MiB per semi-space: V8 otherwise grows it to 16 MiB under a
  // run's allocation rate, which at a thousand secrets was 20–40 MiB of peak RSS for garbage.
  // Measured: no change in CPU time. Not a permission; it only bounds the heap's nursery.
  // --expose-gc: `watch` collects once after each cycle (src/watch.ts), so a process that runs
  // for months keeps a flat heap instead of garbage V8 would put off collecting.
  // --single-threaded-gc: the collector's helper threads cost more CPU than they save on a
  // small VM whose two cores already run the main thread and the session key's worker
  // (measured over 14 interleaved runs of 1,000 secrets: 2.96 s of CPU against 3.10 s, the
  // same wall time; a gain smaller than one run's noise, and none seen in the start-up).
  return [
    "--no-prompt",
    "--quiet",
    "--v8-flags=--max-semi-space-size=2,--expose-gc,--single-threaded-gc",
  ];
}

if (import.meta.main) {
  // `deno run scripts/permissions.ts`: print the flags, one per line, for a person or a shell.
  console.log(RUNTIME_FLAGS.join("\n"));
}
