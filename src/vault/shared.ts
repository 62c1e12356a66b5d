/**
 * One vault connection for many runs (`watch`'s cycles): authenticating is most of a small
 * run's cost (instance principals make a fresh RSA key pair and federate each time), so the
 * connection is kept between cycles, while each cycle still gets its own deadline and can be
 * abandoned at once when `watch` stops.
 *
 * The connection is reopened when it is older than `maxAgeMs` and after any cycle in which a
 * fetch failed, so an expired or revoked token, or a changed policy, never sticks.
 *
 * @example
 * ```ts
 * import { SharedVault } from "./shared.ts";
 *
 * const vault = new SharedVault({ auth: { mode: "instance_principal" }, stage: "CURRENT" }, {
 *   runTimeoutMs: 45_000,
 * });
 * const stop = new AbortController();
 * const source = vault.forRun(stop.signal);
 * try {
 *   const { version } = await source.fetch("ocid1.vaultsecret.oc1.iad.example");
 * } finally {
 *   source.close(); // ends this run's deadline; the connection stays open
 * }
 * vault.close();
 * ```
 *
 * @module
 */
import { openVault } from "./open.ts";
import type { SecretSource, VaultOptions } from "./types.ts";

/** Options of {@linkcode SharedVault}. */
export interface SharedVaultOptions {
  /** Deadline of each run's requests, in milliseconds (`--timeout`). */
  runTimeoutMs: number;
  /** Reopen a connection older than this. @default 15 minutes */
  maxAgeMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/** A vault kept open across runs; see the module documentation. */
export class SharedVault {
  #options: Omit<VaultOptions, "signal">;
  #runTimeoutMs: number;
  #maxAgeMs: number;
  #now: () => number;
  #current?: { source: Promise<SecretSource>; openedAt: number; closer: AbortController };

  constructor(options: Omit<VaultOptions, "signal">, shared: SharedVaultOptions) {
    this.#options = options;
    this.#runTimeoutMs = shared.runTimeoutMs;
    this.#maxAgeMs = shared.maxAgeMs ?? 15 * 60_000;
    this.#now = shared.now ?? Date.now;
  }

  /**
   * A source for one run. Its fetches fail at once after the run's deadline or when `stop`
   * fires (the request itself is abandoned in the background, bounded by its own timeout).
   * `close()` ends the run; a run in which a fetch failed drops the connection.
   */
  forRun(stop: AbortSignal): SecretSource {
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new Error("not fetched: the run's deadline (--timeout) passed")),
      this.#runTimeoutMs,
    );
    const onStop = () => deadline.abort(new Error("not fetched: watch is stopping"));
    if (stop.aborted) onStop();
    else stop.addEventListener("abort", onStop, { once: true });
    let failed = false;
    return {
      fetch: async (secretId, query) => {
        try {
          const source = await untilAborted(this.#connection(), deadline.signal);
          return await untilAborted(
            query ? source.fetch(secretId, query) : source.fetch(secretId),
            deadline.signal,
          );
        } catch (error) {
          failed = true;
          throw error;
        }
      },
      upcoming: (fetches, inFlight) => {
        // A hint: it waits for the connection the first fetch opens anyway, and never fails. No
        // fetches, no connection (authenticating is the expensive part, and may fail off OCI).
        if (fetches.length === 0 || deadline.signal.aborted) return;
        this.#connection().then((source) => source.upcoming?.(fetches, inFlight), () => {});
      },
      close: () => {
        clearTimeout(timer);
        stop.removeEventListener("abort", onStop);
        if (failed || deadline.signal.aborted) this.#drop();
      },
    };
  }

  /** Closes the connection; in-flight requests are abandoned. Idempotent. */
  close(): void {
    this.#drop();
  }

  #connection(): Promise<SecretSource> {
    const current = this.#current;
    if (current && this.#now() - current.openedAt < this.#maxAgeMs) return current.source;
    this.#drop();
    const closer = new AbortController();
    const source = openVault({ ...this.#options, signal: closer.signal });
    const opened = { source, openedAt: this.#now(), closer };
    this.#current = opened;
    // A failed open is not kept: the next fetch tries again.
    source.catch(() => {
      if (this.#current === opened) this.#current = undefined;
    });
    return source;
  }

  #drop(): void {
    const current = this.#current;
    this.#current = undefined;
    if (!current) return;
    current.closer.abort();
    current.source.then((source) => source.close(), () => {
      // It never opened: nothing to close.
    });
  }
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {}); // abandoned: its outcome no longer matters
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {}); // abandoned: its outcome no longer matters
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
