/**
 * Reloads services that run outside containers, as systemd units: `systemctl reload NAME` (the
 * unit's own ExecReload) or `systemctl kill --kill-who=main --signal=SIGx NAME` (a signal to
 * the main process only, never to the unit's other processes).
 *
 * `--kill-who` is the spelling every systemd knows; systemd 252 renamed it `--kill-whom` and
 * still accepts the old one, while older releases (239 on Oracle Linux 8, 247 on Debian 11)
 * reject the new one.
 *
 * Requires `--allow-run` (systemctl) and `--allow-env` (PATH).
 *
 * @module
 */
import { ReloadError } from "./runtime.ts";

/** Options of {@linkcode systemctl}. */
export interface SystemctlOptions {
  /** The systemctl executable: a path, or a name looked up on PATH. @default "systemctl" */
  bin?: string;
  /** Deadline of the call, in ms; systemctl is killed when it passes. @default 30000 */
  timeoutMs?: number;
}

const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_MESSAGE_CHARS = 1000;

/** `systemctl reload -- NAME`: the unit's ExecReload, which systemd waits for. */
export function reloadUnitArgs(unit: string): string[] {
  return ["reload", "--", unit];
}

/** `systemctl kill --kill-who=main --signal=SIGx -- NAME`: the main process only. */
export function signalUnitArgs(unit: string, signal: string): string[] {
  return ["kill", "--kill-who=main", `--signal=SIG${signal}`, "--", unit];
}

/**
 * Runs `systemctl ARGS` with stdin closed, a deadline and only PATH in its environment
 * (secretsync's environment may hold OCI settings).
 *
 * @throws {ReloadError} when systemctl cannot start, times out or exits non-zero; the message
 *   holds its (bounded) output.
 */
export async function systemctl(args: string[], options: SystemctlOptions = {}): Promise<void> {
  const bin = options.bin ?? "systemctl";
  const timeoutMs = options.timeoutMs ?? 30_000;
  const what = `"systemctl ${args.join(" ")}"`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(bin, {
      args,
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") || FALLBACK_PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "systemctl not found" : String(error);
    throw new ReloadError(`Cannot run ${what}: ${why}`);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const outcome = await Promise.race([child.output(), deadline]);
    if (outcome === "timeout") {
      try {
        child.kill("SIGKILL");
      } catch {
        // It ended between the deadline and the kill.
      }
      throw new ReloadError(`Cannot run ${what}: timed out after ${timeoutMs} ms`);
    }
    if (outcome.code !== 0) {
      const text = new TextDecoder().decode(outcome.stderr).trim() ||
        new TextDecoder().decode(outcome.stdout).trim() || "no output";
      const line = text.replace(/\s*\n\s*/g, " | ");
      const shown = line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
      throw new ReloadError(`${what} failed (exit code ${outcome.code}): ${shown}`);
    }
  } finally {
    clearTimeout(timer);
  }
}
