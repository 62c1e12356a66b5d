/**
 * The stream watcher: reads secret events from one partition of an OCI stream as an individual
 * consumer and syncs just the secrets they name; keeps the full sync as a safety net and falls
 * back to it while the stream is down.
 *
 * Each host reads every message (consumer groups would split them between hosts). The cursor
 * starts after the saved offset, else at LATEST with a full sync first; an expired cursor is
 * rebuilt from the saved offset. An event waits a random part of `spreadMs` before its sync, so a
 * fleet does not call the vault in the same second; events arriving meanwhile join that sync.
 * The offset is saved only after the sync succeeded.
 *
 * All effects go through {@linkcode StreamWatcherDeps}; `tick()` does what is due and says when
 * to come back, so tests drive it with a fake clock.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { CursorStart, StreamReader } from "./client.ts";
import { StreamError } from "./client.ts";
import { decideMessage, RecentIds, type SecretMatcher } from "./events.ts";
import { planStart, type SavedOffset } from "./offset.ts";
import {
  inFallback,
  nextFullSyncAt,
  pollDelay,
  type ScheduleSettings,
  spreadDelay,
  throttleDelay,
} from "./schedule.ts";

/** The effects a watcher uses. */
export interface StreamWatcherDeps {
  /** Opens the stream reader (authenticates); called again after it failed. */
  openReader(): Promise<StreamReader>;
  /**
   * Syncs the entries of these secrets, or every entry when `secrets` is undefined; true when
   * every entry is in line (the offset may then move past the events).
   */
  sync(secrets?: readonly string[]): Promise<boolean>;
  /** Which map secrets an event is about, for the map as it is now. */
  match(): SecretMatcher;
  loadOffset(): Promise<SavedOffset | null>;
  saveOffset(saved: SavedOffset): Promise<void>;
  now(): number;
  random(): number;
  log: Logger;
}

/** How a watcher behaves. */
export interface StreamWatcherSettings extends ScheduleSettings {
  streamId: string;
  /** @default "0" */
  partition?: string;
  /** Event types that trigger a sync; empty or undefined: any. */
  eventTypes?: ReadonlySet<string>;
  /** Messages per read; a full batch is followed by another read at once. @default 100 */
  batchLimit?: number;
}

/** What `status` and the metrics show. */
export interface StreamStatus {
  streamId: string;
  partition: string;
  /** starting: no read yet; reading: the last call worked; unreachable: failing, within the
   * grace period; fallback: failing longer, full syncs every fallback interval. */
  state: "starting" | "reading" | "unreachable" | "fallback";
  /** The saved offset (last message applied); null: none yet. */
  offset: number | null;
  /** The last offset read. */
  readOffset: number | null;
  /** Secrets waiting for their sync. */
  pending: number;
  /** ms since the oldest waiting event was read; null when none waits. */
  pendingForMs: number | null;
  /** ms since the last successful read; null before the first. */
  sinceLastReadMs: number | null;
  /** Age of the newest message read when it was read (append to read), ms. */
  readLagMs: number | null;
  /** Since when every stream call failed (ISO 8601); null while the stream works. */
  unreachableSince: string | null;
  /** When the last successful read was (ISO 8601); null before the first. */
  lastReadAt: string | null;
  /** The last event about a map secret (not ignored, not a duplicate); null before one. */
  lastEvent: { at: string; offset: number; eventType: string; secretId: string } | null;
  lastError: string | null;
  counts: {
    gets: number;
    cursors: number;
    throttled: number;
    events: number;
    ignored: number;
    duplicates: number;
    secretSyncs: number;
    fullSyncs: number;
  };
}

