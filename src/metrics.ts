/**
 * The Prometheus textfile: what the last run left, rendered for node_exporter's textfile
 * collector (`--collector.textfile.directory`), and written atomically so the collector never
 * reads half a file.
 *
 * Rendering is a pure function over plain data; only {@linkcode writeMetricsFile} touches the
 * disk. Labels carry paths and OCIDs, never a secret: nothing here ever receives one.
 *
 * @module
 */
import type { Logger } from "./log.ts";
import { type EntryState, readState } from "./state.ts";
import { atomicWrite } from "./write.ts";

/** One map entry as the metrics show it. */
export interface EntryMetrics {
  /** The file the entry writes. */
  path: string;
  /** The secret's OCID. */
  secretId: string;
  /** Whether the last run brought this entry in line (no error). */
  ok: boolean;
  /** The secret version on disk, when known. */
  version?: number;
  /** When the file's content last changed, in milliseconds since the epoch. */
  changedAtMs?: number;
  /** When a run last compared the file with the vault, in milliseconds since the epoch. */
  checkedAtMs?: number;
  /** The certificate's `notAfter`, in milliseconds since the epoch, for certificate files. */
  notAfterMs?: number;
  /** Whether a reload of this file's target is still owed. */
  reloadOwed: boolean;
}

/** The last run as the metrics show it. */
export interface RunMetrics {
  /** In milliseconds since the epoch. */
  startedAtMs: number;
  /** In milliseconds since the epoch. */
  endedAtMs: number;
  /** The run's exit code (0, 1, 2, 3). */
  code: number;
  /** A word for how it ended, e.g. `changed`; see {@linkcode RUN_OUTCOMES}. */
  outcome: string;
  /** Files whose content changed. */
  changes: number;
  /** Entries and reloads that failed. */
  errors: number;
  /** Reloads done. */
  reloads: number;
}

/** The event stream of `watch --stream`, as the metrics show it. */
export interface StreamMetrics {
  /** The stream's OCID (label `stream`). */
  streamId: string;
  /** Whether the last stream call worked. */
  up: boolean;
  /** The saved offset: the last message applied. */
  offset?: number;
  /** The last offset read. */
  readOffset?: number;
  /** Append-to-read delay of the newest message read, in seconds. */
  lagSeconds?: number;
  /** Secrets waiting for their sync. */
  pending: number;
  /** Since when every stream call failed, in milliseconds since the epoch. */
  unreachableSinceMs?: number;
  /** When the last successful read was, in milliseconds since the epoch. */
  lastReadAtMs?: number;
  /** When the last event about a map secret was read, in milliseconds since the epoch. */
  lastEventAtMs?: number;
}

/** Everything one metrics file shows. */
export interface MetricsInput {
  entries: readonly EntryMetrics[];
  /** Absent before any run ended. */
  run?: RunMetrics;
  /** For `watch`: when the next full cycle is due, in milliseconds since the epoch. */
  nextRunAtMs?: number;
  /** For `watch --stream`: the stream's state. */
  stream?: StreamMetrics;
}

/**
 * The outcomes always present in `secretsync_run_outcome`, one series each (1 for the last
 * run's, 0 for the others), so an alert on `{outcome="failed"} == 1` never sees a gap.
 */
export const RUN_OUTCOMES: readonly string[] = ["unchanged", "changed", "failed", "error"];

/** The outcome word for an exit code: 0 unchanged, 3 changed, 1 failed, anything else error. */
export function outcomeOfCode(code: number): string {
  return code === 0 ? "unchanged" : code === 3 ? "changed" : code === 1 ? "failed" : "error";
}

type Labels = Record<string, string>;
type Sample = { labels?: Labels; value: number };

