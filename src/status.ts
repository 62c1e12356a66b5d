/**
 * What `secretsync status` says, decided from plain data: the state the last run left, the
 * watch schedule, and the systemd timer. Pure functions; the command reads the files.
 *
 * Nothing here ever sees a secret: the state holds paths, OCIDs, versions, times and reasons.
 *
 * @module
 */
import type { WatchSchedule } from "./schedule.ts";
import type { EntryState } from "./state.ts";
import type { StreamStatus } from "./stream/watcher.ts";
import type { TimerInfo } from "./timer.ts";

/** One entry as the state records it (keyed by path). */
export type EntryRecord = EntryState;

/** The last run as the state records it. */
export interface LastRunRecord {
  startedAt: string;
  endedAt: string;
  code: number;
  outcome: string;
  trigger?: string;
}

/** What `status` is told. */
export interface StatusInput {
  /** `false` when there is no state file: no run ever finished here. */
  stateFound: boolean;
  /** Why the state could not be read, if so. */
  stateWarning?: string;
  entries: Record<string, EntryRecord>;
  pendingReloads: readonly string[];
  lastRun?: LastRunRecord;
  watch?: WatchSchedule;
  watchWarning?: string;
  /** What `watch --stream` last wrote (`stream.json`), if it ever ran here. */
  stream?: StreamStatus & { writtenAt: string };
  streamWarning?: string;
  timer?: TimerInfo;
  now: Date;
}

/** The event stream of `watch --stream`, as `status` shows it. */
export interface StreamReport {
  streamId: string;
  partition: string;
  /** `starting`, `reading`, `unreachable` (failing, within the grace), `fallback` (full syncs). */
  state: StreamStatus["state"];
  /** Whether the last stream call worked (`reading`). */
  reachable: boolean;
  /** Since when every stream call failed; null while it works. */
  unreachableSince: string | null;
  /** The saved offset: the last message applied. */
  offset: number | null;
  /** The last offset read. */
  readOffset: number | null;
  /** Append-to-read delay of the newest message read, in seconds. */
  lagSeconds: number | null;
  /** Secrets waiting for their sync. */
  pending: number;
  lastReadAt: string | null;
  lastEvent: StreamStatus["lastEvent"];
  lastError: string | null;
  /** When the watch wrote this. */
  writtenAt: string;
  /** Set when this may be out of date: the watch stopped, or has not written for a while. */
  note?: string;
}

/** When the next run is due, and who runs it. */
export interface NextRun {
  /** `watch`, `timer`, or `none` when neither is known to be scheduled. */
  source: "watch" | "timer" | "none";
  /** ISO time, when known. */
  at?: string;
  /** Anything to add: the timer's raw time, a stopped watch, an overdue cycle. */
  note?: string;
}

/** One entry as `status` shows it. */
export interface StatusEntry extends EntryRecord {
  path: string;
  reloadOwed: boolean;
}

/** Everything `status` shows (and `status --json` prints). */
export interface StatusReport {
  /** `ok`, `failed` (the last run failed), `no-state` (no run recorded), `unreadable`. */
  health: "ok" | "failed" | "no-state" | "unreadable";
  lastRun?: LastRunRecord & { durationSeconds: number };
  next: NextRun;
  /** Present when `watch --stream` ran here. */
  stream?: StreamReport;
  entries: StatusEntry[];
  warnings: string[];
}

/** Exit codes of `status`. */
export const STATUS_EXIT = {
  ok: 0,
  failed: 1,
  unreadable: 1,
  "no-state": 4,
} as const;

/** Decides what `status` reports. */
export function buildStatus(input: StatusInput): StatusReport {
  const warnings = [input.stateWarning, input.watchWarning, input.streamWarning].filter((
    w,
  ): w is string => !!w);
  const owed = new Set(input.pendingReloads);
  const entries = Object.keys(input.entries).sort().map((path) => ({
    path,
    ...input.entries[path],
    reloadOwed: owed.has(path),
  }));
  // A reload owed for a path the records do not list (an old state file) is still shown.
  for (const path of [...owed].filter((p) => !(p in input.entries)).sort()) {
    entries.push({ path, secretId: "", reloadOwed: true });
  }
  const run = input.lastRun;
  const health: StatusReport["health"] = input.stateWarning
    ? "unreadable"
    : !input.stateFound || !run
    ? "no-state"
    : run.code === 0 || run.code === 3
    ? "ok"
    : "failed";
  return {
    health,
    lastRun: run
      ? {
        ...run,
        durationSeconds: Math.max(0, Date.parse(run.endedAt) - Date.parse(run.startedAt)) / 1000,
      }
      : undefined,
    next: nextRun(input),
    stream: input.stream ? streamReport(input) : undefined,
    entries,
    warnings,
  };
}

