/**
 * Runs a host program (docker, podman, systemctl, kill) the careful way: no stdin, a clean
 * environment, bounded output, and a deadline after which its whole process group is killed,
 * so a hung CLI or anything it started can never hold up a run.
 *
 * Requires `--allow-run` for the program.
 *
 * @module
 */

/** Used when secretsync itself runs without `PATH` (some service managers): the programs find
 * their helpers (conmon, runc, iptables, credential helpers) on it. */
export const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MAX_OUTPUT_BYTES = 1 << 20;

/** The minimal environment for a host program: `PATH` only. */
export function hostEnv(): Record<string, string> {
  return { PATH: Deno.env.get("PATH") || FALLBACK_PATH };
}

/** What one command produced. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode runCommand}. */
export interface CommandOptions {
  /** The child's whole environment (nothing else of secretsync's is passed). */
  env: Record<string, string>;
  /** The child's process group is killed when this passes. */
  timeoutMs: number;
}

/**
 * Runs `bin args…` once with stdin closed, output captured (at most 1 MiB a stream) and a
 * deadline. Throws when it cannot be started or times out; an exit code, zero or not, is a
 * result.
 *
 * @example
 * ```ts
 * const { code, stderr } = await runCommand("podman", ["kill", "--signal=HUP", "--", "web"], {
 *   env: hostEnv(),
 *   timeoutMs: 15_000,
 * });
 * ```
 */
export async function runCommand(
  bin: string,
  args: string[],
  options: CommandOptions,
): Promise<CommandResult> {
  const { timeoutMs } = options;
  let child: Deno.ChildProcess;
  try {
    // A bare name is looked up on the PATH given to the child, not on secretsync's own.
    child = new Deno.Command(bin, {
      args,
      env: options.env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // Its own process group, so a timeout kills whatever the CLI started too (a plugin, a
      // credential helper, a shell's sleep) and nothing keeps our pipes open afterwards.
      detached: true,
    }).spawn();
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? (bin.includes("/") ? "no such file" : "not found on PATH")
      : error instanceof Error
      ? error.message
      : String(error);
    throw new Error(`${bin} could not be started: ${why}`, { cause: error });
  }

  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const outcome = await Promise.race([
      Promise.all([child.status, stdout.done, stderr.done]),
      deadline,
    ]);
    if (outcome === "timeout") {
      killGroup(child);
      await child.status;
      throw new Error(`"${bin} ${args[0]}" timed out after ${timeoutMs} ms and was killed`);
    }
    const [status] = outcome;
    return {
      code: status.code, // Deno reports 128 + signo for a CLI killed by a signal, as a shell does
      stdout: stdout.text(),
      stderr: stderr.text(),
    };
  } finally {
    clearTimeout(timer);
    // No-ops when the streams already ended; after a timeout, stops waiting on pipes that a
    // surviving process might still hold.
    await Promise.all([stdout.cancel(), stderr.cancel()]);
  }
}

/** Kills the CLI's process group; falls back to the CLI alone if the group is gone. */
function killGroup(child: Deno.ChildProcess): void {
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited between the deadline and the kill: nothing left to stop.
    }
  }
}

/** Reads a stream to its end, keeping at most {@linkcode MAX_OUTPUT_BYTES}. */
function collect(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let kept = 0;
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        // Keep draining past the limit so a chatty child never blocks on a full pipe.
        if (kept < MAX_OUTPUT_BYTES) {
          const part = value.subarray(0, MAX_OUTPUT_BYTES - kept);
          chunks.push(part);
          kept += part.length;
        }
      }
    } catch {
      // Cancelled after a timeout: what was read so far is all there is.
    }
  })();
  return {
    done,
    text: () => new TextDecoder().decode(concat(chunks)),
    cancel: async () => {
      await reader.cancel().catch(() => {
        // The stream already ended or errored; nothing to release.
      });
      await done;
    },
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
