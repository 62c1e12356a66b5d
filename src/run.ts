/**
 * One whole run, as `sync`, `watch` and the event consumer do it: recipes, map, permission
 * checks, state directory, run lock, stale temp files, state, vault, the engine, state again.
 *
 * Commands parse their flags and call {@link run}; it never exits the process and never
 * throws for anything a run can meet (a bad map, a locked state dir, an unwritable state):
 * it logs why and returns the exit code.
 *
 * @module
 */
import { loadMap, openRecipes } from "./inputs.ts";
import { acquireRunLock, type RunLock } from "./lock.ts";
import type { Logger } from "./log.ts";
import type { Entry } from "./map.ts";
import { dirname, innermostRoot } from "./paths.ts";
import { accessProblems, explainNotCapable } from "./permissions.ts";
import type { RecipeRegistry } from "./recipes.ts";
import { createReloader } from "./reload/reloader.ts";
import { detectRuntime } from "./reload/runtime.ts";
import { directoryProblems } from "./roots.ts";
import {
  type EntryState,
  type LastRun,
  readState,
  type RunOutcome,
  type State,
  stateFile,
  writeState,
} from "./state.ts";
import { exitCodeOf, INTERRUPTED, messageOf, sync, type SyncReport } from "./sync.ts";
import { entrySelector } from "./reference.ts";
import { credentialProblems, openVault, type SecretSource, type VaultAuth } from "./vault/mod.ts";
import { oneLine } from "./text.ts";
import { ensureParent, removeStaleTempFiles, UnsafePathError } from "./write.ts";

/** What a run does; `sync`'s flags, parsed. */
export interface RunOptions {
  map: string;
  roots: string[];
  auth: VaultAuth;
  region?: string;
  endpoint?: string;
  runtime: "auto" | "docker" | "podman";
  concurrency: number;
  stage: string;
  dryRun: boolean;
  /** Whole-run deadline for talking to OCI, in milliseconds. */
  timeoutMs: number;
  /** Per-request timeout, in milliseconds. */
  requestTimeoutMs: number;
  /** Largest secret accepted, in bytes. */
  maxBytes: number;
  /** Where the run lock and the state file live. */
  stateDir: string;
  /** How long to wait for another run to finish, in milliseconds. */
  lockTimeoutMs: number;
  /** `--recipes-dir` when given; else the default directory, which may be missing. */
  recipesDir?: string;
  /** Vault requests per second at most (`--rate`); none when not given. */
  rate?: number;
  /** `--allow-stop-signals`: a reload may send KILL, STOP, TERM, INT or QUIT. @default false */
  allowStopSignals?: boolean;
  /**
   * Only the map entries of these secret references (the map's first column) are fetched and
   * brought in line; the others keep their recorded state. Reloads owed from earlier runs still
   * run. @default every entry
   */
  secrets?: readonly string[];
  /** Why this run happened (`timer`, `watch`, `event`…), recorded in `lastRun`. */
  trigger?: string;
  /** Write certificates outside their validity window. @default false */
  allowExpired?: boolean;
  /** Warn about certificates expiring within this many ms. @default 14 days */
  warnExpiryMs?: number;
}

/** What a run talks to; a long-lived caller passes its own to reuse them across runs. */
export interface RunDeps {
  log: Logger;
  /**
   * Where secrets come from. When given, the run uses it and leaves it open (the caller owns
   * it); else the run opens OCI Vault with `options.timeoutMs` as its deadline and closes it.
   */
  source?: SecretSource;
  /**
   * Ends the run early: once it fires, nothing new starts (see `SyncSettings.signal`). When
   * absent, the run stops on its own at SIGTERM or SIGINT, with a log line.
   */
  signal?: AbortSignal;
  /** The clock, for the times recorded in the state. @default () => new Date() */
  now?: () => Date;
}

/** What a run came to. */
export interface RunResult {
  /** The exit code: 0, 1, 2 or 3 (see the README). */
  code: 0 | 1 | 2 | 3;
  /** The engine's report; absent when the run stopped before syncing (code 1 or 2). */
  report?: SyncReport;
  /** The state as this run wrote it; absent for a dry run or a run that stopped early. */
  state?: State;
}

/**
 * Performs one whole run and returns its exit code and report. Logs every problem.
 *
 * Requires read on the map, the roots and the recipes directory; write on the roots and the
 * state directory (not for a dry run); net to OCI.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * const { code } = await run({
 *   map: "/etc/oci-secretsync/map.csv",
 *   roots: ["/run/secrets"],
 *   auth: { mode: "instance_principal" },
 *   runtime: "auto",
 *   concurrency: 8,
 *   stage: "CURRENT",
 *   dryRun: true,
 *   timeoutMs: 45_000,
 *   requestTimeoutMs: 10_000,
 *   maxBytes: 65_536,
 *   stateDir: "/run/oci-secretsync",
 *   lockTimeoutMs: 60_000,
 * }, { log: createLogger() });
 * ```
 */