/** A stream watcher; see the module doc. */
export class StreamWatcher {
  readonly #deps: StreamWatcherDeps;
  readonly #s: Required<Omit<StreamWatcherSettings, "eventTypes">> & {
    eventTypes?: ReadonlySet<string>;
  };
  #reader?: StreamReader;
  #cursor?: string;
  #started = false;
  /** The saved offset, as in the file. */
  #saved?: number;
  #readOffset?: number;
  /** A full sync must start after the cursor exists (cursor at LATEST: no gap). */
  #fullSyncAfterCursor = false;
  #lastFullSyncAt?: number;
  #fullSyncRetryAt?: number;
  #unreachableSince?: number;
  #fallbackAnnounced = false;
  #nextReadAt = 0;
  #pending = new Map<string, string[]>(); // secret → event IDs
  #applyAt?: number;
  #oldestPendingAt?: number;
  #seen = new RecentIds();
  #lastReadAt?: number;
  #readLagMs?: number;
  #lastEvent?: StreamStatus["lastEvent"];
  #lastError?: string;
  #counts: StreamStatus["counts"] = {
    gets: 0,
    cursors: 0,
    throttled: 0,
    events: 0,
    ignored: 0,
    duplicates: 0,
    secretSyncs: 0,
    fullSyncs: 0,
  };

  constructor(deps: StreamWatcherDeps, settings: StreamWatcherSettings) {
    this.#deps = deps;
    this.#s = {
      ...settings,
      partition: settings.partition ?? "0",
      batchLimit: settings.batchLimit ?? 100,
    };
  }

  /** What the watcher is doing, for `status` and metrics. */
  status(): StreamStatus {
    const now = this.#deps.now();
    const failing = this.#unreachableSince !== undefined;
    return {
      streamId: this.#s.streamId,
      partition: this.#s.partition,
      state: failing
        ? (inFallback(this.#schedule(), this.#s, now) ? "fallback" : "unreachable")
        : this.#lastReadAt === undefined
        ? "starting"
        : "reading",
      offset: this.#saved ?? null,
      readOffset: this.#readOffset ?? null,
      pending: this.#pending.size,
      pendingForMs: this.#oldestPendingAt === undefined ? null : now - this.#oldestPendingAt,
      sinceLastReadMs: this.#lastReadAt === undefined ? null : now - this.#lastReadAt,
      readLagMs: this.#readLagMs ?? null,
      unreachableSince: this.#unreachableSince === undefined
        ? null
        : new Date(this.#unreachableSince).toISOString(),
      lastReadAt: this.#lastReadAt === undefined ? null : new Date(this.#lastReadAt).toISOString(),
      lastEvent: this.#lastEvent ?? null,
      lastError: this.#lastError ?? null,
      counts: { ...this.#counts },
    };
  }

  /** Closes the stream reader. */
  close(): void {
    this.#reader?.close();
    this.#reader = undefined;
    this.#cursor = undefined;
  }

  /** Does whatever is due now; returns when to call again (ms since the epoch). */
  async tick(): Promise<number> {
    const d = this.#deps;
    if (!this.#started) await this.#start();

    if (!this.#reader && d.now() >= this.#nextReadAt) {
      try {
        this.#reader = await d.openReader();
      } catch (e) {
        this.#failed(e);
      }
    }
    if (this.#reader && !this.#cursor && d.now() >= this.#nextReadAt) await this.#createCursor();

    this.#announceFallback();
    const due = this.#fullSyncDue(d.now());
    if (due) await this.#fullSync();

    if (this.#cursor && d.now() >= this.#nextReadAt) await this.#read();

    if (this.#pending.size > 0 && d.now() >= (this.#applyAt ?? Infinity)) await this.#apply();

    return this.#wakeAt();
  }

  async #start(): Promise<void> {
    const d = this.#deps;
    this.#started = true;
    const saved = await d.loadOffset();
    const plan = planStart(saved, this.#s.streamId, this.#s.partition);
    if (plan.cursor.type === "AFTER_OFFSET") {
      this.#saved = plan.cursor.offset;
      // Resuming loses nothing: the events since the offset are still in the stream.
      this.#lastFullSyncAt = d.now();
      d.log.log(
        "info",
        "stream",
        `Resuming ${this.#s.streamId} after offset ${this.#saved}`,
        { event: "stream_resume", offset: this.#saved },
      );
    }
  }

  #startOfCursor(): CursorStart {
    return this.#saved === undefined
      ? { type: "LATEST" }
      : { type: "AFTER_OFFSET", offset: this.#saved };
  }

  async #createCursor(): Promise<void> {
    const d = this.#deps;
    const start = this.#startOfCursor();
    try {
      this.#cursor = await this.#reader!.createCursor(start);
      this.#counts.cursors++;
      this.#succeeded();
      if (start.type === "LATEST") {
        this.#fullSyncAfterCursor = true;
        d.log.log(
          "info",
          "stream",
          `Reading ${this.#s.streamId} from the latest message; a full sync runs first`,
          { event: "stream_latest" },
        );
      }
    } catch (e) {
      if (e instanceof StreamError && e.kind === "cursor" && start.type === "AFTER_OFFSET") {
        // The saved offset is gone (retention) or invalid: start afresh, and a full sync
        // covers whatever happened in between.
        d.log.log(
          "warn",
          "stream",
          `Cannot resume ${this.#s.streamId} after offset ${start.offset} (${e.message}); ` +
            "reading from the latest message after a full sync",
          { event: "stream_offset_lost", offset: start.offset },
        );
        this.#saved = undefined;
        this.#nextReadAt = d.now();
        return;
      }
      if (e instanceof StreamError && e.kind === "throttled") {
        this.#counts.throttled++;
        this.#nextReadAt = d.now() + throttleDelay(this.#s.pollMs, d.random);
        return;
      }
      this.#failed(e);
    }
  }

  #fullSyncDue(now: number): boolean {
    if (this.#fullSyncRetryAt !== undefined) return now >= this.#fullSyncRetryAt;
    if (this.#fullSyncAfterCursor && this.#cursor) return true;
    return now >= nextFullSyncAt(this.#schedule(), this.#s, now);
  }

  async #fullSync(): Promise<void> {
    const d = this.#deps;
    const startedAt = d.now();
    const coversCursor = this.#cursor !== undefined;
    const pendingBefore = new Map(this.#pending);
    const readBefore = this.#readOffset;
    this.#counts.fullSyncs++;
    const ok = await d.sync(undefined);
    if (!ok) {
      this.#fullSyncRetryAt = d.now() + this.#s.pollMs;
      return;
    }
    this.#fullSyncRetryAt = undefined;
    this.#lastFullSyncAt = startedAt;
    if (coversCursor) this.#fullSyncAfterCursor = false;
    // The full sync started after these events were read: they are applied.
    if (pendingBefore.size > 0) {
      for (const [secret, ids] of pendingBefore) {
        ids.forEach((id) => this.#seen.add(id));
        this.#pending.delete(secret);
      }
      if (this.#pending.size === 0) {
        this.#applyAt = undefined;
        this.#oldestPendingAt = undefined;
      }
    }
    if (this.#pending.size === 0 && readBefore !== undefined) await this.#save(readBefore);
  }

  async #read(): Promise<void> {
    const d = this.#deps;
    const now = d.now();
    let batch;
    try {
      this.#counts.gets++;
      batch = await this.#reader!.getMessages(this.#cursor!);
    } catch (e) {
      if (e instanceof StreamError && e.kind === "cursor") {
        // Expired (5 minutes unused) or refused: rebuild it from the saved offset.
        d.log.log(
          "info",
          "stream",
          `Rebuilding the stream cursor from offset ${this.#saved ?? "LATEST"}: ${e.message}`,
          { event: "stream_cursor_rebuilt" },
        );
        this.#cursor = undefined;
        this.#nextReadAt = now;
        return;
      }
      if (e instanceof StreamError && e.kind === "throttled") {
        this.#counts.throttled++;
        this.#nextReadAt = now + throttleDelay(this.#s.pollMs, d.random);
        return;
      }
      this.#failed(e);
      return;
    }
    this.#succeeded();
    this.#cursor = batch.nextCursor;
    this.#lastReadAt = d.now();
    const match = d.match();
    for (const message of batch.messages) {
      this.#readOffset = message.offset;
      if (Number.isFinite(message.timestamp)) this.#readLagMs = now - message.timestamp;
      const decision = decideMessage(message.value, {
        match,
        eventTypes: this.#s.eventTypes,
        seen: this.#seen,
      });
      if (decision.action === "ignore") {
        if (decision.reason === "duplicate") this.#counts.duplicates++;
        else this.#counts.ignored++;
        continue;
      }
      this.#counts.events++;
      let fresh = false;
      for (const secret of decision.secrets) {
        const ids = this.#pending.get(secret) ?? [];
        if (ids.includes(decision.eventID)) continue;
        fresh = true;
        this.#pending.set(secret, [...ids, decision.eventID]);
      }
      if (!fresh) {
        this.#counts.duplicates++;
        continue;
      }
      this.#lastEvent = {
        at: new Date(this.#lastReadAt).toISOString(),
        offset: message.offset,
        eventType: decision.eventType,
        secretId: decision.resourceId,
      };
      d.log.log(
        "info",
        "stream",
        `Event ${decision.eventType} for ${decision.resourceId} at offset ${message.offset}`,
        { event: "stream_event", secretId: decision.resourceId, offset: message.offset },
      );
    }
    if (this.#pending.size > 0 && this.#applyAt === undefined) {
      this.#oldestPendingAt = now;
      this.#applyAt = now + spreadDelay(this.#s.spreadMs, d.random);
    }
    if (this.#pending.size === 0 && this.#readOffset !== undefined) {
      // Only other secrets' events: nothing to apply, so the offset may move on.
      await this.#save(this.#readOffset);
    }
    const full = batch.messages.length >= this.#s.batchLimit;
    this.#nextReadAt = full ? now + 250 : now + pollDelay(this.#s.pollMs, d.random);
  }

  async #apply(): Promise<void> {
    const d = this.#deps;
    const batch = new Map(this.#pending);
    const readOffset = this.#readOffset;
    this.#counts.secretSyncs++;
    const ok = await d.sync([...batch.keys()]);
    if (!ok) {
      // Keep the events and the offset: retried after a poll interval, and after a restart.
      this.#applyAt = d.now() + this.#s.pollMs;
      return;
    }
    for (const [secret, ids] of batch) {
      ids.forEach((id) => this.#seen.add(id));
      if (this.#pending.get(secret)?.length === ids.length) this.#pending.delete(secret);
    }
    if (this.#pending.size === 0) {
      this.#applyAt = undefined;
      this.#oldestPendingAt = undefined;
      if (readOffset !== undefined) await this.#save(readOffset);
    }
  }

  async #save(offset: number): Promise<void> {
    if (this.#saved === offset) return;
    const d = this.#deps;
    try {
      await d.saveOffset({
        streamId: this.#s.streamId,
        partition: this.#s.partition,
        offset,
        savedAt: new Date(d.now()).toISOString(),
      });
      this.#saved = offset;
    } catch (e) {
      // The events are applied; a restart re-reads them, which costs fetches but no writes.
      d.log.log("warn", "state", `Cannot save the stream offset: ${messageOf(e)}`, {
        event: "stream_offset_unsaved",
      });
    }
  }

  #failed(e: unknown): void {
    const d = this.#deps;
    const now = d.now();
    const reason = messageOf(e);
    this.#lastError = reason;
    const denied = e instanceof StreamError && e.kind === "denied";
    if (this.#unreachableSince === undefined) {
      this.#unreachableSince = now;
      d.log.log(
        denied ? "error" : "warn",
        "stream",
        `Cannot read stream ${this.#s.streamId}: ${reason}; retrying every poll`,
        { event: "stream_unreachable", reason },
      );
    }
    // A reader whose credentials were refused (401) is opened afresh (a new session token);
    // a 403/404 is policy or OCID, which re-authenticating every poll would not fix.
    if (!(e instanceof StreamError) || e.status === 401) {
      this.#reader?.close();
      this.#reader = undefined;
      this.#cursor = undefined;
    }
    this.#nextReadAt = now + pollDelay(this.#s.pollMs, d.random);
  }

  #announceFallback(): void {
    const d = this.#deps;
    const now = d.now();
    if (this.#fallbackAnnounced || !inFallback(this.#schedule(), this.#s, now)) return;
    this.#fallbackAnnounced = true;
    d.log.log(
      "warn",
      "stream",
      `Stream ${this.#s.streamId} unreachable for ${
        Math.round((now - this.#unreachableSince!) / 1000)
      } s: full sync every ${Math.round(this.#s.fallbackIntervalMs / 1000)} s until it is back`,
      { event: "stream_fallback", reason: this.#lastError },
    );
  }

  #succeeded(): void {
    if (this.#unreachableSince === undefined) return;
    const d = this.#deps;
    d.log.log(
      "info",
      "stream",
      `Stream ${this.#s.streamId} is reachable again after ${
        Math.round((d.now() - this.#unreachableSince) / 1000)
      } s`,
      { event: "stream_recovered" },
    );
    this.#unreachableSince = undefined;
    this.#fallbackAnnounced = false;
    this.#lastError = undefined;
  }

  #schedule() {
    return { lastFullSyncAt: this.#lastFullSyncAt, unreachableSince: this.#unreachableSince };
  }

  #wakeAt(): number {
    const now = this.#deps.now();
    const times = [this.#nextReadAt];
    if (this.#applyAt !== undefined) times.push(this.#applyAt);
    if (this.#fullSyncRetryAt !== undefined) times.push(this.#fullSyncRetryAt);
    else times.push(nextFullSyncAt(this.#schedule(), this.#s, now));
    // An outage turns into fallback at a known time: wake then to say so and sync.
    const fallbackAt = (this.#unreachableSince ?? -Infinity) + this.#s.outageGraceMs;
    if (fallbackAt > now) times.push(fallbackAt);
    return Math.max(now, Math.min(...times));
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
