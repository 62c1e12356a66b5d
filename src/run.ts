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
import { dirname } from "./paths.ts";
import { accessProblems } from "./permissions.ts";
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
  writeState,
} from "./state.ts";
import { exitCodeOf, messageOf, sync, type SyncReport } from "./sync.ts";
import { entrySelector } from "./reference.ts";
import { credentialFiles, openVault, type SecretSource, type VaultAuth } from "./vault/mod.ts";
import { removeStaleTempFiles } from "./write.ts";

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
}

/** What a run talks to; a long-lived caller passes its own to reuse them across runs. */
export interface RunDeps {
  log: Logger;
  /**
   * Where secrets come from. When given, the run uses it and leaves it open (the caller owns
   * it); else the run opens OCI Vault with `options.timeoutMs` as its deadline and closes it.
   */
  source?: SecretSource;
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
  const { log } = deps;
  const now = deps.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const recipes = await openRecipes(options.recipesDir, log);
  if (!recipes) return { code: 2 };
  const entries = await loadMap(options, log, recipes);
  if (!entries) return { code: 2 };
  const denied = accessProblems({
    write: options.dryRun ? [] : [...options.roots, options.stateDir],
    read: credentialFiles(options.auth),
    net: deps.source ? [] : [
      options.endpoint,
      ...(options.auth.mode === "instance_principal"
        ? [options.auth.imdsUrl, options.auth.authEndpoint]
        : []),
    ].filter((url): url is string => url !== undefined),
  });
  for (const message of denied) log.log("error", "sync", message, { event: "not_permitted" });
  if (denied.length > 0) return { code: 2 };
  if (options.dryRun) {
    const report = await syncOnce(entries, options, deps, recipes, []);
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
  try {
    lock = await acquireRunLock(options.stateDir, options.lockTimeoutMs);
  } catch (error) {
    log.log("error", "lock", messageOf(error), { event: "lock_timeout" });
    return { code: 1 };
  }
  try {
    // Holding the lock, any temp file in these directories belongs to a run that died.
    const dirs = new Set([options.stateDir, ...entries.map((e) => dirname(e.path))]);
    for (const dir of dirs) {
      for (const path of await removeStaleTempFiles(dir)) {
        log.log("warn", "write", `Removed ${path} left by an interrupted run`, {
          event: "temp_removed",
          path,
        });
      }
    }
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
    );
    const code = exitCodeOf(report);
    const state: State = {
      pendingReloads: report.pendingReloads,
      entries: recordEntries(previous, entries, report, startedAt),
      lastRun: lastRunOf(startedAt, now().toISOString(), code, options.trigger),
    };
    await writeState(options.stateDir, state);
    return { code, report, state };
  } finally {
    lock.release();
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
  const records: Record<string, EntryState> = {};
  for (const entry of entries) {
    const before = previous.entries?.[entry.path];
    const prior = before?.secretId === entry.secretId ? before : undefined;
    const result = results.get(entry.path);
    let record: EntryState | undefined;
    if (!result) {
      record = prior;
    } else if (result.status === "failed") {
      record = { ...prior, secretId: entry.secretId, error: result.error };
    } else {
      const changed = result.status === "changed";
      record = {
        secretId: entry.secretId,
        version: result.version,
        changedAt: changed ? at : prior?.changedAt,
        checkedAt: at,
        // A certificate's expiry belongs to the content it was read from.
        notAfter: changed ? undefined : prior?.notAfter,
        error: result.error,
      };
    }
    if (record) records[entry.path] = withoutUndefined(record);
  }
  return records;
}

function withoutUndefined(record: EntryState): EntryState {
  return Object.fromEntries(
    Object.entries(record).filter(([, value]) => value !== undefined),
  ) as EntryState;
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
        signal: AbortSignal.timeout(options.timeoutMs),
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
    return await sync(entries, { source, reloader, log, oweReloads }, {
      roots: options.roots,
      dryRun: options.dryRun,
      concurrency: options.concurrency,
      pendingReloads,
      secrets: options.secrets,
      stage: options.stage,
    });
  } finally {
    if (opened) source.close();
  }
}