/**
 * Renders the metrics in the Prometheus text exposition format (version 0.0.4): one HELP and
 * TYPE line per family, then its samples; label values escaped (`\\`, `\"`, `\n`).
 *
 * @example
 * ```ts
 * import { renderMetrics } from "./metrics.ts";
 *
 * const text = renderMetrics({
 *   entries: [{ path: "/run/secrets/db", secretId: "ocid1.vaultsecret.oc1..a", ok: true, version: 4, reloadOwed: false }],
 * });
 * // # HELP secretsync_entry_success …
 * // secretsync_entry_success{path="/run/secrets/db",secret="ocid1.vaultsecret.oc1..a"} 1
 * ```
 */
export function renderMetrics(input: MetricsInput): string {
  const lines: string[] = [];
  const family = (name: string, type: "gauge", help: string, samples: Sample[]) => {
    if (samples.length === 0) return;
    lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const { labels, value } of samples) {
      lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    }
  };
  const entries = [...input.entries].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const per = (pick: (e: EntryMetrics) => number | undefined): Sample[] =>
    entries.flatMap((e) => {
      const value = pick(e);
      return value === undefined ? [] : [{ labels: { path: e.path, secret: e.secretId }, value }];
    });

  family(
    "secretsync_entry_success",
    "gauge",
    "Whether the last run brought this file in line with its secret (1) or failed (0).",
    per((e) => e.ok ? 1 : 0),
  );
  family(
    "secretsync_entry_version",
    "gauge",
    "Secret version number of the file on disk.",
    per((e) => e.version),
  );
  family(
    "secretsync_entry_last_change_timestamp_seconds",
    "gauge",
    "When the file's content last changed, in seconds since the epoch.",
    per((e) => seconds(e.changedAtMs)),
  );
  family(
    "secretsync_entry_last_check_timestamp_seconds",
    "gauge",
    "When a run last compared the file with the vault, in seconds since the epoch.",
    per((e) => seconds(e.checkedAtMs)),
  );
  family(
    "secretsync_entry_reload_owed",
    "gauge",
    "Whether a reload of this file's target is still owed (1) after a failed reload.",
    per((e) => e.reloadOwed ? 1 : 0),
  );
  family(
    "secretsync_certificate_expiry_timestamp_seconds",
    "gauge",
    "The certificate's notAfter, in seconds since the epoch.",
    entries.flatMap((e) =>
      e.notAfterMs === undefined ? [] : [{ labels: { path: e.path }, value: e.notAfterMs / 1000 }]
    ),
  );

  const run = input.run;
  if (run) {
    family(
      "secretsync_last_run_timestamp_seconds",
      "gauge",
      "When the last run ended, in seconds since the epoch.",
      [{ value: run.endedAtMs / 1000 }],
    );
    family(
      "secretsync_last_run_start_timestamp_seconds",
      "gauge",
      "When the last run started, in seconds since the epoch.",
      [{ value: run.startedAtMs / 1000 }],
    );
    family(
      "secretsync_run_duration_seconds",
      "gauge",
      "How long the last run took, in seconds.",
      [{ value: Math.max(0, run.endedAtMs - run.startedAtMs) / 1000 }],
    );
    family(
      "secretsync_run_exit_code",
      "gauge",
      "Exit code of the last run: 0 unchanged, 3 changed, 1 some entry failed, 2 usage or map error.",
      [{ value: run.code }],
    );
    const outcomes = RUN_OUTCOMES.includes(run.outcome)
      ? RUN_OUTCOMES
      : [...RUN_OUTCOMES, run.outcome];
    family(
      "secretsync_run_outcome",
      "gauge",
      "How the last run ended: 1 for its outcome, 0 for the others.",
      outcomes.map((outcome) => ({ labels: { outcome }, value: outcome === run.outcome ? 1 : 0 })),
    );
    family(
      "secretsync_run_changes",
      "gauge",
      "Files whose content the last run changed.",
      [{ value: run.changes }],
    );
    family(
      "secretsync_run_errors",
      "gauge",
      "Entries and reloads that failed in the last run.",
      [{ value: run.errors }],
    );
    family(
      "secretsync_run_reloads",
      "gauge",
      "Reloads the last run did.",
      [{ value: run.reloads }],
    );
  }
  if (input.nextRunAtMs !== undefined) {
    family(
      "secretsync_next_run_timestamp_seconds",
      "gauge",
      "When watch runs its next full cycle, in seconds since the epoch.",
      [{ value: input.nextRunAtMs / 1000 }],
    );
  }
  const stream = input.stream;
  if (stream) {
    const one = (value: number | undefined): Sample[] =>
      value === undefined ? [] : [{ labels: { stream: stream.streamId }, value }];
    family(
      "secretsync_stream_up",
      "gauge",
      "Whether watch's last call to the event stream worked (1); 0 while starting or failing.",
      one(stream.up ? 1 : 0),
    );
    family(
      "secretsync_stream_offset",
      "gauge",
      "The stream offset of the last message applied (saved, resumed from after a restart).",
      one(stream.offset),
    );
    family(
      "secretsync_stream_read_offset",
      "gauge",
      "The stream offset of the last message read.",
      one(stream.readOffset),
    );
    family(
      "secretsync_stream_lag_seconds",
      "gauge",
      "Time from the newest message read being put on the stream to watch reading it.",
      one(stream.lagSeconds),
    );
    family(
      "secretsync_stream_pending_secrets",
      "gauge",
      "Secrets with an event read but not yet synced.",
      one(stream.pending),
    );
    family(
      "secretsync_stream_unreachable_since_timestamp_seconds",
      "gauge",
      "Since when every call to the stream has failed, in seconds since the epoch.",
      one(seconds(stream.unreachableSinceMs)),
    );
    family(
      "secretsync_stream_last_read_timestamp_seconds",
      "gauge",
      "When watch last read the stream successfully, in seconds since the epoch.",
      one(seconds(stream.lastReadAtMs)),
    );
    family(
      "secretsync_stream_last_event_timestamp_seconds",
      "gauge",
      "When watch last read an event about a secret in its map, in seconds since the epoch.",
      one(seconds(stream.lastEventAtMs)),
    );
  }
  return lines.length > 0 ? lines.join("\n") + "\n" : "";
}

