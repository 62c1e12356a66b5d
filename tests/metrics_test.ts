/**
 * The Prometheus textfile, read back with a real text-format parser (the npm package
 * `parse-prometheus-text-format`, test-only): names, types, labels with awkward characters,
 * values, and the atomic write.
 */
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import {
  type MetricsInput,
  outcomeOfCode,
  renderMetrics,
  RUN_OUTCOMES,
  streamMetricsOf,
  writeMetricsFile,
} from "../src/metrics.ts";

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}

function parse(text: string): Map<string, Family> {
  const families = parsePrometheus(text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

function sample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const family = families.get(name);
  assert.ok(family, `family ${name} is missing`);
  const found = family.metrics.filter((m) =>
    JSON.stringify(Object.entries(m.labels ?? {}).sort()) ===
      JSON.stringify(Object.entries(labels).sort())
  );
  assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`);
  return Number(found[0].value);
}

const T0 = Date.UTC(2026, 11, 2, 6, 0, 0);
// A path a map may legally hold, with every character the format must escape.
const AWKWARD = '/run/secrets/we"ird\\dir/new\nline';

const INPUT: MetricsInput = {
  entries: [
    {
      path: "/run/secrets/db",
      secretId: "ocid1.vaultsecret.oc1.iad.db",
      ok: true,
      version: 4,
      changedAtMs: T0 - 3_600_000,
      checkedAtMs: T0,
      reloadOwed: false,
    },
    {
      path: AWKWARD,
      secretId: "ocid1.vaultsecret.oc1.iad.awk",
      ok: false,
      reloadOwed: true,
    },
    {
      path: "/run/secrets/web/tls.crt",
      secretId: "ocid1.vaultsecret.oc1.iad.crt",
      ok: true,
      version: 12,
      changedAtMs: T0 - 500,
      checkedAtMs: T0,
      notAfterMs: Date.UTC(2027, 2, 1),
      reloadOwed: false,
    },
  ],
  run: {
    startedAtMs: T0 - 1_250,
    endedAtMs: T0,
    code: 1,
    outcome: "failed",
    changes: 1,
    errors: 1,
    reloads: 2,
  },
  nextRunAtMs: T0 + 6 * 3_600_000,
};

Deno.test("renderMetrics() output parses as Prometheus text with the expected families", () => {
  const text = renderMetrics(INPUT);
  const families = parse(text);
  assert.deepEqual([...families.keys()].sort(), [
    "secretsync_certificate_expiry_timestamp_seconds",
    "secretsync_entry_last_change_timestamp_seconds",
    "secretsync_entry_last_check_timestamp_seconds",
    "secretsync_entry_reload_owed",
    "secretsync_entry_success",
    "secretsync_entry_version",
    "secretsync_last_run_start_timestamp_seconds",
    "secretsync_last_run_timestamp_seconds",
    "secretsync_next_run_timestamp_seconds",
    "secretsync_run_changes",
    "secretsync_run_duration_seconds",
    "secretsync_run_errors",
    "secretsync_run_exit_code",
    "secretsync_run_outcome",
    "secretsync_run_reloads",
  ]);
  for (const family of families.values()) {
    assert.equal(family.type, "GAUGE", family.name);
    assert.ok(family.help.length > 10, `${family.name} has help`);
  }
  const db = { path: "/run/secrets/db", secret: "ocid1.vaultsecret.oc1.iad.db" };
  assert.equal(sample(families, "secretsync_entry_success", db), 1);
  assert.equal(sample(families, "secretsync_entry_version", db), 4);
  assert.equal(
    sample(families, "secretsync_entry_last_change_timestamp_seconds", db),
    (T0 - 3_600_000) / 1000,
  );
  assert.equal(sample(families, "secretsync_entry_reload_owed", db), 0);
  assert.equal(
    sample(families, "secretsync_certificate_expiry_timestamp_seconds", {
      path: "/run/secrets/web/tls.crt",
    }),
    Date.UTC(2027, 2, 1) / 1000,
  );
  assert.equal(sample(families, "secretsync_run_duration_seconds"), 1.25);
  assert.equal(sample(families, "secretsync_last_run_timestamp_seconds"), T0 / 1000);
  assert.equal(sample(families, "secretsync_run_exit_code"), 1);
  assert.equal(sample(families, "secretsync_run_errors"), 1);
  assert.equal(sample(families, "secretsync_run_reloads"), 2);
  for (const outcome of RUN_OUTCOMES) {
    assert.equal(
      sample(families, "secretsync_run_outcome", { outcome }),
      outcome === "failed" ? 1 : 0,
    );
  }
});

Deno.test("renderMetrics() escapes label values so the parser gets the path back exactly", () => {
  const families = parse(renderMetrics(INPUT));
  const awkward = { path: AWKWARD, secret: "ocid1.vaultsecret.oc1.iad.awk" };
  assert.equal(sample(families, "secretsync_entry_success", awkward), 0);
  assert.equal(sample(families, "secretsync_entry_reload_owed", awkward), 1);
  // No version, change time or expiry known: no sample rather than a made-up 0.
  assert.equal(
    families.get("secretsync_entry_version")!.metrics.some((m) => m.labels?.path === AWKWARD),
    false,
  );
  // One sample per line: the newline inside the path did not break the line.
  const text = renderMetrics(INPUT);
  for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
    assert.match(line, /^secretsync_[a-z_]+(\{.*\})? [-+0-9.eInfNa]+$/, line);
  }
});

Deno.test("renderMetrics() with no run and no entries is empty; an unknown outcome is added", () => {
  assert.equal(renderMetrics({ entries: [] }), "");
  const families = parse(renderMetrics({
    entries: [],
    run: {
      startedAtMs: T0,
      endedAtMs: T0,
      code: 0,
      outcome: "interrupted",
      changes: 0,
      errors: 0,
      reloads: 0,
    },
  }));
  assert.equal(sample(families, "secretsync_run_outcome", { outcome: "interrupted" }), 1);
  assert.equal(sample(families, "secretsync_run_outcome", { outcome: "unchanged" }), 0);
  assert.equal(families.has("secretsync_entry_success"), false);
});

Deno.test("outcomeOfCode() names each exit code", () => {
  assert.deepEqual([0, 3, 1, 2].map(outcomeOfCode), ["unchanged", "changed", "failed", "error"]);
});

Deno.test("writeMetricsFile() replaces the file atomically with mode 0644", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-metrics-" });
  try {
    const path = `${dir}/secretsync.prom`;
    await Deno.writeTextFile(path, "old\n");
    const before = (await Deno.stat(path)).ino;
    const text = renderMetrics(INPUT);
    await writeMetricsFile(path, text);
    assert.equal(await Deno.readTextFile(path), text);
    const info = await Deno.stat(path);
    assert.equal(info.mode! & 0o777, 0o644);
    assert.notEqual(info.ino, before, "a new file was renamed over the old one");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["secretsync.prom"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("renderMetrics() with a stream: up, offsets, lag, pending, last read and event", () => {
  const stream = "ocid1.stream.oc1.iad.s";
  const reading = streamMetricsOf({
    streamId: stream,
    state: "reading",
    offset: 41,
    readOffset: 42,
    readLagMs: 850,
    pending: 1,
    unreachableSince: null,
    lastReadAt: "2026-12-02T07:00:00Z",
    lastEvent: { at: "2026-12-02T06:59:00Z" },
  });
  const families = parse(renderMetrics({ ...INPUT, stream: reading }));
  const s = { stream };
  assert.equal(sample(families, "secretsync_stream_up", s), 1);
  assert.equal(sample(families, "secretsync_stream_offset", s), 41);
  assert.equal(sample(families, "secretsync_stream_read_offset", s), 42);
  assert.equal(sample(families, "secretsync_stream_lag_seconds", s), 0.85);
  assert.equal(sample(families, "secretsync_stream_pending_secrets", s), 1);
  assert.equal(
    sample(families, "secretsync_stream_last_read_timestamp_seconds", s),
    Date.UTC(2026, 11, 2, 7) / 1000,
  );
  assert.equal(
    sample(families, "secretsync_stream_last_event_timestamp_seconds", s),
    Date.UTC(2026, 11, 2, 6, 59) / 1000,
  );
  assert.equal(families.has("secretsync_stream_unreachable_since_timestamp_seconds"), false);
  for (const family of families.values()) assert.equal(family.type, "GAUGE", family.name);

  // Down: up 0, since when; nothing read yet: no offsets, no lag. Starting is not up either.
  const down = parse(renderMetrics({
    entries: [],
    stream: streamMetricsOf({
      streamId: stream,
      state: "fallback",
      offset: null,
      readOffset: null,
      readLagMs: null,
      pending: 0,
      unreachableSince: "2026-12-02T06:50:00Z",
    }),
  }));
  assert.equal(sample(down, "secretsync_stream_up", s), 0);
  assert.equal(
    sample(down, "secretsync_stream_unreachable_since_timestamp_seconds", s),
    Date.UTC(2026, 11, 2, 6, 50) / 1000,
  );
  assert.equal(down.has("secretsync_stream_offset"), false);
  assert.equal(down.has("secretsync_stream_lag_seconds"), false);
  assert.equal(
    streamMetricsOf({
      streamId: stream,
      state: "starting",
      offset: null,
      readOffset: null,
      readLagMs: null,
      pending: 0,
      unreachableSince: null,
    }).up,
    false,
  );
  // Without a stream, no stream family.
  assert.ok(
    ![...parse(renderMetrics(INPUT)).keys()].some((k) => k.startsWith("secretsync_stream")),
  );
});
