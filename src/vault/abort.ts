/**
 * Racing promises against AbortSignals. The SDK's calls cannot all be cancelled (its IMDS
 * reads use node-fetch without a signal), so a deadline abandons them instead of waiting.
 *
 * @module
 */

/** Rejection value of `raceAbort` when the signal fired first. */
export class Aborted {
  constructor(readonly signal: AbortSignal) {}
}

/**
 * Settles like `promise`, or rejects with `Aborted` as soon as `signal` fires. The abandoned
 * promise's own rejection is swallowed so it cannot surface as an unhandled rejection.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => {
    // Deliberately ignored: after an abort nobody waits for this promise any more.
  });
  if (signal.aborted) return Promise.reject(new Aborted(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Aborted(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** Waits `ms`; resolves false early if `signal` fires (true when the full time passed). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const done = (full: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(full);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A signal that fires after `ms`, with a `clear()` so no timer outlives its request. */
export function timeoutSignal(ms: number): { signal: AbortSignal; clear(): void } {
  const c = new AbortController();
  const timer = setTimeout(() => c.abort(), ms);
  return { signal: c.signal, clear: () => clearTimeout(timer) };
}

/**
 * A signal that fires after `ms` or when any of `parents` fires, with a `clear()` that drops
 * the timer and the listeners. Cheaper than a timeout signal plus `AbortSignal.any` per request,
 * and nothing stays registered on the long-lived parents after `clear()`.
 */
export function deadlineSignal(
  ms: number,
  parents: readonly (AbortSignal | undefined)[],
): { signal: AbortSignal; timedOut(): boolean; clear(): void } {
  const c = new AbortController();
  let timedOut = false;
  const live = parents.filter((p): p is AbortSignal => p !== undefined);
  const onAbort = () => c.abort();
  const timer = setTimeout(() => {
    timedOut = true;
    c.abort();
  }, ms);
  for (const p of live) {
    if (p.aborted) c.abort();
    else p.addEventListener("abort", onAbort, { once: true });
  }
  return {
    signal: c.signal,
    timedOut: () => timedOut,
    clear() {
      clearTimeout(timer);
      for (const p of live) p.removeEventListener("abort", onAbort);
    },
  };
}
