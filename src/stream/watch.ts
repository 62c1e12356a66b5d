/**
 * `watch --stream`: a {@linkcode StreamWatcher} wired to the real edges — the streaming client,
 * the offset file in the state directory, a status file for `status` — with the runs left to
 * the caller: `sync(secrets?)` runs a whole run (of some secrets, or all) and says whether every
 * entry is in line.
 *
 * @example
 * ```ts
 * import { createLogger } from "../log.ts";
 * import { secretMatcher } from "./events.ts";
 * const watch = startStreamWatch({
 *   streamId: "ocid1.stream.oc1.iad.example",
 *   auth: { mode: "instance_principal" },
 *   stateDir: "/run/oci-secretsync",
 *   pollMs: 30_000,
 *   spreadMs: 30_000,
 *   intervalMs: 6 * 3600_000,
 *   fallbackIntervalMs: 15 * 60_000,
 * }, {
 *   log: createLogger(),
 *   sync: () => Promise.resolve(true),
 *   match: () => secretMatcher([{ secretId: "ocid1.vaultsecret.oc1.iad.example" }]),
 * });
 * Deno.addSignalListener("SIGTERM", () => watch.stop());
 * await watch.done;
 * ```
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { VaultAuth } from "../vault/types.ts";
import { sleep } from "../vault/abort.ts";
import { atomicWrite } from "../write.ts";
import { openStreamReader, type StreamReader } from "./client.ts";
import type { SecretMatcher } from "./events.ts";
import { readOffset, writeOffset } from "./offset.ts";
import { type StreamStatus, StreamWatcher } from "./watcher.ts";

/** Options of {@linkcode startStreamWatch}. */
export interface StreamWatchOptions {
  streamId: string;
  /** The stream's messages endpoint. @default from the region */
  endpoint?: string;
  region?: string;
  auth: VaultAuth;
  /** @default "0" */
  partition?: string;
  stateDir: string;
  pollMs: number;
  spreadMs: number;
  intervalMs: number;
  fallbackIntervalMs: number;
  /** @default 3 minutes, or the fallback interval when that is shorter */
  outageGraceMs?: number;
  /** Event types that trigger a sync; empty: any. */
  eventTypes?: readonly string[];
  /** Per streaming request. @default 10_000 */
  requestTimeoutMs?: number;
  /** Write `stream.json` (status) in the state directory after each step. @default true */
  statusFile?: boolean;
}

/** What the watch needs from its caller. */
export interface StreamWatchHooks {
  log: Logger;
  /** A whole run of these secrets (all when undefined); true when every entry is in line. */
  sync(secrets?: readonly string[]): Promise<boolean>;
  /** Which map secrets an event is about (`secretMatcher(entries)` of the map as it is now). */
  match(): SecretMatcher;
  /** @default openStreamReader with the options' auth and endpoint */
  openReader?(): Promise<StreamReader>;
  /** @default Date.now */
  now?(): number;
  /** @default Math.random */
  random?(): number;
  /** Called after `stream.json` was written (on a change, and at least once a minute), e.g. to
   * refresh the metrics file. */
  onStatus?(status: StreamStatus): void | Promise<void>;
}

/** A running stream watch. */
export interface StreamWatch {
  status(): StreamStatus;
  /** Stops after the current step; `done` settles then. Idempotent. */
  stop(): void;
  readonly done: Promise<void>;
}

/** The status file in a state directory. */
export function streamStatusFile(stateDir: string): string {
  return `${stateDir}/stream.json`;
}

