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
import { hostEnv, runCommand } from "../host/command.ts";
import { ReloadError } from "./runtime.ts";
import { errorMessage, oneLine } from "../text.ts";

/** Options of {@linkcode systemctl}. */
export interface SystemctlOptions {
  /** The systemctl executable: a path, or a name looked up on PATH. @default "systemctl" */
  bin?: string;
  /** Deadline of the call, in ms; systemctl is killed when it passes. @default 30000 */
  timeoutMs?: number;
}

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
 * Runs `systemctl ARGS` with stdin closed, a deadline (after which it and anything it started
 * are killed) and only PATH in its environment (secretsync's may hold OCI settings).
 *
 * @throws {ReloadError} when systemctl cannot start, times out or exits non-zero; the message
 *   holds its (bounded) output.
 */
export async function systemctl(args: string[], options: SystemctlOptions = {}): Promise<void> {
  const what = `"systemctl ${args.join(" ")}"`;
  let outcome;
  try {
    outcome = await runCommand(options.bin ?? "systemctl", args, {
      env: hostEnv(),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
  } catch (error) {
    throw new ReloadError(`Cannot run ${what}: ${oneLine(errorMessage(error), MAX_MESSAGE_CHARS)}`);
  }
  if (outcome.code !== 0) {
    const shown = oneLine(outcome.stderr, MAX_MESSAGE_CHARS) ||
      oneLine(outcome.stdout, MAX_MESSAGE_CHARS) || "no output";
    throw new ReloadError(`${what} failed (exit code ${outcome.code}): ${shown}`);
  }
}
