/**
 * The stream watcher's decisions with a fake clock and a fake stream: which events trigger
 * what, offset bookkeeping, cursor rebuilds, and the fallback timing. The real stream client
 * against the stand-in is tested in stream_e2e_test.ts.
 */
import assert from "node:assert/strict";

const assertEquals = <T>(a: T, b: T, msg = "") => assert.deepStrictEqual(a, b, msg);
import type { CursorStart, MessageBatch, StreamReader } from "../../src/stream/client.ts";
import { StreamError } from "../../src/stream/client.ts";
import { decideMessage, RecentIds, secretMatcher } from "../../src/stream/events.ts";
import { planStart, type SavedOffset } from "../../src/stream/offset.ts";
import {
  nextFullSyncAt,
  pollDelay,
  type ScheduleSettings,
  spreadDelay,
} from "../../src/stream/schedule.ts";
import { StreamWatcher } from "../../src/stream/watcher.ts";
import type { Logger } from "../../src/log.ts";

const A = "ocid1.vaultsecret.oc1.iad.aaaa";
const B = "ocid1.vaultsecret.oc1.iad.bbbb";
const OTHER = "ocid1.vaultsecret.oc1.iad.other";
const STREAM = "ocid1.stream.oc1.iad.s";

function event(secretId: string, eventID: string = crypto.randomUUID(), eventType = "t.rotate") {
  return new TextEncoder().encode(
    JSON.stringify({ eventType, eventID, eventTime: "x", data: { resourceId: secretId } }),
  );
}

Deno.test("decideMessage() syncs only map secrets, of the accepted types, once", () => {
  const match = secretMatcher([{ secretId: A }]);
  assertEquals(decideMessage(event(A, "e1"), { match }), {
    action: "sync",
    secrets: [A],
    resourceId: A,
    eventID: "e1",
    eventType: "t.rotate",
  });
  assertEquals(decideMessage(event(OTHER), { match }), {
    action: "ignore",
    reason: "other-secret",
  });
  assertEquals(decideMessage(new TextEncoder().encode("not json"), { match }).action, "ignore");
  assertEquals(
    decideMessage(new Uint8Array([0xff, 0xfe]), { match }),
    { action: "ignore", reason: "not-an-event" },
  );
  assertEquals(
    decideMessage(new TextEncoder().encode('{"eventType":"x","eventID":"y","data":{}}'), {
      match,
    }),
    { action: "ignore", reason: "not-an-event" },
  );
  const eventTypes = new Set(["t.create"]);
  assertEquals(decideMessage(event(A), { match, eventTypes }), {
    action: "ignore",
    reason: "event-type",
  });
  assertEquals(decideMessage(event(A, "e", "t.create"), { match, eventTypes }).action, "sync");
  const seen = new RecentIds(2);
  seen.add("e1");
  assertEquals(decideMessage(event(A, "e1"), { match, seen }), {
    action: "ignore",
    reason: "duplicate",
  });
  seen.add("e2");
  seen.add("e3");
  assert(!seen.has("e1"), "RecentIds forgets the oldest beyond its capacity");
});

Deno.test("secretMatcher() matches OCID entries by resourceId and name entries by resourceName", () => {
  const ref = "name:db@ocid1.vault.oc1.iad.vvvv";
  const match = secretMatcher([
    { secretId: A },
    { secretId: `${A}#password` },
    { secretId: ref, ref: { secret: { name: "db", vaultId: "ocid1.vault.oc1.iad.vvvv" } } },
  ]);
  const ev = (resourceId: string, resourceName?: string) => ({
    eventType: "t",
    eventID: "e",
    resourceId,
    resourceName,
  });
  assertEquals(match(ev(A)), [A], "one selector for every entry of that OCID");
  assertEquals(match(ev("ocid1.vaultsecret.oc1.iad.dbdb", "db")), [ref]);
  assertEquals(match(ev(OTHER, "other")), []);
  const named = new TextEncoder().encode(JSON.stringify({
    eventType: "t",
    eventID: "n1",
    data: { resourceId: "ocid1.vaultsecret.oc1.iad.dbdb", resourceName: "db" },
  }));
  assertEquals(decideMessage(named, { match }).action, "sync");
});

Deno.test("planStart() resumes after a saved offset of the same stream, else LATEST + sync", () => {
  const saved: SavedOffset = { streamId: STREAM, partition: "0", offset: 7, savedAt: "" };
  assertEquals(planStart(saved, STREAM, "0"), {
    cursor: { type: "AFTER_OFFSET", offset: 7 },
    fullSyncFirst: false,
  });
  const fresh = { cursor: { type: "LATEST" }, fullSyncFirst: true };
  assertEquals(planStart(null, STREAM, "0"), fresh);
  assertEquals(planStart(saved, "ocid1.stream.oc1.iad.other", "0"), fresh);
  assertEquals(planStart(saved, STREAM, "1"), fresh);
});

