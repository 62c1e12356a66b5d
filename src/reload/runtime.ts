/**
 * Container runtimes (the `docker` and `podman` CLIs) behind one small interface:
 * send a signal, run a command inside a container, ask whether a container exists and what
 * it mounts.
 *
 * Every call is one child process of the runtime's CLI, with stdin closed, output
 * captured, a deadline, and an explicit minimal environment: secretsync holds OCI
 * credentials in its own environment and must never hand them to a child.
 *
 * Requires `--allow-run` (the CLI) and `--allow-env` (to build the child's environment).
 *
 * @example
 * ```ts
 * import { detectRuntime } from "./runtime.ts";
 *
 * const runtime = await detectRuntime("auto");
 * await runtime.signal("web", "HUP");
 * const { code, stderr } = await runtime.exec("web", ["nginx", "-t"]);
 * ```
 *
 * @module
 */
import { z } from "zod";
import { type CommandResult, hostEnv, runCommand } from "../host/command.ts";
import { errorMessage, oneLine } from "../text.ts";

/** A signal name, normalized without the `SIG` prefix: `"HUP"`, `"USR1"`, `"RTMIN+3"`. */
export type Signal = string;

/** The runtimes secretsync drives. */
export type RuntimeName = "docker" | "podman";

/** What a command run with {@linkcode ContainerRuntime.exec} produced. */
export interface ExecResult {
  /** Exit code. The CLI's own failures have codes too (125: no such container, 126/127: cannot run the command). */
  code: number;
  /** Standard output, decoded as UTF-8, at most 1 MiB. */
  stdout: string;
  /** Standard error, decoded as UTF-8, at most 1 MiB. */
  stderr: string;
}

/** One container runtime: four operations, each one CLI call. */
export interface ContainerRuntime {
  /** Which CLI this drives. */
  readonly name: RuntimeName;
  /**
   * Sends `signal` to the container's main process (`<cli> kill --signal=SIG -- NAME`).
   *
   * @throws {ReloadError} when the CLI fails (its stderr is in the message) or times out.
   */
  signal(container: string, signal: Signal): Promise<void>;
  /**
   * Runs `argv` inside the container (`<cli> exec -- NAME argv...`). A non-zero exit code is
   * returned, not thrown: the caller knows what the command's codes mean.
   *
   * @throws {ReloadError} when the CLI cannot be started or times out.
   */
  exec(container: string, argv: string[]): Promise<ExecResult>;
  /**
   * Whether a container of that name or ID exists, running or not.
   *
   * @throws {ReloadError} when the CLI fails for another reason than "no such container".
   */
  exists(container: string): Promise<boolean>;
  /**
   * The container's mounts (`<cli> container inspect --format '{{json .Mounts}}' -- NAME`), or
   * `null` when there is no such container. For `doctor`: a secret must reach a container
   * through a directory mount.
   *
   * @throws {ReloadError} when the CLI fails for another reason or prints something unreadable.
   */
  mounts(container: string): Promise<ContainerMount[] | null>;
}

/** One mount of a container, as `docker|podman container inspect` lists it. */
export interface ContainerMount {
  /** `bind`, `volume`, `tmpfs`, … */
  type: string;
  /** The host path (for a bind mount); empty when there is none. */
  source: string;
  /** Where it appears inside the container. */
  destination: string;
}

/** Options of {@linkcode containerRuntime}. */
export interface RuntimeOptions {
  /**
   * Deadline of each CLI call, in milliseconds; the CLI is killed when it passes.
   *
   * @default {15000}
   */
  timeoutMs?: number;
  /**
   * The CLI to run: a path, or a name looked up on `PATH`.
   *
   * @default {name}
   */
  bin?: string;
}

/** Options of {@linkcode detectRuntime}. */
export interface DetectOptions {
  /**
   * Deadline of each CLI call of the runtime that is returned.
   *
   * @default {15000}
   */
  timeoutMs?: number;
  /**
   * Deadline of each probe (`docker version`, `podman info`). A CLI that does not answer in
   * this time counts as unavailable, so a hung CLI cannot hang the run.
   *
   * @default {5000}
   */
  probeTimeoutMs?: number;
  /**
   * The CLIs to probe and then run, by runtime; a path or a name looked up on `PATH`.
   *
   * @default {{ docker: "docker", podman: "podman" }}
   */
  bins?: Partial<Record<RuntimeName, string>>;
}

/**
 * A reload could not be done: the runtime is missing or unreachable, the container is
 * unknown, the CLI failed or timed out. Callers catch this one and report the target as failed.
 */
