/**
 * The `--stream` flags of `watch`, declared and checked here so any watch command can take them:
 * `addStreamFlags(command)`, then `parseStreamFlags(command.opts())`.
 *
 * @module
 */
import type { Command } from "commander";
import { parseDuration } from "../duration.ts";

/** The stream flags, for a command that hands the rest of its arguments to another parser. */
export const STREAM_FLAGS: readonly string[] = [
  "--stream",
  "--stream-endpoint",
  "--poll",
  "--spread",
  "--fallback-interval",
  "--stream-outage",
  "--event-types",
];

/** What the stream flags say. */
export interface StreamFlags {
  streamId: string;
  endpoint?: string;
  pollMs: number;
  spreadMs: number;
  fallbackIntervalMs: number;
  outageGraceMs: number;
  /** Empty: any event type. */
  eventTypes: string[];
}

/** Adds the stream flags to a command. */
export function addStreamFlags(command: Command): Command {
  return command
    .option("--stream <ocid>", "OCI stream receiving the vault's secret events (README)")
    .option(
      "--stream-endpoint <url>",
      "the stream's messages endpoint (default: https://streaming.<region>.oci.oraclecloud.com)",
    )
    .option("--poll <duration>", "with --stream: time between stream reads", "30s")
    .option(
      "--spread <duration>",
      "with --stream: an event waits a random part of this before its sync",
      "30s",
    )
    .option(
      "--fallback-interval <duration>",
      "with --stream: time between full syncs while the stream is unreachable",
      "15m",
    )
    .option(
      "--stream-outage <duration>",
      "with --stream: how long the stream may fail before the fallback interval applies",
      "3m",
    )
    .option(
      "--event-types <list>",
      "with --stream: comma-separated event types that sync (default: any, for a map secret)",
    );
}

/**
 * Checks the stream flags of `command.opts()`; undefined without `--stream`. Throws
 * `RangeError` naming the flag and the value when one is wrong.
 *
 * @example
 * ```ts
 * parseStreamFlags({ stream: "ocid1.stream.oc1.iad.aaaa", poll: "30s", spread: "30s",
 *   fallbackInterval: "15m", streamOutage: "3m" })?.pollMs; // 30000
 * ```
 */
export function parseStreamFlags(raw: Record<string, unknown>): StreamFlags | undefined {
  const text = (name: string) => (typeof raw[name] === "string" ? raw[name] as string : undefined);
  const stream = text("stream");
  if (stream === undefined) return undefined;
  if (!/^ocid1\.stream\.[a-z0-9-]+\.[a-z0-9-]*\.[a-z0-9.-]+$/.test(stream)) {
    throw new RangeError(`--stream "${stream}" must be a stream OCID (ocid1.stream.…)`);
  }
  const endpoint = text("streamEndpoint");
  if (
    endpoint !== undefined &&
    !(URL.canParse(endpoint) && /^https?:$/.test(new URL(endpoint).protocol))
  ) {
    throw new RangeError(`--stream-endpoint "${endpoint}" must be an http(s) URL`);
  }
  const duration = (name: string, flag: string, min: number, fallback: string): number => {
    const value = text(name) ?? fallback;
    const ms = parseDuration(value);
    if (ms === undefined || ms < min) {
      throw new RangeError(
        `${flag} "${value}" must be a duration of at least ${min} ms, like 30s, 15m or 1h`,
      );
    }
    return ms;
  };
  const pollMs = duration("poll", "--poll", 200, "30s");
  if (pollMs >= 5 * 60_000) {
    // A cursor unused for 5 minutes expires: every read would have to make a new one.
    throw new RangeError(`--poll "${text("poll")}" must be under 5m (cursors expire after 5m)`);
  }
  return {
    streamId: stream,
    endpoint,
    pollMs,
    spreadMs: duration("spread", "--spread", 0, "30s"),
    fallbackIntervalMs: duration("fallbackInterval", "--fallback-interval", 1000, "15m"),
    outageGraceMs: duration("streamOutage", "--stream-outage", 0, "3m"),
    eventTypes: (text("eventTypes") ?? "").split(",").map((t) => t.trim()).filter(Boolean),
  };
}