const S: ScheduleSettings = {
  pollMs: 30_000,
  spreadMs: 30_000,
  intervalMs: 6 * 3600_000,
  fallbackIntervalMs: 15 * 60_000,
  outageGraceMs: 3 * 60_000,
};

Deno.test("nextFullSyncAt() keeps the interval, and the fallback interval during an outage", () => {
  assertEquals(nextFullSyncAt({}, S, 5), 5, "never synced: now");
  assertEquals(nextFullSyncAt({ lastFullSyncAt: 0 }, S, 1000), S.intervalMs);
  // Down for less than the grace period: still the normal interval.
  assertEquals(
    nextFullSyncAt({ lastFullSyncAt: 0, unreachableSince: 3600_000 }, S, 3600_000 + 60_000),
    S.intervalMs,
  );
  // Down past the grace: a sync when the outage is declared, then every fallback interval.
  const since = 3600_000;
  const declared = since + S.outageGraceMs;
  assertEquals(
    nextFullSyncAt({ lastFullSyncAt: 0, unreachableSince: since }, S, declared),
    declared,
  );
  assertEquals(
    nextFullSyncAt({ lastFullSyncAt: declared, unreachableSince: since }, S, declared + 1),
    declared + S.fallbackIntervalMs,
  );
  // A sync just before the outage was declared: the next one a fallback interval after it.
  assertEquals(
    nextFullSyncAt({ lastFullSyncAt: declared - 1000, unreachableSince: since }, S, declared),
    declared - 1000 + S.fallbackIntervalMs,
  );
});

Deno.test("pollDelay() and spreadDelay() stay within their bounds", () => {
  assertEquals(pollDelay(30_000, () => 0), 24_000);
  assertEquals(pollDelay(30_000, () => 0.999999), 30_000);
  assertEquals(spreadDelay(30_000, () => 0), 0);
  assert(spreadDelay(30_000, () => 0.999999) < 30_000);
});

/** A fake partition with a real cursor protocol (offset in the cursor, expiry by the clock). */
class FakeStream {
  messages: { offset: number; value: Uint8Array; timestamp: number }[] = [];
  cursorsCreated: CursorStart[] = [];
  gets = 0;
  down = false;
  expireAll = false;
  lowestOffset = 0;
  constructor(readonly clock: { t: number }) {}
  put(value: Uint8Array): number {
    const offset = this.messages.length;
    this.messages.push({ offset, value, timestamp: this.clock.t });
    return offset;
  }
  reader(): StreamReader {
    return {
      createCursor: (start) => {
        if (this.down) return Promise.reject(new StreamError("connection refused", "unavailable"));
        this.cursorsCreated.push(start);
        const end = this.messages.length;
        let next = end;
        if (start.type === "AFTER_OFFSET") next = start.offset + 1;
        if (start.type === "AT_OFFSET") next = start.offset;
        if (next < this.lowestOffset || next > end) {
          return Promise.reject(new StreamError("HTTP 400 InvalidParameter", "cursor", 400));
        }
        return Promise.resolve(String(next));
      },
      getMessages: (cursor): Promise<MessageBatch> => {
        this.gets++;
        if (this.down) return Promise.reject(new StreamError("connection refused", "unavailable"));
        if (this.expireAll) {
          this.expireAll = false;
          return Promise.reject(new StreamError("HTTP 400 expired", "cursor", 400));
        }
        const from = Number(cursor);
        const messages = this.messages.filter((m) => m.offset >= from);
        const next = messages.length ? messages.at(-1)!.offset + 1 : from;
        return Promise.resolve({ messages, nextCursor: String(next) });
      },
      close() {},
    };
  }
}

