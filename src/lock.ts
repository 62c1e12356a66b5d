/**
 * One run at a time: the timer and a manual `systemctl start` must not write the same files at
 * once, nor remove each other's temp files.
 *
 * Requires `--allow-read` and `--allow-write` for the state directory.
 *
 * @module
 */

/** Another run held the lock for longer than we were willing to wait. */
export class LockTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LockTimeoutError";
  }
}

/** A held run lock; `release()` is idempotent. */
export interface RunLock {
  release(): void;
}

/**
 * Takes the exclusive run lock (`flock` on `<stateDir>/lock`), waiting at most `timeoutMs`.
 * The lock goes with the process: a killed run never leaves it held.
 *
 * Deno has no non-blocking lock call, and a blocked one cannot be cancelled: after a
 * {@link LockTimeoutError} the abandoned request may still take the lock later, so the caller
 * must end the process (the CLI exits 1 right away).
 */
export async function acquireRunLock(stateDir: string, timeoutMs: number): Promise<RunLock> {
  const path = `${stateDir}/lock`;
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const locked = await Promise.race([file.lock(true).then(() => true), timedOut]);
  clearTimeout(timer);
  if (!locked) {
    // The pending lock() may still succeed later; closing the file drops it either way.
    file.close();
    throw new LockTimeoutError(
      `Another secretsync run has held ${path} for ${Math.round(timeoutMs / 1000)} s; giving up`,
    );
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      file.close();
    },
  };
}