/**
 * Writes rendered metrics to `path` atomically, mode 0644 (node_exporter reads it as its own
 * user; the file names paths and OCIDs, never a value). The directory must exist.
 *
 * Requires `--allow-read` and `--allow-write` for the directory.
 */
export async function writeMetricsFile(path: string, text: string): Promise<void> {
  await atomicWrite(path, new TextEncoder().encode(text), { mode: 0o644 });
}

/** A label value as the text format quotes it. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function formatLabels(labels: Labels | undefined): string {
  if (!labels) return "";
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return `{${parts.join(",")}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function seconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms / 1000;
}

/**
 * The stream part of the metrics, from what a stream watch says of itself
 * (`StreamWatch.status()` or `stream.json`).
 */
export function streamMetricsOf(status: {
  streamId: string;
  state: string;
  offset: number | null;
  readOffset: number | null;
  readLagMs: number | null;
  pending: number;
  unreachableSince: string | null;
  lastReadAt?: string | null;
  lastEvent?: { at: string } | null;
}): StreamMetrics {
  const time = (iso: string | null | undefined) => {
    const ms = iso ? Date.parse(iso) : NaN;
    return Number.isNaN(ms) ? undefined : ms;
  };
  return {
    streamId: status.streamId,
    // "starting" (no call answered yet) is not up: nothing is known to work.
    up: status.state === "reading",
    offset: status.offset ?? undefined,
    readOffset: status.readOffset ?? undefined,
    lagSeconds: status.readLagMs === null ? undefined : Math.max(0, status.readLagMs) / 1000,
    pending: status.pending,
    unreachableSinceMs: time(status.unreachableSince),
    lastReadAtMs: time(status.lastReadAt),
    lastEventAtMs: time(status.lastEvent?.at),
  };
}

