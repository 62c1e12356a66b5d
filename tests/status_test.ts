/**
 * What `status` decides from the state, the watch schedule and the timer, on plain data; and
 * the watch schedule file. The command is tested end to end in tests/e2e/ops_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { readSchedule, scheduleFile, writeSchedule } from "../src/schedule.ts";
import {
  buildStatus,
  formatDuration,
  formatStatus,
  nextRun,
  STATUS_EXIT,
  type StatusInput,
} from "../src/status.ts";
import { parseTimerShow } from "../src/timer.ts";

const NOW = new Date("2026-12-02T07:00:00Z");
const BASE: StatusInput = {
  stateFound: true,
  entries: {
    "/run/secrets/b": { secretId: "ocid1.b", version: 7, changedAt: "2026-12-01T07:00:00Z" },
    "/run/secrets/a": { secretId: "ocid1.a", error: "NotAuthorizedOrNotFound (404)" },
  },
  pendingReloads: ["/run/secrets/b", "/run/secrets/gone"],
  lastRun: {
    startedAt: "2026-12-02T06:59:58Z",
    endedAt: "2026-12-02T06:59:59.500Z",
    code: 1,
    outcome: "failed",
    trigger: "watch",
  },
  now: NOW,
};

Deno.test("buildStatus(): entries sorted, owed reloads marked, a failed last run is unhealthy", () => {
  const report = buildStatus(BASE);
  assert.equal(report.health, "failed");
  assert.equal(STATUS_EXIT[report.health], 1);
  assert.equal(report.lastRun?.durationSeconds, 1.5);
  assert.deepEqual(report.entries.map((e) => [e.path, e.reloadOwed]), [
    ["/run/secrets/a", false],
    ["/run/secrets/b", true],
    ["/run/secrets/gone", true],
  ]);
  const text = formatStatus(report);
  assert.match(
    text,
    /^Last run: {2}failed \(exit 1\), started 2026-12-02T06:59:58Z, took 1.5 s, by watch$/m,
  );
  assert.match(text, /^\/run\/secrets\/a +ocid1.a +- +- +error: NotAuthorizedOrNotFound \(404\)$/m);
  assert.match(text, /^\/run\/secrets\/b +ocid1.b +7 +2026-12-01T07:00:00Z +ok; reload owed$/m);
});

Deno.test("buildStatus(): no state is its own health (exit 4); a run that changed things is ok", () => {
  const none = buildStatus({
    ...BASE,
    stateFound: false,
    entries: {},
    pendingReloads: [],
    lastRun: undefined,
  });
  assert.equal(none.health, "no-state");
  assert.equal(STATUS_EXIT[none.health], 4);
  assert.match(formatStatus(none), /Last run: {2}none recorded yet/);
  const changed = buildStatus({
    ...BASE,
    lastRun: { ...BASE.lastRun!, code: 3, outcome: "changed" },
  });
  assert.equal(changed.health, "ok");
  const corrupt = buildStatus({ ...BASE, stateWarning: "Ignoring corrupt state file" });
  assert.equal(corrupt.health, "unreadable");
  assert.equal(STATUS_EXIT[corrupt.health], 1);
});

Deno.test("nextRun(): a running watch first, then an enabled timer, else none with the reason", () => {
  const watch = {
    pid: 42,
    startedAt: "2026-12-02T06:00:00Z",
    intervalMs: 6 * 3_600_000,
    jitterMs: 0,
    cycles: 2,
    nextCycleAt: "2026-12-02T12:00:00Z",
  };
  const timer = parseTimerShow(
    "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nNextElapseUSecRealtime=Wed 2026-12-02 09:00:00 UTC\n",
  );
  assert.deepEqual(nextRun({ watch, timer, now: NOW }), {
    source: "watch",
    at: "2026-12-02T12:00:00Z",
    note: "watch, pid 42, every 6h",
  });
  assert.match(
    nextRun({ watch: { ...watch, nextCycleAt: "2026-12-01T00:00:00Z" }, now: NOW }).note!,
    /overdue/,
  );
  const stopped = { ...watch, stoppedAt: "2026-12-02T06:30:00Z" };
  assert.deepEqual(nextRun({ watch: stopped, timer, now: NOW }), {
    source: "timer",
    at: "2026-12-02T09:00:00.000Z",
    note: "oci-secretsync.timer",
  });
  assert.deepEqual(
    nextRun({ watch: stopped, timer: { available: false, reason: "no systemd" }, now: NOW }),
    {
      source: "none",
      note: "watch stopped at 2026-12-02T06:30:00Z; no systemd timer: no systemd",
    },
  );
});

Deno.test("formatDuration() writes what --interval reads", () => {
  assert.deepEqual([21_600_000, 300_000, 5_400_000, 250, 90_061_000].map(formatDuration), [
    "6h",
    "5m",
    "1h30m",
    "250ms",
    "1d1h1m1s",
  ]);
});

Deno.test("writeSchedule() and readSchedule() round-trip; a damaged file is a warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-schedule-" });
  try {
    assert.deepEqual(await readSchedule(dir), {});
    const schedule = {
      pid: 7,
      startedAt: "2026-12-02T06:00:00.000Z",
      intervalMs: 1000,
      jitterMs: 0,
      cycles: 1,
      nextCycleAt: "2026-12-02T06:00:01.000Z",
    };
    await writeSchedule(dir, schedule);
    assert.deepEqual(await readSchedule(dir), { schedule });
    assert.equal((await Deno.stat(scheduleFile(dir))).mode! & 0o777, 0o600);
    await Deno.writeTextFile(scheduleFile(dir), "{");
    assert.match((await readSchedule(dir)).warning ?? "", /damaged/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const STREAM: NonNullable<StatusInput["stream"]> = {
  streamId: "ocid1.stream.oc1.iad.s",
  partition: "0",
  state: "reading",
  offset: 41,
  readOffset: 42,
  pending: 1,
  pendingForMs: 200,
  sinceLastReadMs: 1000,
  readLagMs: 850,
  unreachableSince: null,
  lastReadAt: "2026-12-02T06:59:59Z",
  lastEvent: {
    at: "2026-12-02T06:59:00Z",
    offset: 41,
    eventType: "com.oraclecloud.vaultsecret.createsecretversion",
    secretId: "ocid1.b",
  },
  lastError: null,
  counts: {
    gets: 9,
    cursors: 1,
    throttled: 0,
    events: 2,
    ignored: 0,
    duplicates: 0,
    secretSyncs: 1,
    fullSyncs: 1,
  },
  writtenAt: "2026-12-02T06:59:59Z",
};

Deno.test("buildStatus()/formatStatus(): the stream's state, offset, lag and last event", () => {
  const report = buildStatus({ ...BASE, stream: STREAM });
  assert.deepEqual(report.stream, {
    streamId: STREAM.streamId,
    partition: "0",
    state: "reading",
    reachable: true,
    unreachableSince: null,
    offset: 41,
    readOffset: 42,
    lagSeconds: 0.85,
    pending: 1,
    lastReadAt: STREAM.lastReadAt,
    lastEvent: STREAM.lastEvent,
    lastError: null,
    writtenAt: STREAM.writtenAt,
  });
  assert.equal(report.health, "failed", "the stream does not change the run's health");
  const text = formatStatus(report);
  assert.match(
    text,
    /Stream: +ocid1\.stream\.oc1\.iad\.s \(partition 0\): reading; offset 41 \(read 42\), lag 0\.85 s, 1 pending/,
  );
  assert.match(
    text,
    /last event: 2026-12-02T06:59:00Z com\.oraclecloud\.vaultsecret\.createsecretversion for ocid1\.b \(offset 41\)/,
  );
  // No stream.json: no stream line.
  assert.doesNotMatch(formatStatus(buildStatus(BASE)), /Stream:/);
});

Deno.test("buildStatus(): an unreachable stream says since when and why; an old file is flagged", () => {
  const down = buildStatus({
    ...BASE,
    stream: {
      ...STREAM,
      state: "fallback",
      unreachableSince: "2026-12-02T06:50:00Z",
      lastError: "stream unavailable: HTTP 503",
      writtenAt: "2026-12-02T06:59:30Z",
    },
  });
  assert.equal(down.stream?.reachable, false);
  assert.equal(down.stream?.note, undefined);
  const text = formatStatus(down);
  assert.match(text, /unreachable, full syncs instead since 2026-12-02T06:50:00Z/);
  assert.match(text, /error: stream unavailable: HTTP 503/);

  const stale = buildStatus({ ...BASE, stream: { ...STREAM, writtenAt: "2026-12-02T06:50:00Z" } });
  assert.match(stale.stream?.note ?? "", /not updated for 10m0s|not updated for 10m/);
  const stopped = buildStatus({
    ...BASE,
    stream: STREAM,
    watch: {
      pid: 1,
      startedAt: "2026-12-02T06:00:00Z",
      intervalMs: 3_600_000,
      jitterMs: 0,
      cycles: 2,
      stoppedAt: "2026-12-02T06:59:59Z",
    },
  });
  assert.match(stopped.stream?.note ?? "", /watch stopped at 2026-12-02T06:59:59Z/);
  assert.deepEqual(buildStatus({ ...BASE, streamWarning: "Ignoring damaged x" }).warnings, [
    "Ignoring damaged x",
  ]);
});
