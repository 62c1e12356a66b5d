/**
 * `secretsync watch`: stays running and keeps the files in line — a full run at start and every
 * `--interval`; with `--stream`, rotations arrive as OCI events on an OCI stream and sync just
 * their secret's entries within seconds (README, "Rotation events").
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { loadMap, openRecipes } from "../inputs.ts";
import { createLogger, type Logger } from "../log.ts";
import { accessProblems } from "../permissions.ts";
import { run, type RunOptions } from "../run.ts";
import { startStreamWatch } from "../stream/watch.ts";
import { sleep } from "../vault/abort.ts";
import { openVault, type SecretSource } from "../vault/mod.ts";
import { addRunFlags, runFlagsShape, toRunOptions } from "./run_flags.ts";
import { validateOptions } from "./usage.ts";

/** Parsed options of `secretsync watch`. */
export interface WatchOptions extends RunOptions {
  json: boolean;
  /** Between full runs, in ms. */
  intervalMs: number;
  /** Absent: no stream, full runs only. */
  stream?: {
    streamId: string;
    endpoint?: string;
    pollMs: number;
    spreadMs: number;
    fallbackIntervalMs: number;
    outageGraceMs: number;
    eventTypes: string[];
  };
}

const duration = (flag: string, min: number) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < min) {
      ctx.addIssue({
        code: "custom",
        message: `${flag} "${text}" must be a duration of at least ${min} ms, like 30s, 15m, 6h`,
      });
      return z.NEVER;
    }
    return ms;
  });

const watchSchema = z.object({
  ...runFlagsShape,
  interval: duration("--interval", 1000),
  stream: z.string().regex(
    /^ocid1\.stream\.[a-z0-9-]+\.[a-z0-9-]*\.[a-z0-9.-]+$/,
    "--stream must be a stream OCID (ocid1.stream.…)",
  ).optional(),
  streamEndpoint: z.string().refine(
    (v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
    { error: (issue) => `--stream-endpoint "${issue.input}" must be an http(s) URL` },
  ).optional(),
  poll: duration("--poll", 200),
  spread: z.string().transform((t, ctx) => {
    const ms = parseDuration(t);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `--spread "${t}" must be a duration like 30s` });
      return z.NEVER;
    }
    return ms;
  }),
  fallbackInterval: duration("--fallback-interval", 1000),
  streamOutage: duration("--stream-outage", 0),
  eventTypes: z.string().optional(),
}).transform((o): WatchOptions => ({
  ...toRunOptions(o),
  json: o.json,
  intervalMs: o.interval,
  stream: o.stream === undefined ? undefined : {
    streamId: o.stream,
    endpoint: o.streamEndpoint,
    pollMs: o.poll,
    spreadMs: o.spread,
    fallbackIntervalMs: o.fallbackInterval,
    outageGraceMs: o.streamOutage,
    eventTypes: (o.eventTypes ?? "").split(",").map((t) => t.trim()).filter(Boolean),
  },
}));

/** Declares `watch` and its flags. */
export function watchCommand(): Command {
  return addRunFlags(
    new Command("watch")
      .description(
        "Stay running: a full sync at start and every --interval; with --stream, sync a " +
          "secret's entries when its rotation event arrives",
      )
      .option("--interval <duration>", "time between full syncs", "6h")
      .option("--stream <ocid>", "OCI stream receiving the vault's secret events")
      .option(
        "--stream-endpoint <url>",
        "the stream's messages endpoint (default: https://streaming.<region>.oci.oraclecloud.com)",
      )
      .option("--poll <duration>", "time between stream reads", "30s")
      .option("--spread <duration>", "events wait a random part of this before syncing", "30s")
      .option(
        "--fallback-interval <duration>",
        "time between full syncs while the stream is unreachable",
        "15m",
      )
      .option(
        "--stream-outage <duration>",
        "how long the stream may fail before the fallback interval applies",
        "3m",
      )
      .option(
        "--event-types <list>",
        "comma-separated event types that trigger a sync (default: any event for a map secret)",
      ),
  );
}

/** Parses `watch` arguments into options; throws UsageError on bad input. */
export function parseWatchArgs(args: string[]): WatchOptions {
  const command = watchCommand().exitOverride();
  command.parse(args, { from: "user" });
  const raw = command.opts();
  return validateOptions(watchSchema, { ...raw, roots: raw.root });
}

