/**
 * The retry policy, as pure functions: which failures to retry and how long to wait.
 *
 * The SDK's own policy (8 attempts, waits up to 30 s) is switched off; a timer job needs a
 * bounded run, so a whole failing run stays well under a minute with the defaults
 * (3 attempts × 10 s timeout + at most 2 × 2 s of backoff).
 *
 * @module
 */

/** Backoff parameters. */
export interface BackoffPolicy {
  /** Upper bound of the first wait. @default 200 */
  baseMs: number;
  /** Largest wait. @default 2000 */
  capMs: number;
}

/** The policy secretsync uses. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 200, capMs: 2000 };

/**
 * Whether an HTTP status is worth another try: 429 and 5xx are (throttling, outages); every
 * other status is an answer that will not change by asking again (400, 401, 403, 404, 409, …).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/** Options for `backoffDelayMs`. */
export interface BackoffOptions extends Partial<BackoffPolicy> {
  /** A source of numbers in [0, 1); injectable for tests. @default Math.random */
  random?: () => number;
}

/**
 * The wait before retry number `retry` (1 = the wait after the first failed attempt), with
 * "full jitter": uniform in [0, min(cap, base · 2^(retry-1))). Jitter spreads the retries of
 * many hosts whose timers fire together.
 *
 * @example
 * ```ts
 * backoffDelayMs(1); // somewhere in [0, 200)
 * backoffDelayMs(5, { random: () => 0.5 }); // 1000: the ceiling is capped at 2000
 * ```
 */
export function backoffDelayMs(retry: number, opts: BackoffOptions = {}): number {
  const baseMs = opts.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const capMs = opts.capMs ?? DEFAULT_BACKOFF.capMs;
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}
