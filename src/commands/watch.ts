/**
 * `secretsync watch`: the sync in a loop, for hosts without systemd and for sidecar
 * containers. A full cycle at start and every `--interval` (plus up to `--jitter`); SIGHUP runs
 * one now; SIGTERM or SIGINT end the loop, letting a file being written finish; a failing
 * cycle is logged and the loop goes on.
 *
 * Takes every `sync` flag. `cli.ts` hands this command sync's options and parser, so the two
 * never drift and never import each other.
 *
 * @module
 */
import { Command, type Option } from "commander";
import { COMMANDER_ERROR_OUTPUT, createLogger, type Logger } from "../log.ts";
import {
  outcomeOfCode,
  type RunRecord,
  streamMetricsOf,
  writeRunMetricsLogged,
} from "../metrics.ts";
import { accessProblems } from "../permissions.ts";
import { run } from "../run.ts";
import { writeSchedule } from "../schedule.ts";
import { formatDuration } from "../status.ts";
import { SharedVault } from "../vault/shared.ts";
import { messageOf } from "../sync.ts";
import { parseDuration } from "../duration.ts";
import { type CycleRequest, startWatchLoop, type WatchLoop } from "../watch.ts";
import { type RunFlags, UsageError } from "./usage.ts";
import { loadMap, openRecipes } from "../inputs.ts";
import { type SecretMatcher, secretMatcher } from "../stream/events.ts";
import {
  addStreamFlags,
  parseStreamFlags,
  STREAM_FLAGS,
  type StreamFlags,
} from "../stream/flags.ts";
import { createLoopSync, type LoopSync } from "../stream/loop_sync.ts";
import { startStreamWatch, type StreamWatch } from "../stream/watch.ts";

/** Parsed options of `secretsync watch`. */
export interface WatchOptions {
  run: RunFlags;
  intervalMs: number;
  jitterMs: number;
  /** `--stream` and its flags; absent: no event stream. */
  stream?: StreamFlags;
}

/**
 * Something that feeds a running watch from outside, e.g. an event stream asking for some
 * secrets now (`loop.trigger(ids)`) or a sooner full cycle (`loop.setNextFullAt`). Attached
 * once the loop runs; `stop()` is awaited before `watch` exits.
 */
export interface WatchFeed {
  stop(): void | Promise<void>;
}

/** What {@linkcode runWatch} can be extended with. */
export interface WatchExtensions {
  /** Called once the loop runs: attach event sources to it. */
  attach?: (loop: WatchLoop, log: Logger) => WatchFeed | Promise<WatchFeed>;
}

const WATCH_FLAGS = ["--interval", "--jitter", ...STREAM_FLAGS];

/** Declares `watch`: sync's flags (given by the caller) plus `--interval` and `--jitter`. */
export function watchCommand(syncOptions: readonly Option[] = []): Command {
  const command = new Command("watch")
    .description(
      "Sync in a loop: at start, then every interval; SIGHUP syncs now, SIGTERM/SIGINT stop",
    )
    .option("--interval <duration>", "time between full syncs (6h, 30m, 90s, 500ms)", "6h")
    .option("--jitter <duration>", "up to this much is added to each interval, at random", "5m")
    .addHelpText(
      "after",
      `
Every sync option is accepted too (--map, --root, --auth, --metrics-file, …).

Example:
  secretsync watch --interval 1h --jitter 5m --metrics-file /var/lib/node_exporter/secretsync.prom
  kill -HUP <pid>     # sync now
  secretsync status   # when the next cycle is due`,
    );
  addStreamFlags(command);
  for (const option of syncOptions) {
    // A dry run in a loop would only repeat itself: `sync --dry-run` is the way.
    if (option.long !== "--dry-run") command.addOption(option);
  }
  return command;
}

/**
 * Parses `watch` arguments: `--interval` and `--jitter` here, everything else with
 * `parseSyncArgs` (sync's own parser). Throws UsageError on bad input.
 */
export function parseWatchArgs(
  args: string[],
  parseSyncArgs: (args: string[]) => RunFlags,
  syncOptions: readonly Option[] = [],
): WatchOptions {
  // Parsed once whole, for --help and unknown flags; then the sync part by sync's parser.
  const command = watchCommand(syncOptions).exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT);
  command.parse(args, { from: "user" });
  const raw = command.opts();
  const intervalMs = parseDuration(raw.interval);
  if (intervalMs === undefined || intervalMs <= 0) {
    throw new UsageError(`--interval "${raw.interval}" must be a duration like 6h, 30m or 90s`);
  }
  const jitterMs = parseDuration(raw.jitter);
  if (jitterMs === undefined) {
    throw new UsageError(`--jitter "${raw.jitter}" must be a duration like 5m or 0`);
  }
  let stream: StreamFlags | undefined;
  try {
    stream = parseStreamFlags(raw);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const runFlags = parseSyncArgs(withoutFlags(args, WATCH_FLAGS));
  return { run: runFlags, intervalMs, jitterMs, ...(stream ? { stream } : {}) };
}