function harness(opts: { saved?: SavedOffset | null; syncOk?: () => boolean } = {}) {
  const clock = { t: 1_000_000 };
  const stream = new FakeStream(clock);
  const syncs: (readonly string[] | undefined)[] = [];
  const saves: number[] = [];
  let saved = opts.saved ?? null;
  const lines: string[] = [];
  const log: Logger = { log: (level, c, m) => lines.push(`[${level}] (${c}) ${m}`) };
  const watcher = new StreamWatcher({
    openReader: () =>
      stream.down
        ? Promise.reject(new StreamError("connection refused", "unavailable"))
        : Promise.resolve(stream.reader()),
    sync: (secrets) => {
      syncs.push(secrets);
      return Promise.resolve(opts.syncOk?.() ?? true);
    },
    match: () => secretMatcher([{ secretId: A }, { secretId: B }]),
    loadOffset: () => Promise.resolve(saved),
    saveOffset: (s) => {
      saves.push(s.offset);
      saved = s;
      return Promise.resolve();
    },
    now: () => clock.t,
    random: () => 0.5,
    log,
  }, { ...S, pollMs: 10_000, spreadMs: 4_000, streamId: STREAM });
  /** Runs ticks until the clock reaches `t`, jumping to each wake time. */
  const runUntil = async (t: number) => {
    for (let i = 0; i < 10_000; i++) {
      const wake = await watcher.tick();
      if (wake > t) {
        clock.t = t;
        return;
      }
      clock.t = Math.max(clock.t, wake);
    }
    throw new Error("watcher did not settle");
  };
  return { clock, stream, syncs, saves, watcher, runUntil, lines, saved: () => saved };
}

Deno.test("StreamWatcher starts at LATEST with a full sync, then syncs an event's secret after the spread and saves the offset after", async () => {
  const h = harness();
  await h.runUntil(h.clock.t);
  assertEquals(h.stream.cursorsCreated, [{ type: "LATEST" }]);
  assertEquals(h.syncs, [undefined], "a full sync first: no offset to resume from");

  h.stream.put(event(OTHER)); // offset 0: someone else's secret
  const rotatedAt = h.clock.t;
  h.stream.put(event(A, "ev-a")); // offset 1
  h.stream.put(event(A, "ev-a")); // offset 2: the same event delivered twice
  h.stream.put(event(B, "ev-b")); // offset 3
  await h.runUntil(rotatedAt + 10_000); // one poll (80–100 % of 10 s) later it is read
  assertEquals(h.syncs.length, 1, "the sync waits for the spread delay");
  assertEquals(h.saves, [], "nothing saved before the sync");
  await h.runUntil(rotatedAt + 10_000 + 4_000);
  assertEquals(h.syncs.slice(1), [[A, B]], "one sync for both secrets, the duplicate merged");
  assertEquals(h.saves, [3], "offset saved after the entries were applied");
  const status = h.watcher.status();
  assertEquals(status.state, "reading");
  assertEquals(status.offset, 3);
  assertEquals(status.counts.duplicates, 1);
  assertEquals(status.counts.ignored, 1);
  // The last event about a map secret (B at offset 3; OTHER's at 0 does not count).
  assertEquals(status.lastEvent?.offset, 3);
  assertEquals(status.lastEvent?.secretId, B);
  assertEquals(typeof status.lastReadAt, "string");

  // Only unrelated events: no sync, and the offset moves on.
  h.stream.put(event(OTHER));
  await h.runUntil(h.clock.t + 20_000);
  assertEquals(h.syncs.length, 2);
  assertEquals(h.saves, [3, 4]);
  // A replay of an applied event (same eventID) is ignored.
  h.stream.put(event(A, "ev-a"));
  await h.runUntil(h.clock.t + 20_000);
  assertEquals(h.syncs.length, 2, "a duplicate eventID causes no sync");
});

Deno.test("StreamWatcher keeps the offset when the sync fails, and retries", async () => {
  let ok = false;
  const h = harness({
    saved: { streamId: STREAM, partition: "0", offset: 0, savedAt: "" },
    syncOk: () => ok,
  });
  h.stream.put(event(OTHER)); // offset 0 (the saved one)
  await h.runUntil(h.clock.t);
  assertEquals(h.stream.cursorsCreated, [{ type: "AFTER_OFFSET", offset: 0 }]);
  assertEquals(h.syncs, [], "resuming needs no full sync");
  h.stream.put(event(A)); // offset 1
  await h.runUntil(h.clock.t + 30_000);
  assert(h.syncs.length >= 1 && h.syncs.every((s) => s?.[0] === A), "tried and retried");
  assertEquals(h.saves, [], "a failed sync never moves the offset");
  ok = true;
  await h.runUntil(h.clock.t + 20_000);
  assertEquals(h.saves, [1]);
});

Deno.test("StreamWatcher rebuilds an expired cursor from the saved offset", async () => {
  const h = harness({ saved: { streamId: STREAM, partition: "0", offset: 0, savedAt: "" } });
  h.stream.put(event(OTHER));
  await h.runUntil(h.clock.t + 1);
  h.stream.expireAll = true;
  h.stream.put(event(A));
  await h.runUntil(h.clock.t + 30_000);
  assertEquals(h.stream.cursorsCreated, [
    { type: "AFTER_OFFSET", offset: 0 },
    { type: "AFTER_OFFSET", offset: 0 },
  ]);
  assertEquals(h.syncs, [[A]]);
  assertEquals(h.saves, [1]);
});