export class ReloadError extends Error {
  /** Creates a reload error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ReloadError";
  }
}

/**
 * The server refused the new files: its validation (`nginx -t`, `haproxy -c`) failed, so
 * nothing was signalled. Unlike a signal that could not be sent, this says the files are bad:
 * the run puts back the files it wrote for the target.
 */
export class ValidationError extends ReloadError {
  /** Creates a validation error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ValidationError";
  }
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_PROBE_TIMEOUT_MS = 5_000;
const MAX_MESSAGE_CHARS = 2_000;

/**
 * The environment variables each CLI is given, when they are set. An allowlist rather than a
 * blocklist: secretsync's environment holds OCI settings and perhaps credentials.
 *
 * - docker: where the engine is and how to reach it (`DOCKER_HOST`, `DOCKER_CONTEXT`, TLS
 *   settings) and where its config lives (`DOCKER_CONFIG`, else `$HOME/.docker`).
 * - podman: a remote service (`CONTAINER_HOST`, `CONTAINER_CONNECTION`), alternative config
 *   files, and what rootless podman needs to find its storage and containers
 *   (`XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `DBUS_SESSION_BUS_ADDRESS`).
 *   `CONTAINER_PASSPHRASE` (an SSH key passphrase) is deliberately not passed.
 */
export const ENV_ALLOWLIST: Record<RuntimeName, readonly string[]> = {
  docker: [
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_API_VERSION",
  ],
  podman: [
    "HOME",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
  ],
};

/**
 * Container names and IDs as docker and podman accept them. Checked here although names are
 * validated when the map is parsed: a name starting with `-` would otherwise be read as a flag.
 */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** `HUP`, `USR1`, `RTMIN+3`, or a number; never something that starts with `-`. */
const SIGNAL_NAME = /^(?:[A-Z][A-Z0-9]*(?:[+-][0-9]+)?|[0-9]+)$/;

/**
 * Returns the runtime `name`, driven through its CLI. Does not check that the CLI exists or
 * reaches an engine: {@linkcode detectRuntime} does.
 *
 * Requires `--allow-run` and `--allow-env`.
 *
 * @param name Which CLI to drive.
 * @param opts Deadline and CLI path.
 * @returns The runtime.
 *
 * @example
 * ```ts
 * import { containerRuntime } from "./runtime.ts";
 *
 * const podman = containerRuntime("podman", { timeoutMs: 5000 });
 * if (await podman.exists("web")) await podman.signal("web", "HUP");
 * ```
 */
export function containerRuntime(name: RuntimeName, opts: RuntimeOptions = {}): ContainerRuntime {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`Cannot use timeout "${timeoutMs}": expected a positive integer of ms`);
  }
  const bin = opts.bin ?? name;
  const run = (args: string[]) => runCommand(bin, args, { env: _childEnv(name), timeoutMs });

  return {
    name,

    async signal(container, signal) {
      _checkContainer(container);
      if (!SIGNAL_NAME.test(signal)) {
        throw new ReloadError(`Cannot signal container "${container}": invalid signal "${signal}"`);
      }
      const action = `signal container "${container}" with ${signal}`;
      // `--signal=X` as one argument and `--` before the name: neither can be read as a flag.
      const result = await _orReloadError(
        action,
        run(["kill", `--signal=${signal}`, "--", container]),
      );
      if (result.code !== 0) throw _failed(action, name, result);
    },

    async exec(container, argv) {
      _checkContainer(container);
      if (argv.length === 0 || argv[0] === "") {
        throw new ReloadError(`Cannot exec in container "${container}": empty command`);
      }
      const action = `exec "${argv[0]}" in container "${container}"`;
      const result = await _orReloadError(action, run(["exec", "--", container, ...argv]));
      return { code: result.code, stdout: result.stdout, stderr: result.stderr };
    },

    async exists(container) {
      _checkContainer(container);
      const action = `inspect container "${container}"`;
      const result = await _orReloadError(
        action,
        run(["container", "inspect", "--format", "{{.Id}}", "--", container]),
      );
      if (result.code === 0) return true;
      // docker: "No such container: x"; podman: "no such container x" or "no such object".
      if (/no such (container|object)/i.test(result.stderr)) return false;
      throw _failed(action, name, result);
    },

    async mounts(container) {
      _checkContainer(container);
      const action = `inspect the mounts of container "${container}"`;
      const result = await _orReloadError(
        action,
        run(["container", "inspect", "--format", "{{json .Mounts}}", "--", container]),
      );
      if (result.code !== 0) {
        if (/no such (container|object)/i.test(result.stderr)) return null;
        throw _failed(action, name, result);
      }
      const parsed = mountsSchema.safeParse(_jsonOrUndefined(result.stdout));
      if (!parsed.success) throw new ReloadError(`Cannot ${action}: ${name} printed no mount list`);
      return (parsed.data ?? []).map((m) => ({
        type: m.Type ?? "",
        source: m.Source ?? "",
        destination: m.Destination ?? "",
      }));
    },
  };
}

