/**
 * One rate limit for every vault request of a run, that honours the vault's throttling.
 *
 * Requests are spaced at most `rate` per second (`--rate`; none by default). When the service
 * answers 429, the whole run slows down, not only the request that got it: the rate halves
 * (from the rate actually reached in the last second, when there was no limit) and every request
 * after it waits its turn. A 429 only counts once per change: answers to requests sent before
 * the rate last changed say nothing about the new rate. Each second without a counted 429 the
 * rate grows by half, up to the configured rate (or, without one, until it is twice what was
 * reached before the first 429, when the limit is dropped).
 *
 * The decisions are pure functions of a state and the clock (`reserve`, `throttle`), driven by
 * `createRateLimiter`, so tests run them on a made-up clock.
 *
 * @module
 */
import { sleep } from "./abort.ts";

/** The slowest a run goes, in requests per second. */
export const MIN_RATE = 1;
/** How often the rate grows again after a 429, in milliseconds. */
export const RECOVER_STEP_MS = 1000;
/** Growth per step. */
export const RECOVER_FACTOR = 1.5;
/** The window in which the rate reached is measured, in milliseconds. */
const WINDOW_MS = 1000;

/** The limiter's state; treat as opaque outside this module and its tests. */
export interface RateState {
  /** `--rate`, or Infinity. */
  readonly ceiling: number;
  /** The rate in force now, requests per second (Infinity: no spacing). */
  readonly current: number;
  /** When the next request may start (ms). */
  readonly nextAt: number;
  /** When `current` last changed (ms); 429s of requests sent before it do not count. */
  readonly changedAt: number;
  /** Without a ceiling: the rate reached before the first 429, where recovery ends. */
  readonly recoverTo: number;
  /** Requests started in the window that began at `windowAt` (to measure the rate reached). */
  readonly count: number;
  /** Requests started in the window before. */
  readonly previous: number;
  readonly windowAt: number;
  /** Counts counted 429s: a slot booked before one is booked again at the new rate. */
  readonly throttles: number;
}

/** The state at the start of a run: `rate` requests per second at most, or no limit. */
export function initialRate(rate: number | undefined, now: number): RateState {
  if (rate !== undefined && !(rate > 0)) throw new RangeError(`Invalid rate ${rate}`);
  const ceiling = rate ?? Infinity;
  return {
    ceiling,
    current: ceiling,
    nextAt: now,
    changedAt: now,
    recoverTo: ceiling,
    count: 0,
    previous: 0,
    windowAt: now,
    throttles: 0,
  };
}

/**
 * Books the next request slot: how long to wait before sending (ms), and the new state.
 *
 * @example
 * ```ts
 * let s = initialRate(10, 0);
 * let wait: number;
 * [s, wait] = reserve(s, 0); // 0: the first request goes at once
 * [s, wait] = reserve(s, 0); // 100: ten a second
 * ```
 */
export function reserve(state: RateState, now: number): [RateState, number] {
  const s = recover(state, now);
  const start = Math.max(now, s.nextAt);
  const spacing = Number.isFinite(s.current) ? 1000 / s.current : 0;
  const w = roll(s, now);
  return [{ ...w, nextAt: start + spacing, count: w.count + 1 }, start - now];
}

/**
 * A request sent at `sentAt` was answered 429 at `now`: halve the rate (once per change). Slots
 * booked before are void (their holders book again, see `createRateLimiter`), and the next one
 * is one interval of the new rate away.
 */
export function throttle(state: RateState, now: number, sentAt: number): RateState {
  if (sentAt < state.changedAt) return state;
  const w = roll(state, now);
  // Requests per second over the last window: this one's count plus the overlapping part of
  // the one before.
  const reached = w.count + w.previous * Math.max(0, 1 - (now - w.windowAt) / WINDOW_MS);
  const from = Number.isFinite(state.current) ? state.current : Math.max(reached, MIN_RATE);
  const current = Math.max(MIN_RATE, from / 2);
  return {
    ...state,
    current,
    changedAt: now,
    nextAt: now + 1000 / current,
    throttles: state.throttles + 1,
    recoverTo: Number.isFinite(state.ceiling)
      ? state.ceiling
      : Number.isFinite(state.recoverTo)
      ? state.recoverTo
      : 2 * from,
  };
}

/** Moves the counting window forward to `now`. */
function roll(state: RateState, now: number): RateState {
  const elapsed = Math.floor((now - state.windowAt) / WINDOW_MS);
  if (elapsed < 1) return state;
  return {
    ...state,
    previous: elapsed === 1 ? state.count : 0,
    count: 0,
    windowAt: state.windowAt + elapsed * WINDOW_MS,
  };
}

/** Grows the rate by `RECOVER_FACTOR` for every quiet `RECOVER_STEP_MS` since it changed. */
function recover(state: RateState, now: number): RateState {
  if (state.current >= state.ceiling) return state;
  const steps = Math.floor((now - state.changedAt) / RECOVER_STEP_MS);
  if (steps < 1) return state;
  let current = state.current * RECOVER_FACTOR ** steps;
  let recoverTo = state.recoverTo;
  if (current >= state.recoverTo) {
    // Back where it was: the configured rate, or no limit at all.
    current = state.ceiling;
    recoverTo = state.ceiling;
  }
  return { ...state, current, recoverTo, changedAt: state.changedAt + steps * RECOVER_STEP_MS };
}

/** The limiter a run's requests share. */
export interface RateLimiter {
  /** Waits for this request's slot; resolves early (false) when `signal` fires. */
  acquire(signal?: AbortSignal): Promise<boolean>;
  /** Reports a 429 for a request whose slot was granted at `sentAt` (from `now()`). */
  throttled(sentAt: number): void;
  /** The limiter's clock. */
  now(): number;
  /** The rate in force, requests per second (Infinity: none). */
  rate(): number;
}

/** A limiter on the monotonic clock (or `clock`, for tests). */
export function createRateLimiter(
  rate: number | undefined,
  clock: () => number = () => performance.now(),
): RateLimiter {
  let state = initialRate(rate, clock());
  return {
    async acquire(signal) {
      for (;;) {
        let wait: number;
        [state, wait] = reserve(state, clock());
        if (wait <= 0) return true;
        const booked = state.throttles;
        if (!(await sleep(wait, signal))) return false;
        // A 429 while waiting: this slot was booked at the old rate; book again.
        if (state.throttles === booked) return true;
      }
    },
    throttled(sentAt) {
      state = throttle(state, clock(), sentAt);
    },
    now: clock,
    rate: () => state.current,
  };
}
