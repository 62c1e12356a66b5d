/**
 * `systemctl` for `install` and `uninstall`, which report its exit code and output themselves.
 * (Reloads of units go through `reload/systemd.ts`, which turns a failure into a reload error.)
 *
 * Requires `--allow-run` (systemctl) and `--allow-env` (PATH).
 *
 * @module
 */
import { hostEnv, runCommand } from "./command.ts";

/**
 * Runs `systemctl ARGS` the careful way (stdin closed, a deadline, only PATH in
 * its environment) for install and uninstall, which report the exit code and output
 * themselves instead of failing a reload.
 *
 * @throws whatever starting systemctl throws (`Deno.errors.NotFound` in its cause when it is
 *   not on PATH).
 */
export async function systemctlOutcome(
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number; output: string }> {
  const result = await runCommand("systemctl", args, { env: hostEnv(), timeoutMs });
  return { code: result.code, output: `${result.stderr}${result.stdout}` };
}
