/**
 * The scheduler behind `secretsync watch`: runs cycles one at a time, a full one at start and
 * then every interval (plus a random jitter, so a fleet does not hit the vault in the same
 * second), and in between whatever is asked for from outside: a full cycle now (SIGHUP), or
 * just some secrets now (an event consumer such as `watch --stream`).
 *
 * What a cycle does is the caller's (`runCycle`); this module only decides when, and never
 * runs two at once. It holds nothing per cycle, so its memory stays flat however long it runs.
 *
 * @example
 * ```ts
 * import { startWatchLoop } from "./watch.ts";
 *
 * const loop = startWatchLoop({
 *   intervalMs: 6 * 3600_000,
 *   jitterMs: 5 * 60_000,
 *   runCycle: async ({ trigger, secretIds, signal }) => {
 *     // a whole run (secretIds undefined) or just those secrets; stop early when signal aborts
 *   },
 * });
 * Deno.addSignalListener("SIGHUP", () => loop.trigger());
 * Deno.addSignalListener("SIGTERM", () => loop.stop());
 * await loop.done;
 * ```
 *
 * @module
 */

/** Why a cycle runs. */
export type CycleTrigger = "start" | "interval" | "request";

/** What the loop asks `runCycle` to do. */
export interface CycleRequest {
  /** 1 for the first cycle, then counting up. */
  number: number;
  trigger: CycleTrigger;
  /** The secrets to sync; `undefined` means every entry of the map (a full cycle). */
  secretIds?: readonly string[];
  /**
   * Aborted when the loop is stopped while this cycle runs: stop fetching and start nothing
   * new, but finish any file being written.
   */
  signal: AbortSignal;
}

/** Options of {@linkcode startWatchLoop}. */
export interface WatchLoopOptions {
  /** Runs one cycle. A rejection is reported to `onCycleError` and the loop goes on. */
  runCycle(request: CycleRequest): Promise<void>;
  /** Time between the end of a full cycle and the start of the next, in milliseconds. */
  intervalMs: number;
  /** Up to this much is added to each interval, at random. @default 0 */
  jitterMs?: number;
  /** Called after each full cycle with when the next one is due (ms since the epoch). */
  onScheduled?(nextFullAtMs: number): void | Promise<void>;
  /** Called when `runCycle` or `onScheduled` throws. @default ignore */
  onCycleError?(error: unknown, request: Omit<CycleRequest, "signal">): void;
  /** @default Math.random */
  random?: () => number;
  /** @default Date.now */
  now?: () => number;
}

/** A running loop and its controls. */
export interface WatchLoop {
  /** Settles when the loop has stopped and no cycle runs any more. */
  readonly done: Promise<void>;
  /**
   * Asks for a cycle as soon as the running one (if any) ends: of these secrets, or a full one
   * when none are given. Requests made meanwhile are merged into one cycle.
   */
  trigger(secretIds?: readonly string[]): void;
  /** When the next full cycle is due, in milliseconds since the epoch. */
  nextFullAt(): number;
  /** Moves the next full cycle (e.g. sooner while an event source is unreachable). */
  setNextFullAt(ms: number): void;
  /** No new cycle starts; a running one sees its signal aborted. Idempotent. */
  stop(): void;
}

/** setTimeout's longest delay; longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Starts the loop: the first full cycle begins at once.
 */
export function startWatchLoop(options: WatchLoopOptions): WatchLoop {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const jitterMs = options.jitterMs ?? 0;
  let nextFullAt = now();
  let fullRequested = false;
  let requested = new Set<string>();
  let stopped = false;
  let running: AbortController | undefined;
  let wake: (() => void) | undefined;
  let number = 0;
  let started = false;

  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  const sleepUntil = (at: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, Math.min(Math.max(0, at - now()), MAX_TIMER_MS));
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = async () => {
    while (!stopped) {
      const due = now() >= nextFullAt;
      let secretIds: string[] | undefined;
      let trigger: CycleTrigger;
      if (due || fullRequested) {
        trigger = !started ? "start" : fullRequested ? "request" : "interval";
        fullRequested = false;
        requested = new Set();
      } else if (requested.size > 0) {
        trigger = "request";
        secretIds = [...requested].sort();
        requested = new Set();
      } else {
        await sleepUntil(nextFullAt);
        continue;
      }
      started = true;
      number++;
      const controller = new AbortController();
      running = controller;
      const request = { number, trigger, secretIds };
      try {
        await options.runCycle({ ...request, signal: controller.signal });
      } catch (error) {
        options.onCycleError?.(error, request);
      } finally {
        running = undefined;
      }
      collectGarbage();
      if (secretIds === undefined && !stopped) {
        nextFullAt = now() + options.intervalMs + Math.floor(random() * jitterMs);
        try {
          await options.onScheduled?.(nextFullAt);
        } catch (error) {
          options.onCycleError?.(error, request);
        }
      }
    }
  };

  return {
    // Started on the next tick, so the controls exist before the first cycle runs.
    done: Promise.resolve().then(loop),
    trigger(secretIds) {
      if (stopped) return;
      if (secretIds === undefined) fullRequested = true;
      else for (const id of secretIds) requested.add(id);
      poke();
    },
    nextFullAt: () => nextFullAt,
    setNextFullAt(ms) {
      nextFullAt = ms;
      poke();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      running?.abort(new DOMException("watch is stopping", "AbortError"));
      poke();
    },
  };
}

/**
 * A major collection between cycles, where the release build exposes it (`--expose-gc`): V8
 * puts off collecting the old generation while the heap is small, so without it a watch's heap
 * climbs by garbage for hundreds of cycles (README, "Memory of a long-running watch"). Between
 * cycles nothing is in flight, and at one cycle per hours its cost does not count.
 */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}