/** The next run: a running watch's schedule first, else the systemd timer. */
export function nextRun(input: Pick<StatusInput, "watch" | "timer" | "now">): NextRun {
  const watch = input.watch;
  if (watch && !watch.stoppedAt && watch.nextCycleAt) {
    const at = Date.parse(watch.nextCycleAt);
    // A cycle may take a while; well past its time, the watch is probably gone.
    const late = input.now.getTime() - at > Math.max(60_000, watch.intervalMs);
    return {
      source: "watch",
      at: watch.nextCycleAt,
      note: late
        ? `overdue: watch (pid ${watch.pid}) has not run it; is it still running?`
        : `watch, pid ${watch.pid}, every ${formatDuration(watch.intervalMs)}`,
    };
  }
  const timer = input.timer;
  if (timer?.available && timer.unitFileState === "enabled" && timer.activeState === "active") {
    return {
      source: "timer",
      at: timer.nextElapse?.toISOString(),
      note: timer.nextElapse
        ? "oci-secretsync.timer"
        : `oci-secretsync.timer: ${timer.nextElapseText || "not scheduled"}`,
    };
  }
  const notes = [
    watch?.stoppedAt ? `watch stopped at ${watch.stoppedAt}` : undefined,
    timer === undefined
      ? undefined
      : timer.available
      ? `oci-secretsync.timer is ${timer.unitFileState || "not installed"}`
      : `no systemd timer: ${timer.reason}`,
  ].filter((n): n is string => !!n);
  return { source: "none", note: notes.join("; ") || undefined };
}

/** How long `stream.json` may go unwritten before `status` calls it out of date (the watch
 * writes it at least once a minute). */
const STREAM_STALE_MS = 3 * 60_000;

/** The stream part of the report; `input.stream` must be set. */
export function streamReport(input: Pick<StatusInput, "stream" | "watch" | "now">): StreamReport {
  const s = input.stream!;
  const age = input.now.getTime() - Date.parse(s.writtenAt);
  const stoppedAt = input.watch?.stoppedAt;
  const note = stoppedAt
    ? `as of ${s.writtenAt}: watch stopped at ${stoppedAt}`
    : !(age <= STREAM_STALE_MS)
    ? `as of ${s.writtenAt}: not updated for ${
      Number.isFinite(age) ? formatDuration(age) : "an unknown time"
    }; is watch --stream still running?`
    : undefined;
  return {
    streamId: s.streamId,
    partition: s.partition,
    state: s.state,
    reachable: s.state === "reading",
    unreachableSince: s.unreachableSince ?? null,
    offset: s.offset ?? null,
    readOffset: s.readOffset ?? null,
    lagSeconds: typeof s.readLagMs === "number" ? Math.max(0, s.readLagMs) / 1000 : null,
    pending: s.pending ?? 0,
    lastReadAt: s.lastReadAt ?? null,
    lastEvent: s.lastEvent ?? null,
    lastError: s.lastError ?? null,
    writtenAt: s.writtenAt,
    ...(note ? { note } : {}),
  };
}

/** The stream's lines of `status`. */
function formatStream(stream: StreamReport): string[] {
  const state = stream.reachable || stream.state === "starting"
    ? stream.state
    : `${stream.state === "fallback" ? "unreachable, full syncs instead" : "unreachable"} since ${
      stream.unreachableSince ?? "?"
    }`;
  const lines = [
    `Stream:    ${stream.streamId} (partition ${stream.partition}): ${state}; offset ${
      stream.offset ?? "none"
    } (read ${stream.readOffset ?? "none"}), lag ${
      stream.lagSeconds === null ? "-" : `${stream.lagSeconds} s`
    }, ${stream.pending} pending`,
    `           last event: ${
      stream.lastEvent
        ? `${stream.lastEvent.at} ${stream.lastEvent.eventType} for ${stream.lastEvent.secretId} (offset ${stream.lastEvent.offset})`
        : "none since the watch started"
    }`,
  ];
  if (stream.lastError && stream.unreachableSince) {
    lines.push(`           error: ${stream.lastError}`);
  }
  if (stream.note) lines.push(`           (${stream.note})`);
  return lines;
}

/** The human form of a report. */
export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  const run = report.lastRun;
  if (run) {
    lines.push(
      `Last run:  ${run.outcome} (exit ${run.code}), started ${run.startedAt}, took ${run.durationSeconds} s${
        run.trigger ? `, by ${run.trigger}` : ""
      }`,
    );
  } else {
    lines.push("Last run:  none recorded yet");
  }
  const next = report.next;
  lines.push(
    `Next run:  ${next.at ?? (next.source === "none" ? "not scheduled" : "unknown")}${
      next.note ? ` (${next.note})` : ""
    }`,
  );
  if (report.stream) lines.push(...formatStream(report.stream));
  if (report.entries.length > 0) {
    const rows = report.entries.map((e) => [
      e.path,
      e.secretId || "-",
      e.version === undefined ? "-" : String(e.version),
      e.changedAt ?? "-",
      [
        e.error ? `error: ${e.error}` : "ok",
        e.reloadOwed ? "reload owed" : "",
        e.notAfter ? `cert until ${e.notAfter}` : "",
      ].filter((s) => s).join("; "),
    ]);
    const header = ["PATH", "SECRET", "VERSION", "CHANGED", "STATE"];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    lines.push("");
    for (const row of [header, ...rows]) {
      lines.push(
        row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  "),
      );
    }
  }
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);
  return lines.join("\n") + "\n";
}

/** `6h`, `5m`, `1h30m`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const units: [string, number][] = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], [
    "s",
    1000,
  ]];
  let rest = Math.round(ms / 1000) * 1000;
  let text = "";
  for (const [unit, size] of units) {
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text;
}