/** Starts watching the stream; see the module doc. */
export function startStreamWatch(opts: StreamWatchOptions, hooks: StreamWatchHooks): StreamWatch {
  const now = hooks.now ?? Date.now;
  const stopper = new AbortController();
  const watcher = new StreamWatcher({
    openReader: hooks.openReader ?? (() =>
      openStreamReader({
        auth: opts.auth,
        streamId: opts.streamId,
        partition: opts.partition,
        endpoint: opts.endpoint,
        region: opts.region,
        timeoutMs: opts.requestTimeoutMs,
      })),
    sync: hooks.sync,
    match: hooks.match,
    loadOffset: async () => {
      const { saved, warning } = await readOffset(opts.stateDir);
      if (warning) hooks.log.log("warn", "state", warning, { event: "stream_offset_corrupt" });
      return saved;
    },
    saveOffset: (saved) => writeOffset(opts.stateDir, saved),
    now,
    random: hooks.random ?? Math.random,
    log: hooks.log,
  }, {
    streamId: opts.streamId,
    partition: opts.partition,
    pollMs: opts.pollMs,
    spreadMs: opts.spreadMs,
    intervalMs: opts.intervalMs,
    fallbackIntervalMs: opts.fallbackIntervalMs,
    outageGraceMs: opts.outageGraceMs ?? Math.min(3 * 60_000, opts.fallbackIntervalMs),
    eventTypes: opts.eventTypes?.length ? new Set(opts.eventTypes) : undefined,
  });

  // Written when something a person would look at changes (state, offsets, pending, error),
  // and at least once a minute so its counters and writtenAt stay fresh; not on every read.
  let lastKey = "";
  let lastWriteAt = -Infinity;
  const writeStatus = async () => {
    if (opts.statusFile === false) return;
    const status = watcher.status();
    const {
      sinceLastReadMs: _,
      pendingForMs: __,
      counts: ___,
      readLagMs: ____,
      lastReadAt: _____,
      ...steady
    } = status;
    const key = JSON.stringify(steady);
    if (key === lastKey && now() - lastWriteAt < 60_000) return;
    const text = JSON.stringify({ version: 1, ...status, writtenAt: new Date(now()) }) + "\n";
    try {
      await atomicWrite(streamStatusFile(opts.stateDir), new TextEncoder().encode(text), {
        mode: 0o600,
      });
    } catch (e) {
      // Status is for people; a failed write must not stop the watch.
      if (key !== lastKey) {
        hooks.log.log("warn", "state", `Cannot write ${streamStatusFile(opts.stateDir)}: ${e}`, {
          event: "stream_status_unwritten",
        });
      }
    }
    lastKey = key;
    lastWriteAt = now();
    try {
      await hooks.onStatus?.(status);
    } catch (e) {
      hooks.log.log("warn", "stream", `Stream status hook failed: ${e}`, {
        event: "stream_status_hook_failed",
      });
    }
  };

  const done = (async () => {
    try {
      while (!stopper.signal.aborted) {
        let wakeAt: number;
        try {
          wakeAt = await watcher.tick();
        } catch (e) {
          // A bug or an unexpected throw from a hook: say so, and carry on after a poll.
          hooks.log.log("error", "stream", `Stream watch step failed: ${e}`, {
            event: "stream_step_failed",
          });
          wakeAt = now() + opts.pollMs;
        }
        await writeStatus();
        if (stopper.signal.aborted) break;
        // setTimeout's longest delay; a longer wait is taken in steps.
        await sleep(Math.min(Math.max(0, wakeAt - now()), 2 ** 31 - 1), stopper.signal);
      }
    } finally {
      watcher.close();
    }
  })();

  return {
    status: () => watcher.status(),
    stop: () => stopper.abort(),
    done,
  };
}

/**
 * Reads what a running (or the last) `watch --stream` wrote for `status`: undefined when no
 * stream watch ever ran here, `warning` when the file is unreadable or damaged.
 */
export async function readStreamStatus(
  stateDir: string,
): Promise<{ status?: StreamStatus & { writtenAt: string }; warning?: string }> {
  const path = streamStatusFile(stateDir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    return { warning: `Cannot read ${path}: ${e instanceof Error ? e.message : e}` };
  }
  try {
    const { version, ...status } = JSON.parse(text);
    if (version !== 1 || typeof status.streamId !== "string" || typeof status.state !== "string") {
      throw new Error("unexpected fields");
    }
    return { status };
  } catch {
    return { warning: `Ignoring damaged ${path}` };
  }
}