/**
 * Picks the container runtime to use. `"auto"` takes the first of docker, podman whose CLI is
 * on `PATH` and answers: `docker version` must reach an engine (the CLI alone is not enough),
 * `podman info` must succeed. An explicit choice is probed the same way, so a misconfigured
 * runtime fails here with a clear message rather than at the first reload.
 *
 * The probes run side by side, each with a deadline (`probeTimeoutMs`), so detection takes at
 * most that long, whatever the CLIs do.
 *
 * Requires `--allow-run` and `--allow-env`.
 *
 * @param choice `"auto"`, or the runtime to use.
 * @param opts Deadlines and CLI paths.
 * @returns The runtime, ready to use.
 * @throws {ReloadError} when no runtime (or not the chosen one) is usable; the message says why for each.
 *
 * @example
 * ```ts
 * import { detectRuntime } from "./runtime.ts";
 *
 * const runtime = await detectRuntime("auto", { probeTimeoutMs: 3000 });
 * console.log(`[INFO] (reload) using ${runtime.name}`);
 * ```
 */
export async function detectRuntime(
  choice: "auto" | RuntimeName,
  opts: DetectOptions = {},
): Promise<ContainerRuntime> {
  const candidates: RuntimeName[] = choice === "auto" ? ["docker", "podman"] : [choice];
  const probeTimeoutMs = opts.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const bin = (name: RuntimeName) => opts.bins?.[name] ?? name;
  // Probed together, so detection takes at most one probe deadline, even with a hung docker;
  // docker still wins when both answer.
  const outcomes = await Promise.all(
    candidates.map((name) => _probe(name, bin(name), probeTimeoutMs)),
  );
  const usable = candidates.find((_, i) => outcomes[i] === undefined);
  if (usable) return containerRuntime(usable, { timeoutMs: opts.timeoutMs, bin: bin(usable) });
  const reasons = candidates.map((name, i) =>
    candidates.length > 1 ? `${name}: ${outcomes[i]}` : outcomes[i]
  );
  const what = choice === "auto" ? "docker or podman" : choice;
  throw new ReloadError(`Cannot use ${what}: ${reasons.join("; ")}`);
}

/** Returns why the runtime is unusable, or `undefined` when it answered. */
async function _probe(
  name: RuntimeName,
  bin: string,
  timeoutMs: number,
): Promise<string | undefined> {
  // docker: `version` asks the engine; `--format` makes it fail when there is none (plain
  // `docker version` prints the client part and still fails, but more verbosely).
  // podman: `info` opens the storage and finds the OCI runtime, which `version` does not.
  const args = name === "docker"
    ? ["version", "--format", "{{.Server.Version}}"]
    : ["info", "--format", "{{.Host.OCIRuntime.Name}}"];
  try {
    const result = await runCommand(bin, args, { env: _childEnv(name), timeoutMs });
    if (result.code === 0) return undefined;
    return `"${bin} ${args[0]}" failed (exit code ${result.code}): ${
      _excerpt(result.stderr) || "no output"
    }`;
  } catch (error) {
    return _message(error);
  }
}

/** The child's whole environment: `PATH` plus the runtime's allowlist, when set. */
function _childEnv(name: RuntimeName): Record<string, string> {
  const env = hostEnv();
  for (const key of ENV_ALLOWLIST[name]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/** What both CLIs print for `{{json .Mounts}}` (`null` for a container without mounts). */
const mountsSchema = z.array(z.object({
  Type: z.string().optional(),
  Source: z.string().optional(),
  Destination: z.string().optional(),
})).nullable();

function _jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // reported as "printed no mount list" by the caller
  }
}

function _checkContainer(container: string): void {
  if (!CONTAINER_NAME.test(container)) {
    throw new ReloadError(`Cannot use container name "${container}": not a valid container name`);
  }
}

/** Turns a start failure or timeout of the CLI into a ReloadError naming the action. */
async function _orReloadError(
  action: string,
  call: Promise<CommandResult>,
): Promise<CommandResult> {
  try {
    return await call;
  } catch (error) {
    throw new ReloadError(`Cannot ${action}: ${_message(error)}`, { cause: error });
  }
}

function _failed(action: string, name: RuntimeName, result: CommandResult): ReloadError {
  const detail = _excerpt(result.stderr) || _excerpt(result.stdout) || "no output";
  return new ReloadError(`Cannot ${action}: ${name} exited with code ${result.code}: ${detail}`);
}

/** The CLI's message, on one line and bounded, for log lines and error messages. */
function _excerpt(text: string): string {
  return oneLine(text, MAX_MESSAGE_CHARS);
}

function _message(error: unknown): string {
  return oneLine(errorMessage(error), MAX_MESSAGE_CHARS);
}