/** `args` without the named flags and their values (`--x v` and `--x=v`). */
function withoutFlags(args: string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (flags.includes(arg)) {
      i++; // its value
      continue;
    }
    if (flags.some((flag) => arg.startsWith(`${flag}=`))) continue;
    out.push(arg);
  }
  return out;
}

/**
 * Runs `watch` until SIGTERM or SIGINT; returns the exit code: 0 after a clean stop, 2 for a
 * usage problem found before the first cycle.
 */
export async function runWatch(
  options: WatchOptions,
  extensions: WatchExtensions = {},
): Promise<number> {
  const log = createLogger({ json: options.run.json });
  const flags = options.run;
  // A run given a vault source does not check the network permissions: do it here, once,
  // with the metrics file, which is watch's own.
  const denied = accessProblems({
    write: flags.metricsFile ? [flags.metricsFile] : [],
    net: [
      flags.endpoint,
      options.stream?.endpoint,
      ...(flags.auth.mode === "instance_principal"
        ? [flags.auth.imdsUrl, flags.auth.authEndpoint]
        : []),
    ].filter((url): url is string => url !== undefined),
  });
  for (const message of denied) log.log("error", "watch", message, { event: "not_permitted" });
  if (denied.length > 0) return 2;
  // With --stream: which map secrets an event is about (re-read after each full cycle), and
  // the stream watch's syncs as loop cycles (settled when a covering cycle ends).
  let match: SecretMatcher | undefined;
  if (options.stream) {
    match = await mapMatcher(flags, log);
    if (!match) return 2;
  }
  let bridge: LoopSync | undefined;

  const startedAt = new Date().toISOString();
  let cycles = 0;
  let lastNext: number | undefined;
  const schedule = (fields: { nextCycleAt?: string; stoppedAt?: string }) =>
    writeScheduleSafely(flags.stateDir, log, {
      pid: Deno.pid,
      startedAt,
      intervalMs: options.intervalMs,
      jitterMs: options.jitterMs,
      cycles,
      ...fields,
    });

  // Authenticated once, not per cycle (see SharedVault); each cycle keeps its --timeout.
  const vault = new SharedVault({
    auth: flags.auth,
    region: flags.region,
    endpoint: flags.endpoint,
    stage: flags.stage,
    timeoutMs: flags.requestTimeoutMs,
    maxBytes: flags.maxBytes,
    rate: flags.rate,
  }, { runTimeoutMs: flags.timeoutMs });
  let unwritten: RunRecord | undefined;
  // The last run's record as written, so a change of the stream's state can be shown without
  // waiting for the next cycle.
  let written: RunRecord | undefined;
  let stream: StreamWatch | undefined;
  const streamMetrics = () => stream ? streamMetricsOf(stream.status()) : undefined;
  const writeMetrics = async (nextRunAtMs: number | undefined) => {
    if (flags.metricsFile && unwritten) {
      written = { ...unwritten, nextRunAtMs };
      await writeRunMetricsLogged(flags.metricsFile, log, { ...written, stream: streamMetrics() });
    }
    unwritten = undefined;
  };

  const loop = startWatchLoop({
    intervalMs: options.intervalMs,
    jitterMs: options.jitterMs,
    runCycle: async (request) => {
      const started = Date.now();
      // The cycle's view of the shared vault: when watch stops, its requests are abandoned, so
      // the run fails what it had not fetched and ends; a file being written is finished first.
      const source = vault.forRun(request.signal);
      // The signal also goes to the run itself: a run layer that takes one stops waiting for
      // the lock on it and leaves SIGTERM to watch (a run without a signal adds its own
      // listeners). Passed as a variable, so a run layer without the field simply ignores it.
      const deps = { log, source, signal: request.signal };
      let result;
      try {
        result = await run(
          { ...flags, secrets: request.secretIds, trigger: `watch:${request.trigger}` },
          deps,
        );
      } catch (error) {
        bridge?.cycleEnded(request.secretIds, 1);
        throw error;
      } finally {
        source.close();
      }
      if (match && request.secretIds === undefined) match = (await mapMatcher(flags, log)) ?? match;
      bridge?.cycleEnded(request.secretIds, result.code);
      cycles++;
      const ended = Date.now();
      logCycle(log, request, result.code, ended - started, request.signal.aborted);
      unwritten = { ...result, startedAtMs: started, endedAtMs: ended, stateDir: flags.stateDir };
      // A full cycle's metrics wait for its next due time (onScheduled); a partial cycle does
      // not move it.
      if (request.secretIds) await writeMetrics(lastNext);
    },
    onScheduled: async (nextAt) => {
      lastNext = nextAt;
      await writeMetrics(nextAt);
      const at = new Date(nextAt).toISOString();
      log.log(
        "info",
        "watch",
        `Next full sync at ${at} (in ${formatDuration(Math.max(0, nextAt - Date.now()))})`,
        { event: "watch_scheduled", nextCycleAt: at },
      );
      await schedule({ nextCycleAt: at });
    },
    onCycleError: (error, request) => {
      log.log("error", "watch", `Cycle ${request.number} failed: ${messageOf(error)}`, {
        event: "cycle_failed",
        cycle: request.number,
        reason: messageOf(error),
      });
    },
  });

  let stopping = false;
  const stop = (signal: Deno.Signal) => () => {
    if (stopping) return;
    stopping = true;
    log.log("info", "watch", `Stopping on ${signal}`, { event: "watch_stopping", signal });
    loop.stop();
  };
  const onTerm = stop("SIGTERM");
  const onInt = stop("SIGINT");
  const onHup = () => {
    log.log("info", "watch", "SIGHUP: syncing now", { event: "watch_hup" });
    loop.trigger();
  };
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGHUP", onHup);
  log.log(
    "info",
    "watch",
    `Watching ${flags.map}: every ${formatDuration(options.intervalMs)}` +
      (options.jitterMs > 0 ? ` plus up to ${formatDuration(options.jitterMs)}` : "") +
      `; SIGHUP syncs now, SIGTERM stops (pid ${Deno.pid})`,
    { event: "watch_started", pid: Deno.pid },
  );
  let feed: WatchFeed | undefined;
  try {
    feed = extensions.attach ? await extensions.attach(loop, log) : undefined;
    const s = options.stream;
    if (s) {
      bridge = createLoopSync(loop);
      stream = startStreamWatch({
        streamId: s.streamId,
        endpoint: s.endpoint,
        region: flags.region,
        auth: flags.auth,
        stateDir: flags.stateDir,
        pollMs: s.pollMs,
        spreadMs: s.spreadMs,
        // The loop runs the full cycles every --interval; the stream watch asks for one only
        // when it starts without an offset and while the stream is down.
        intervalMs: Number.MAX_SAFE_INTEGER,
        fallbackIntervalMs: s.fallbackIntervalMs,
        outageGraceMs: s.outageGraceMs,
        eventTypes: s.eventTypes,
        requestTimeoutMs: flags.requestTimeoutMs,
      }, {
        log,
        sync: bridge.sync,
        match: () => match!,
        // The metrics file follows the stream's state (up, offset, lag) between cycles too.
        onStatus: async (status) => {
          if (flags.metricsFile && written) {
            await writeRunMetricsLogged(flags.metricsFile, log, {
              ...written,
              stream: streamMetricsOf(status),
            });
          }
        },
      });
      log.log(
        "info",
        "watch",
        `Reading stream ${s.streamId} every ${formatDuration(s.pollMs)}; events sync after up to ${
          formatDuration(s.spreadMs)
        }; full sync every ${formatDuration(s.fallbackIntervalMs)} while the stream is down`,
        { event: "stream_started", streamId: s.streamId },
      );
    }
    await loop.done;
  } finally {
    loop.stop();
    bridge?.cancel();
    stream?.stop();
    await stream?.done;
    await feed?.stop();
    vault.close();
    Deno.removeSignalListener("SIGTERM", onTerm);
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGHUP", onHup);
  }
  await writeMetrics(undefined); // the last cycle, ended by the stop
  await schedule({ stoppedAt: new Date().toISOString() });
  log.log("info", "watch", `Stopped after ${cycles} cycles`, { event: "watch_stopped", cycles });
  return 0;
}