/** The parts of the state file the metrics show (see `state.ts`). */
export interface MetricsState {
  pendingReloads: readonly string[];
  entries?: Record<string, EntryState>;
}

/**
 * The metrics of a run: every entry the state records, and the run itself.
 *
 * @example
 * ```ts
 * import { metricsOf, renderMetrics } from "./metrics.ts";
 *
 * const text = renderMetrics(metricsOf({ pendingReloads: [], entries: {} }, {
 *   startedAtMs: 0, endedAtMs: 1000, code: 0, outcome: "unchanged", changes: 0, errors: 0, reloads: 0,
 * }));
 * ```
 */
export function metricsOf(
  state: MetricsState,
  run?: RunMetrics,
  nextRunAtMs?: number,
): MetricsInput {
  const owed = new Set(state.pendingReloads);
  const time = (iso: string | undefined) => {
    const ms = iso === undefined ? NaN : Date.parse(iso);
    return Number.isNaN(ms) ? undefined : ms;
  };
  const entries = Object.entries(state.entries ?? {}).map(([path, e]): EntryMetrics => {
    const version = typeof e.version === "number" ? e.version : Number(e.version);
    return {
      path,
      secretId: e.secretId,
      ok: e.error === undefined,
      // A version that is not a number (a name) has no gauge value.
      version: Number.isFinite(version) && e.version !== undefined ? version : undefined,
      changedAtMs: time(e.changedAt),
      checkedAtMs: time(e.checkedAt),
      notAfterMs: time(e.notAfter),
      reloadOwed: owed.has(path),
    };
  });
  return { entries, run, nextRunAtMs };
}

/** What {@linkcode writeRunMetrics} needs to know about a run. */
export interface RunRecord {
  /** The run's exit code. */
  code: number;
  /** The engine's counts; absent when the run stopped before syncing. */
  report?: { changed: readonly unknown[]; reloaded: readonly unknown[]; failures: number };
  /** The state the run wrote; absent when it stopped early (then the file on disk is read). */
  state?: MetricsState;
  startedAtMs: number;
  endedAtMs: number;
  /** Where the state file is, for a run that wrote none. */
  stateDir: string;
  /** `watch`: when its next full cycle is due. */
  nextRunAtMs?: number;
  /** `watch --stream`: the stream's state. */
  stream?: StreamMetrics;
}

/**
 * Renders a run's metrics and writes them to `path` atomically. A run that stopped before
 * syncing (a map error, a held lock) still gets its outcome written, with the entries as the
 * last state file recorded them, so an alert sees the failure.
 */
export async function writeRunMetrics(path: string, record: RunRecord): Promise<void> {
  const state = record.state ?? (await readState(record.stateDir)).state;
  const report = record.report;
  const run: RunMetrics = {
    startedAtMs: record.startedAtMs,
    endedAtMs: record.endedAtMs,
    code: record.code,
    outcome: outcomeOfCode(record.code),
    changes: report?.changed.length ?? 0,
    // A run that stopped early failed as a whole: count it as one error.
    errors: report ? report.failures : record.code === 0 || record.code === 3 ? 0 : 1,
    reloads: report?.reloaded.length ?? 0,
  };
  await writeMetricsFile(
    path,
    renderMetrics({ ...metricsOf(state, run, record.nextRunAtMs), stream: record.stream }),
  );
}

/**
 * {@linkcode writeRunMetrics}, with a failure logged as a warning: the run's own outcome and
 * exit code stay what they were.
 */
export async function writeRunMetricsLogged(
  path: string,
  log: Logger,
  record: RunRecord,
): Promise<void> {
  try {
    await writeRunMetrics(path, record);
  } catch (error) {
    log.log(
      "warn",
      "metrics",
      `Cannot write metrics file ${path}: ${error instanceof Error ? error.message : error}`,
      { event: "metrics_unwritable", path },
    );
  }
}