export async function run(options: RunOptions, deps: RunDeps): Promise<RunResult> {
  const stop = deps.signal ? { signal: deps.signal, dispose: () => {} } : stopOnSignals(deps.log);
  try {
    return await runUnsafe(options, { ...deps, signal: stop.signal });
  } catch (error) {
    // Every expected failure is handled where it happens; this is the last line of defence,
    // so that no run ends in a stack trace (and a --json run in a non-JSON line).
    deps.log.log("error", "run", `Run failed: ${explainNotCapable(error)}`, {
      event: "run_failed",
      reason: explainNotCapable(error),
    });
    return { code: 1 };
  } finally {
    stop.dispose();
  }
}

async function runUnsafe(
  options: RunOptions,
  deps: RunDeps & { signal: AbortSignal },
): Promise<RunResult> {
  const { log } = deps;
  const now = deps.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const recipes = await openRecipes(options.recipesDir, log);
  if (!recipes) return { code: 2 };
  const entries = await loadMap(options, log, recipes);
  if (!entries) return { code: 2 };
  const denied = [
    ...credentialProblems(options.auth),
    ...accessProblems({
      write: options.dryRun ? [] : [...options.roots, options.stateDir],
      read: options.dryRun ? [options.stateDir] : [],
      net: deps.source ? [] : [
        options.endpoint,
        ...(options.auth.mode === "instance_principal"
          ? [options.auth.imdsUrl, options.auth.authEndpoint]
          : []),
      ].filter((url): url is string => url !== undefined),
    }),
  ];
  for (const message of denied) log.log("error", "sync", message, { event: "not_permitted" });
  if (denied.length > 0) return { code: 2 };
  if (options.dryRun) {
    // As the real run would: the same refusals, and the reloads it owes (read, not locked).
    const owed = await pendingForDryRun(options.stateDir, log);
    if (!owed) return { code: 2 };
    const report = await syncOnce(entries, options, deps, recipes, owed);
    return { code: exitCodeOf(report), report };
  }

  try {
    await Deno.mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    log.log(
      "error",
      "state",
      `Cannot create state directory ${options.stateDir}: ${messageOf(error)}`,
      { event: "state_unusable" },
    );
    return { code: 2 };
  }
  // The lock and the state file live here: as for a root, nobody else may write in it.
  const unsafe = await directoryProblems([options.stateDir], "State directory");
  for (const message of unsafe) log.log("error", "state", message, { event: "state_unusable" });
  if (unsafe.length > 0) return { code: 2 };
  let lock: RunLock;
  const locking = acquireRunLock(options.stateDir, options.lockTimeoutMs);
  try {
    lock = await untilStopped(locking, deps.signal);
  } catch (error) {
    if (error === STOPPED) {
      // Stopped while waiting: a lock obtained later is let go at once (a long-lived caller
      // goes on living). A failure to obtain it needs no report: this run is over.
      locking.then((late) => late.release(), () => {});
      return { code: 1 };
    }
    log.log("error", "lock", messageOf(error), { event: "lock_timeout" });
    return { code: 1 };
  }
  try {
    if (deps.signal.aborted) return { code: 1 };
    await removeStaleTemps(entries, options, log);
    const { state: previous, warning } = await readState(options.stateDir);
    if (warning) log.log("warn", "state", warning, { event: "state_corrupt" });
    const oweReloads = async (paths: string[]) => {
      const pendingReloads = [...new Set([...previous.pendingReloads, ...paths])];
      await writeState(options.stateDir, { ...previous, pendingReloads });
    };
    const report = await syncOnce(
      entries,
      options,
      deps,
      recipes,
      previous.pendingReloads,
      oweReloads,
      previous.entries,
    );
    let code = exitCodeOf(report);
    const state: State = {
      pendingReloads: report.pendingReloads,
      entries: recordEntries(previous, entries, report, startedAt),
      lastRun: lastRunOf(startedAt, now().toISOString(), code, options.trigger),
    };
    try {
      await writeState(options.stateDir, state);
    } catch (error) {
      // The reloads this run owes were recorded before its writes (or those writes did not
      // happen), so what is lost here is the record of this run, not a reload.
      log.log(
        "error",
        "state",
        `Cannot record this run in ${stateFile(options.stateDir)}: ${messageOf(error)}`,
        { event: "state_unwritable", reason: messageOf(error) },
      );
      code = 1;
      return { code, report };
    }
    return { code, report, state };
  } finally {
    lock.release();
  }
}

