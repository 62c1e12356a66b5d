/**
 * When a stream watcher does what: read the stream, apply events, run a full sync. Pure
 * functions of the time and a little state, so they are tested with a fake clock.
 *
 * @module
 */

/** The timing settings of a stream watcher, in milliseconds. */
export interface ScheduleSettings {
  /** Between stream reads (each wait is jittered down to 80 % of it). */
  pollMs: number;
  /** Events wait a random part of this before their sync, so hosts spread their vault calls. */
  spreadMs: number;
  /** Full syncs while the stream works (the safety net). */
  intervalMs: number;
  /** Full syncs while the stream has been unreachable for `outageGraceMs` or more. */
  fallbackIntervalMs: number;
  /** How long the stream may fail before full syncs run every `fallbackIntervalMs`. */
  outageGraceMs: number;
}

/** What the schedule depends on. Times are ms since the epoch. */
export interface ScheduleState {
  /** When the last full sync finished successfully; undefined: none yet. */
  lastFullSyncAt?: number;
  /** Since when every stream call failed; undefined while the stream works. */
  unreachableSince?: number;
}

/** Whether the stream counts as down: failing for at least the grace period. */
export function inFallback(state: ScheduleState, s: ScheduleSettings, now: number): boolean {
  return state.unreachableSince !== undefined && now - state.unreachableSince >= s.outageGraceMs;
}

/**
 * When the next full sync is due: `intervalMs` after the last, or `fallbackIntervalMs` while
 * the stream is down (at once if that is already past). Never run yet: now.
 *
 * @example
 * ```ts
 * const s = {
 *   pollMs: 30_000, spreadMs: 30_000, intervalMs: 21_600_000,
 *   fallbackIntervalMs: 900_000, outageGraceMs: 180_000,
 * };
 * nextFullSyncAt({ lastFullSyncAt: 0 }, s, 1_000); // 21_600_000
 * nextFullSyncAt({ lastFullSyncAt: 0, unreachableSince: 0 }, s, 200_000); // 900_000
 * ```
 */
export function nextFullSyncAt(state: ScheduleState, s: ScheduleSettings, now: number): number {
  if (state.lastFullSyncAt === undefined) return now;
  if (inFallback(state, s, now)) {
    // Events may be lost while the stream is down: the first fallback sync runs when the
    // outage is declared, unless one ran within the fallback interval; then every interval.
    const outageDeclared = state.unreachableSince! + s.outageGraceMs;
    const from = Math.max(state.lastFullSyncAt, outageDeclared - s.fallbackIntervalMs);
    return from + s.fallbackIntervalMs;
  }
  return state.lastFullSyncAt + s.intervalMs;
}

/**
 * The wait before the next read: 80–100 % of the poll interval, so hosts started together
 * drift apart and no wait exceeds the interval (the delay bound in the README relies on it).
 */
export function pollDelay(pollMs: number, random: () => number): number {
  return Math.round(pollMs * (0.8 + 0.2 * random()));
}

/** The wait between an event's arrival and its sync: uniform in [0, spreadMs). */
export function spreadDelay(spreadMs: number, random: () => number): number {
  return Math.floor(spreadMs * random());
}

/**
 * The wait after a 429: at least a second (the limit is per second), at most the poll
 * interval, jittered so throttled hosts do not come back together.
 */
export function throttleDelay(pollMs: number, random: () => number): number {
  return Math.max(1000, Math.round(Math.min(pollMs, 5000) * (0.5 + 0.5 * random())));
}
