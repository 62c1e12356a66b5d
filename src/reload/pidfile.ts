/**
 * Signals a process that runs on the host, found through its pidfile.
 *
 * secretsync runs as root, so a pidfile is a way to aim root's signals: it must be a regular
 * file owned by root or by the user running secretsync, that no group or other user can write
 * (daemons write their pidfile before they drop privileges, so this fits them). The PID must be
 * a running process other than PID 1 and secretsync itself. A PID can still be reused between
 * the check and the signal; the window is a few milliseconds.
 *
 * Everything goes through the `kill` program (`kill -0` to see that the process exists), not
 * `/proc` or `Deno.kill`: Deno 2.9 lets no restricted build read `/proc` or signal another
 * process itself, while `--allow-run=kill` is enough for the program.
 *
 * Requires `--allow-read` (the pidfile), `--allow-run=kill` and `--allow-env` (PATH).
 *
 * @module
 */
import { hostEnv, runCommand } from "../host/command.ts";
import { ReloadError } from "./runtime.ts";

const MAX_PID = 4_194_304; // the kernel's largest pid_max

/**
 * Reads and checks the PID in `path`.
 *
 * @throws {ReloadError} naming the pidfile and what is wrong with it.
 */
export async function readPidfile(path: string): Promise<number> {
  const fail = (why: string) => new ReloadError(`Cannot use pidfile ${path}: ${why}`);
  let info: Deno.FileInfo;
  let text: string;
  try {
    info = await Deno.lstat(path);
    if (!info.isFile) throw fail("not a regular file");
    if (info.size > 64) throw fail(`${info.size} bytes, too long for a PID`);
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof ReloadError) throw error;
    throw fail(error instanceof Deno.errors.NotFound ? "it does not exist" : _reason(error));
  }
  const mode = (info.mode ?? 0) & 0o7777;
  if (mode & 0o022) throw fail(`mode 0${mode.toString(8)} lets group or others write it`);
  const match = /^\s*([0-9]{1,7})\s*$/.exec(text);
  const pid = Number(match?.[1]);
  if (!match || pid < 2 || pid > MAX_PID || pid === Deno.pid) {
    throw fail(`"${text.trim().slice(0, 20)}" is not the PID of a service`);
  }
  const uid = Deno.uid();
  if (info.uid !== null && info.uid !== 0 && info.uid !== uid) {
    throw fail(`it belongs to uid ${info.uid}; a pidfile must belong to root or to uid ${uid}`);
  }
  const probe = await runKill(["-0", "--", String(pid)]);
  if (!probe.ok) throw fail(`no process ${pid} is running (stale pidfile?): ${probe.why}`);
  return pid;
}

/**
 * Sends `signal` (normalized, without `SIG`) to the process named by the pidfile, with the
 * `kill` program (`kill -s HUP -- PID`) rather than `Deno.kill`: `Deno.kill` needs an
 * unrestricted `--allow-run`, while the program needs only `--allow-run=kill`.
 *
 * @throws {ReloadError} when the pidfile is unusable or the signal cannot be sent.
 */
export async function signalPidfile(path: string, signal: string): Promise<number> {
  const pid = await readPidfile(path);
  const sent = await runKill(["-s", signal, "--", String(pid)]);
  if (!sent.ok) {
    throw new ReloadError(`Cannot send ${signal} to process ${pid} (pidfile ${path}): ${sent.why}`);
  }
  return pid;
}

/** Runs the `kill` program with a clean environment and a deadline. */
async function runKill(args: string[]): Promise<{ ok: true } | { ok: false; why: string }> {
  try {
    const output = await runCommand("kill", args, { env: hostEnv(), timeoutMs: 10_000 });
    if (output.code === 0) return { ok: true };
    return { ok: false, why: output.stderr.trim() || `exit code ${output.code}` };
  } catch (error) {
    return { ok: false, why: _reason(error) };
  }
}

/** Why a read failed; a permission this build lacks says what pidfile: targets need. */
function _reason(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    return "this build may not do that (pidfile: targets need read access to the pidfile, " +
      'and `kill` among the programs it may run; see README, "Permissions")';
  }
  return error instanceof Error ? error.message : String(error);
}