function logCycle(
  log: Logger,
  request: Omit<CycleRequest, "signal">,
  code: number,
  ms: number,
  stopped: boolean,
): void {
  const what = request.secretIds
    ? `for ${request.secretIds.length} secret${request.secretIds.length === 1 ? "" : "s"}`
    : "full";
  // Cut short by the stop: what it left undone is the stop's doing, not a failure to alert on.
  const outcome = stopped ? "stopped" : outcomeOfCode(code);
  log.log(
    stopped || code === 0 || code === 3 ? "info" : "error",
    "watch",
    `Cycle ${request.number} (${what}, ${request.trigger}) ended: ${outcome}, exit ${code}, in ${
      (ms / 1000).toFixed(2)
    } s`,
    {
      event: "cycle_ended",
      cycle: request.number,
      trigger: request.trigger,
      code,
      outcome,
      durationMs: ms,
      // For --json consumers watching a long-lived process: memory should stay flat.
      heapUsedBytes: Deno.memoryUsage().heapUsed,
      rssBytes: Deno.memoryUsage().rss,
    },
  );
}

async function writeScheduleSafely(
  stateDir: string,
  log: Logger,
  schedule: Parameters<typeof writeSchedule>[1],
): Promise<void> {
  try {
    await writeSchedule(stateDir, schedule);
  } catch (error) {
    // status then cannot say when the next cycle is due; the syncing itself is unaffected.
    log.log("warn", "watch", `Cannot record the schedule in ${stateDir}: ${messageOf(error)}`, {
      event: "schedule_unwritable",
    });
  }
}

/** Which map secrets an event is about, or undefined (logged) when the map cannot be read. */
async function mapMatcher(flags: RunFlags, log: Logger): Promise<SecretMatcher | undefined> {
  const recipes = await openRecipes(flags.recipesDir, log);
  if (!recipes) return undefined;
  const entries = await loadMap(flags, log, recipes);
  return entries ? secretMatcher(entries) : undefined;
}