/**
 * Runs `watch` until SIGTERM or SIGINT; returns 0 then, or 2 when the map or flags are unusable
 * at start.
 */
export async function runWatch(options: WatchOptions): Promise<number> {
  const log = createLogger({ json: options.json });
  let secretIds = await mapSecrets(options, log);
  if (!secretIds) return 2;
  // The vault client is opened once and reused, so run() does not check its hosts: here.
  const denied = accessProblems({
    net: [
      options.endpoint,
      options.stream?.endpoint,
      ...(options.auth.mode === "instance_principal"
        ? [options.auth.imdsUrl, options.auth.authEndpoint]
        : []),
    ].filter((url): url is string => url !== undefined),
  });
  for (const message of denied) log.log("error", "watch", message, { event: "not_permitted" });
  if (denied.length > 0) return 2;

  // One vault client for the watch's life: a rotation then costs one fetch, not an IMDS read
  // and a token federation as well (a fleet would federate once per host per rotation). The
  // session token is renewed by the SDK's provider when it expires. Without a client (OCI
  // unreachable at the time), run() opens its own and says why it cannot.
  let source: SecretSource | undefined;
  const vault = async (): Promise<SecretSource | undefined> => {
    if (source) return source;
    try {
      source = await openVault({
        auth: options.auth,
        region: options.region,
        endpoint: options.endpoint,
        stage: options.stage,
        timeoutMs: options.requestTimeoutMs,
        maxBytes: options.maxBytes,
      });
    } catch {
      // Deliberately ignored: run() tries again and logs the reason.
    }
    return source;
  };
  const stopper = new AbortController();
  const stop = () => stopper.abort();
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, stop);
  try {
    const doRun = async (secrets?: readonly string[]): Promise<boolean> => {
      if (secrets === undefined) secretIds = (await mapSecrets(options, log)) ?? secretIds;
      const { code } = await run(
        { ...options, secrets, trigger: secrets ? "event" : "watch" },
        { log, source: await vault() },
      );
      return code === 0 || code === 3;
    };

    if (!options.stream) {
      log.log("info", "watch", `Watching: a full sync every ${options.intervalMs / 1000} s`, {
        event: "watch_started",
      });
      while (!stopper.signal.aborted) {
        await doRun();
        await sleep(options.intervalMs, stopper.signal);
      }
      return 0;
    }

    const s = options.stream;
    log.log(
      "info",
      "watch",
      `Watching stream ${s.streamId}: read every ${s.pollMs / 1000} s, spread ${
        s.spreadMs / 1000
      } s; full sync every ${options.intervalMs / 1000} s (${
        s.fallbackIntervalMs / 1000
      } s while the stream is down)`,
      { event: "watch_started", streamId: s.streamId },
    );
    const watch = startStreamWatch({
      streamId: s.streamId,
      endpoint: s.endpoint,
      region: options.region,
      auth: options.auth,
      stateDir: options.stateDir,
      pollMs: s.pollMs,
      spreadMs: s.spreadMs,
      intervalMs: options.intervalMs,
      fallbackIntervalMs: s.fallbackIntervalMs,
      outageGraceMs: s.outageGraceMs,
      eventTypes: s.eventTypes,
      requestTimeoutMs: options.requestTimeoutMs,
    }, { log, sync: doRun, secretIds: () => secretIds! });
    stopper.signal.addEventListener("abort", () => watch.stop(), { once: true });
    await watch.done;
    return 0;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, stop);
    source?.close();
    log.log("info", "watch", "Stopped", { event: "watch_stopped" });
  }
}

/** The secret OCIDs of the map, or undefined (logged) when it cannot be read. */
async function mapSecrets(
  options: WatchOptions,
  log: Logger,
): Promise<ReadonlySet<string> | undefined> {
  const recipes = await openRecipes(options.recipesDir, log);
  if (!recipes) return undefined;
  const entries = await loadMap(options, log, recipes);
  return entries ? new Set(entries.map((e) => e.secretId)) : undefined;
}

/**
 * Reads a duration: `6h`, `15m`, `30s`, `250ms`, `1h30m`, or bare seconds; undefined otherwise.
 */
export function parseDuration(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const part = /(\d+)(ms|s|m|h|d)/y;
  let total = 0;
  let at = 0;
  if (text === "") return undefined;
  while (at < text.length) {
    part.lastIndex = at;
    const match = part.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * unit[match[2]];
    at = part.lastIndex;
  }
  return total;
}