Deno.test("StreamWatcher starts afresh (LATEST + full sync) when the saved offset is gone", async () => {
  const h = harness({ saved: { streamId: STREAM, partition: "0", offset: 2, savedAt: "" } });
  h.stream.put(event(OTHER)); // offset 0; offset 2 was never written: refused
  await h.runUntil(h.clock.t + 1);
  assertEquals(h.stream.cursorsCreated, [{ type: "AFTER_OFFSET", offset: 2 }, { type: "LATEST" }]);
  assertEquals(h.syncs, [undefined]);
  assert(h.lines.some((l) => l.includes("Cannot resume")), h.lines.join("\n"));
});

Deno.test("StreamWatcher falls back to the fallback interval during an outage and recovers", async () => {
  const h = harness({ saved: { streamId: STREAM, partition: "0", offset: 0, savedAt: "" } });
  h.stream.put(event(OTHER));
  const t0 = h.clock.t;
  await h.runUntil(t0 + 1);
  h.stream.down = true;
  await h.runUntil(t0 + S.outageGraceMs - 1);
  assertEquals(h.syncs, [], "within the grace period: no full sync");
  assertEquals(h.watcher.status().state, "unreachable");
  await h.runUntil(t0 + 60 * 60_000);
  // Declared at ~t0 + 3 min (+ one poll to notice), then every 15 min: 4 syncs in the hour.
  assertEquals(h.syncs.length, 4, JSON.stringify(h.syncs));
  assert(h.syncs.every((s) => s === undefined), "fallback syncs are full syncs");
  assertEquals(h.watcher.status().state, "fallback");
  assert(h.lines.some((l) => l.includes("full sync every 900 s")), h.lines.join("\n"));
  const getsDuringOutage = h.stream.gets;
  h.stream.down = false;
  h.stream.put(event(A));
  await h.runUntil(h.clock.t + 20_000);
  assertEquals(h.watcher.status().state, "reading");
  assertEquals(h.syncs.at(-1), [A], "events from the outage are read after it");
  assert(h.stream.gets > getsDuringOutage);
  assert(h.lines.some((l) => l.includes("reachable again")));
});

Deno.test('StreamWatcher saves partition "0" when the partition option is given as undefined', async () => {
  const saves: SavedOffset[] = [];
  const clock = { t: 0 };
  const stream = new FakeStream(clock);
  stream.put(event(OTHER));
  const watcher = new StreamWatcher({
    openReader: () => Promise.resolve(stream.reader()),
    sync: () => Promise.resolve(true),
    match: () => secretMatcher([{ secretId: A }]),
    loadOffset: () => Promise.resolve({ streamId: STREAM, partition: "0", offset: 0, savedAt: "" }),
    saveOffset: (s) => {
      saves.push(s);
      return Promise.resolve();
    },
    now: () => clock.t,
    random: () => 0,
    log: { log() {} },
  }, { ...S, streamId: STREAM, partition: undefined });
  stream.put(event(OTHER));
  await watcher.tick();
  assertEquals(saves.map((s) => [s.partition, s.offset]), [["0", 1]]);
});

Deno.test("StreamWatcher re-authenticates after a 401, not after a 403/404", async (t) => {
  for (const [status, kind, reopens] of [[401, "denied", true], [404, "denied", false]] as const) {
    await t.step(`HTTP ${status}`, async () => {
      const clock = { t: 0 };
      let opened = 0;
      const watcher = new StreamWatcher({
        openReader: () => {
          opened++;
          return Promise.resolve({
            createCursor: () => Promise.reject(new StreamError(`HTTP ${status}`, kind, status)),
            getMessages: () => Promise.reject(new Error("unused")),
            close() {},
          });
        },
        sync: () => Promise.resolve(true),
        match: () => secretMatcher([{ secretId: A }]),
        loadOffset: () => Promise.resolve(null),
        saveOffset: () => Promise.resolve(),
        now: () => clock.t,
        random: () => 0,
        log: { log() {} },
      }, { ...S, streamId: STREAM });
      for (let i = 0; i < 5; i++) clock.t = await watcher.tick();
      assertEquals(opened, reopens ? 5 : 1);
      assertEquals(watcher.status().state, "unreachable");
    });
  }
});
