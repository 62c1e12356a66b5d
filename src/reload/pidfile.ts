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
import { ownershipProblem } from "../ownership.ts";
import { errorMessage, oneLine } from "../text.ts";

const MAX_PID = 4_194_304; // the kernel's largest pid_max
/** A PID as daemons write it: digits without a leading zero, then maybe a line end. */
const PID_TEXT = /^\s*([1-9][0-9]{0,6})\s*$/;

/** Options of {@linkcode readPidfile} and {@linkcode signalPidfile}. */
export interface PidfileOptions {
  /**
   * Files the run writes secrets into: a pidfile that is one of them (the same file, through a
   * hard link or a symlinked directory) is refused before its content is read as a PID.
   * @default []
   */
  secretFiles?: readonly string[];
}

/**
 * Reads and checks the PID in `path`. Messages never quote the file's content, nor a PID that
 * names no running process: a mistyped pidfile could be a file holding a secret.
 *
 * @throws {ReloadError} naming the pidfile and what is wrong with it.
 */
export async function readPidfile(path: string, options: PidfileOptions = {}): Promise<number> {
  const fail = (why: string) => new ReloadError(`Cannot use pidfile ${path}: ${why}`);
  let info: Deno.FileInfo;
  let text: string;
  try {
    info = await Deno.lstat(path);
    if (!info.isFile) throw fail("not a regular file");
    const why = ownershipProblem(info, { owners: "root-or-self" });
    if (why) throw fail(why);
    // A second name for the file is how a secret file gets read as a pidfile from outside a
    // root; daemons write their pidfile under one name.
    if ((info.nlink ?? 1) > 1) throw fail(`it has ${info.nlink} hard links; a pidfile has one`);
    if (await isSecretFile(info, options.secretFiles ?? [])) {
      throw fail("it is a file secretsync writes a secret into");
    }
    if (info.size > 64) throw fail(`${info.size} bytes, too long for a PID`);
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof ReloadError) throw error;
    throw fail(error instanceof Deno.errors.NotFound ? "it does not exist" : _reason(error));
  }
  const match = PID_TEXT.exec(text);
  const pid = Number(match?.[1]);
  if (!match || pid < 2 || pid > MAX_PID || pid === Deno.pid) {
    throw fail(
      `its content is not the PID of a service (a number from 2 to ${MAX_PID}, not PID 1 ` +
        `or secretsync's own)`,
    );
  }
  const probe = await runKill(["-0", "--", String(pid)]);
  if (!probe.ok) throw fail(`no process with the PID it holds is running (stale pidfile?)`);
  return pid;
}

/** Whether `info` is the same file as one of `paths` (same device and inode). */
async function isSecretFile(info: Deno.FileInfo, paths: readonly string[]): Promise<boolean> {
  for (const path of paths) {
    try {
      const other = await Deno.stat(path);
      if (other.dev === info.dev && other.ino === info.ino) return true;
    } catch {
      // Not written yet or gone: it cannot be this file.
    }
  }
  return false;
}

/**
 * Sends `signal` (normalized, without `SIG`) to the process named by the pidfile, with the
 * `kill` program (`kill -s HUP -- PID`) rather than `Deno.kill`: `Deno.kill` needs an
 * unrestricted `--allow-run`, while the program needs only `--allow-run=kill`.
 *
 * @throws {ReloadError} when the pidfile is unusable or the signal cannot be sent.
 */
export async function signalPidfile(
  path: string,
  signal: string,
  options: PidfileOptions = {},
): Promise<number> {
  const pid = await readPidfile(path, options);
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
    return { ok: false, why: oneLine(output.stderr) || `exit code ${output.code}` };
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
  return oneLine(errorMessage(error));
}
