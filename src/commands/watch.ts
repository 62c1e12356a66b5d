/**
 * `secretsync watch`: stays running and keeps the files in line — a full run at start and every
 * `--interval`; with `--stream`, rotations arrive as OCI events on an OCI stream and sync just
 * their secret's entries within seconds (README, "Rotation events").
 *
 * Takes every `sync` flag: `main.ts` hands this command sync's options and parser, so the two
 * never drift and never import each other.
 *
 * @module
 */
import { Command, type Option } from "commander";
import { loadMap, openRecipes } from "../inputs.ts";
import { createLogger, type Logger } from "../log.ts";
import { accessProblems } from "../permissions.ts";
import { run, type RunOptions } from "../run.ts";
import { type SecretMatcher, secretMatcher } from "../stream/events.ts";
import {
  addStreamFlags,
  parseDuration,
  parseStreamFlags,
  STREAM_FLAGS,
  type StreamFlags,
} from "../stream/flags.ts";
import { startStreamWatch } from "../stream/watch.ts";
import { sleep } from "../vault/abort.ts";
import { openVault, type SecretSource } from "../vault/mod.ts";
import { UsageError } from "./usage.ts";

/** A run's options as `sync` parses them. */
export type RunFlags = RunOptions & { json: boolean };

/** Parsed options of `secretsync watch`. */
export interface WatchOptions {
  run: RunFlags;
  /** Between full runs, in ms. */
  intervalMs: number;
  /** Absent: no stream, full runs only. */
  stream?: StreamFlags;
}

const WATCH_FLAGS = ["--interval", ...STREAM_FLAGS];

/** Declares `watch`: `--interval`, the stream flags, and sync's flags (given by the caller). */
export function watchCommand(syncOptions: readonly Option[] = []): Command {
  const command = addStreamFlags(
    new Command("watch")
      .description(
        "Stay running: a full sync at start and every --interval; with --stream, sync a " +
          "secret's entries when its rotation event arrives",
      )
      .option("--interval <duration>", "time between full syncs (6h, 30m, 90s)", "6h"),
  );
  for (const option of syncOptions) {
    // A dry run in a loop would only repeat itself: `sync --dry-run` is the way.
    if (option.long !== "--dry-run") command.addOption(option);
  }
  return command;
}

/**
 * Parses `watch` arguments: its own flags here, everything else with `parseSyncArgs` (sync's
 * own parser). Throws UsageError on bad input.
 */
export function parseWatchArgs(
  args: string[],
  parseSyncArgs: (args: string[]) => RunFlags,
  syncOptions: readonly Option[] = [],
): WatchOptions {
  const command = watchCommand(syncOptions).exitOverride();
  command.parse(args, { from: "user" });
  const raw = command.opts();
  const intervalMs = parseDuration(raw.interval);
  if (intervalMs === undefined || intervalMs < 1000) {
    throw new UsageError(`--interval "${raw.interval}" must be a duration like 6h, 30m or 90s`);
  }
  let stream: StreamFlags | undefined;
  try {
    stream = parseStreamFlags(raw);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { run: parseSyncArgs(withoutFlags(args, WATCH_FLAGS)), intervalMs, stream };
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
 * Runs `watch` until SIGTERM or SIGINT; returns 0 then, or 2 when the map or flags are unusable
 * at start.
 */
export async function runWatch(options: WatchOptions): Promise<number> {
  const flags = options.run;
  const log = createLogger({ json: flags.json });
  let match = await mapMatcher(flags, log);
  if (!match) return 2;
  // The vault client is opened once and reused, so run() does not check its hosts: here.
  const denied = accessProblems({
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

  // One vault client for the watch's life: a rotation then costs one fetch, not an IMDS read
  // and a token federation as well (a fleet would federate once per host per rotation). The
  // session token is renewed by the SDK's provider when it expires. Without a client (OCI
  // unreachable at the time), run() opens its own and says why it cannot.
  let source: SecretSource | undefined;
  const vault = async (): Promise<SecretSource | undefined> => {
    if (source) return source;
    try {
      source = await openVault({
        auth: flags.auth,
        region: flags.region,
        endpoint: flags.endpoint,
        stage: flags.stage,
        timeoutMs: flags.requestTimeoutMs,
        maxBytes: flags.maxBytes,
      });
    } catch {
      // Deliberately ignored: run() tries again and logs the reason.
    }
    return source;
  };
  const doRun = async (secrets?: readonly string[]): Promise<boolean> => {
    if (secrets === undefined) match = (await mapMatcher(flags, log)) ?? match;
    const { code } = await run(
      { ...flags, secrets, trigger: secrets ? "watch:event" : "watch" },
      { log, source: await vault() },
    );
    return code === 0 || code === 3;
  };

  const stopper = new AbortController();
  const stop = () => stopper.abort();
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, stop);
  try {
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
      region: flags.region,
      auth: flags.auth,
      stateDir: flags.stateDir,
      pollMs: s.pollMs,
      spreadMs: s.spreadMs,
      intervalMs: options.intervalMs,
      fallbackIntervalMs: s.fallbackIntervalMs,
      outageGraceMs: s.outageGraceMs,
      eventTypes: s.eventTypes,
      requestTimeoutMs: flags.requestTimeoutMs,
    }, { log, sync: doRun, match: () => match! });
    stopper.signal.addEventListener("abort", () => watch.stop(), { once: true });
    await watch.done;
    return 0;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, stop);
    source?.close();
    log.log("info", "watch", "Stopped", { event: "watch_stopped" });
  }
}

/** Which map secrets an event concerns, or undefined (logged) when the map cannot be read. */
async function mapMatcher(flags: RunFlags, log: Logger): Promise<SecretMatcher | undefined> {
  const recipes = await openRecipes(flags.recipesDir, log);
  if (!recipes) return undefined;
  const entries = await loadMap(flags, log, recipes);
  return entries ? secretMatcher(entries) : undefined;
}