/** Thrown by {@link untilStopped} when the stop signal fires first. */
const STOPPED = Symbol("stopped");

function untilStopped<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(STOPPED);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(STOPPED);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * An abort signal fired by the first SIGTERM or SIGINT while the run lasts, with a log line
 * for each. The run then starts nothing new and ends with what it finished.
 */
function stopOnSignals(log: Logger): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const listeners = (["SIGTERM", "SIGINT"] as const).map((name) => {
    const listener = () => {
      const again = controller.signal.aborted;
      log.log(
        "warn",
        "run",
        again
          ? `Received ${name} again: still finishing what is under way`
          : `Received ${name}: finishing what is under way, starting nothing new`,
        { event: "signal_received", signal: name },
      );
      controller.abort(name);
    };
    Deno.addSignalListener(name, listener);
    return { name, listener };
  });
  return {
    signal: controller.signal,
    dispose: () => {
      for (const { name, listener } of listeners) Deno.removeSignalListener(name, listener);
    },
  };
}

/**
 * The reloads owed from earlier runs, for a dry run: read without the lock (nothing is
 * written). A missing state directory owes nothing; an unsafe one is refused, as a real run
 * refuses it (logged; `undefined`).
 */
async function pendingForDryRun(stateDir: string, log: Logger): Promise<string[] | undefined> {
  try {
    await Deno.lstat(stateDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const unsafe = await directoryProblems([stateDir], "State directory");
  for (const message of unsafe) log.log("error", "state", message, { event: "state_unusable" });
  if (unsafe.length > 0) return undefined;
  const { state, warning } = await readState(stateDir);
  if (warning) log.log("warn", "state", warning, { event: "state_corrupt" });
  return state.pendingReloads;
}

/**
 * Removes temp files left by a killed run, holding the lock. Each entry's directory is
 * cleaned only when every directory from its root down is a real directory, never through a
 * symlink out of the root; a directory that is not (or cannot be read) is left alone here, and
 * its entry fails on its own with the reason.
 */
async function removeStaleTemps(
  entries: readonly Entry[],
  options: RunOptions,
  log: Logger,
): Promise<void> {
  const dirs = new Map<string, Entry | undefined>([[options.stateDir, undefined]]);
  for (const entry of entries) {
    if (!dirs.has(dirname(entry.path))) dirs.set(dirname(entry.path), entry);
  }
  for (const [dir, entry] of dirs) {
    try {
      const root = entry && innermostRoot(entry.path, options.roots);
      if (entry && !(root && await ensureParent(entry.path, root, { create: false }))) continue;
      for (const path of await removeStaleTempFiles(dir)) {
        log.log("warn", "write", `Removed ${path} left by an interrupted run`, {
          event: "temp_removed",
          path,
        });
      }
    } catch (error) {
      if (error instanceof UnsafePathError) continue; // its entry is refused with this reason
      log.log("warn", "write", `Cannot look for stale temp files in ${dir}: ${messageOf(error)}`, {
        event: "temp_cleanup_failed",
        path: dir,
        reason: messageOf(error),
      });
    }
  }
}

/** The outcome word of an exit code. */
export function outcomeOf(code: number): RunOutcome {
  return code === 0 ? "unchanged" : code === 3 ? "changed" : "failed";
}

function lastRunOf(startedAt: string, endedAt: string, code: number, trigger?: string): LastRun {
  const lastRun: LastRun = { startedAt, endedAt, code, outcome: outcomeOf(code) };
  if (trigger !== undefined) lastRun.trigger = trigger;
  return lastRun;
}

/**
 * The per-entry records after a run: every map path, with this run's outcome where it looked
 * at the entry and the earlier record elsewhere. Paths no longer in the map are dropped, and
 * so is a record of a path that now holds a different secret.
 */
export function recordEntries(
  previous: State,
  entries: readonly Entry[],
  report: SyncReport,
  at: string,
): Record<string, EntryState> {
  const results = new Map(report.results.map((r) => [r.entry.path, r]));
  // Read from each certificate file as it now is, whatever this run did to it.
  const notAfters = new Map(report.certificates.map((c) => [c.path, c.notAfter]));
  const records: Record<string, EntryState> = {};
  for (const entry of entries) {
    const before = previous.entries?.[entry.path];
    const prior = before?.secretId === entry.secretId ? before : undefined;
    const result = results.get(entry.path);
    let record: EntryState | undefined;
    if (!result) {
      record = prior;
    } else if (result.status === "failed") {
      record = { ...prior, secretId: entry.secretId, error: reasonText(result.error) };
    } else {
      const changed = result.status === "changed";
      record = {
        secretId: entry.secretId,
        version: result.version,
        changedAt: changed ? at : prior?.changedAt,
        checkedAt: at,
        // A certificate's expiry belongs to the content it was read from.
        notAfter: changed ? undefined : prior?.notAfter,
        error: reasonText(result.error),
      };
    }
    if (record) {
      records[entry.path] = withoutUndefined({ ...record, notAfter: notAfters.get(entry.path) });
    }
  }
  return records;
}

/** A reason as `state.json` keeps it: control characters stripped, one line, capped. */
function reasonText(reason: string | undefined): string | undefined {
  return reason === undefined ? undefined : oneLine(reason, MAX_REASON_CHARS);
}

const MAX_REASON_CHARS = 500;

function withoutUndefined(record: EntryState): EntryState {
  return Object.fromEntries(
    Object.entries(record).filter(([, value]) => value !== undefined),
  ) as EntryState;
}

/**
 * `source`, stopped by `signal`: no fetch starts once it fired, and one it cut short (the
 * vault's own deadline includes the signal) fails as interrupted rather than as a vault error.
 */
function stoppable(source: SecretSource, signal: AbortSignal | undefined): SecretSource {
  if (!signal) return source;
  return {
    async fetch(secretId, query) {
      if (signal.aborted) throw new Error(INTERRUPTED);
      try {
        return await (query ? source.fetch(secretId, query) : source.fetch(secretId));
      } catch (error) {
        throw signal.aborted ? new Error(INTERRUPTED) : error;
      }
    },
    upcoming: (fetches, inFlight) => source.upcoming?.(fetches, inFlight),
    close: () => source.close(),
  };
}

/** Where fetches go when there is no vault: each fails, and every file stays as it is. */
const NO_SOURCE: SecretSource = {
  fetch: () => Promise.reject(new Error("not fetched: OCI Vault is unavailable")),
  close: () => {},
};

/**
 * Opens the vault (unless the caller gave one) and runs the engine. Without `oweReloads`
 * (a dry run) nothing is recorded.
 */
async function syncOnce(
  entries: Entry[],
  options: RunOptions,
  deps: RunDeps,
  recipes: RecipeRegistry,
  pendingReloads: readonly string[],
  oweReloads?: (paths: string[]) => Promise<void>,
  recorded: State["entries"] = {},
): Promise<SyncReport> {
  const { log } = deps;
  const selected = options.secrets ? entries.filter(entrySelector(options.secrets)) : entries;
  let source: SecretSource = deps.source ?? NO_SOURCE;
  let opened = false;
  try {
    // A run with no lines to fetch needs no vault: do not authenticate (and fail off OCI).
    if (!deps.source && selected.length > 0) {
      source = await openVault({
        auth: options.auth,
        region: options.region,
        endpoint: options.endpoint,
        stage: options.stage,
        timeoutMs: options.requestTimeoutMs,
        signal: deps.signal
          ? AbortSignal.any([AbortSignal.timeout(options.timeoutMs), deps.signal])
          : AbortSignal.timeout(options.timeoutMs),
        maxBytes: options.maxBytes,
        rate: options.rate,
      });
      opened = true;
    }
  } catch (error) {
    log.log("error", "vault", `Cannot connect to OCI Vault: ${messageOf(error)}`, {
      event: "vault_unavailable",
      reason: messageOf(error),
    });
    // The source stays NO_SOURCE: every fetch fails and every file stays as it is, but
    // reloads owed from an earlier run need no vault, so they still run.
  }
  try {
    const reloader = createReloader({
      runtime: () => detectRuntime(options.runtime),
      recipes,
      entries,
      log,
      allowStopSignals: options.allowStopSignals,
    });
    return await sync(entries, {
      source: stoppable(source, deps.signal),
      reloader,
      log,
      oweReloads,
    }, {
      roots: options.roots,
      dryRun: options.dryRun,
      concurrency: options.concurrency,
      pendingReloads,
      secrets: options.secrets,
      signal: deps.signal,
      allowExpired: options.allowExpired,
      warnExpiryMs: options.warnExpiryMs,
      recordedVersions: new Map(
        Object.entries(recorded).flatMap(([path, r]) =>
          r.version === undefined ? [] : [[path, r.version]]
        ),
      ),
      stage: options.stage,
    });
  } finally {
    if (opened) source.close();
  }
}
