/**
 * One run of `secretsync sync`: fetch every distinct secret once, bring each file in line, then
 * reload each changed target once. All writes happen before any reload, so a container reloads
 * with every one of its new files in place.
 *
 * @module
 */
import type { Entry, Reload, Target } from "./map.ts";
import type { Logger } from "./log.ts";
import { dirname, isInside } from "./paths.ts";
import { planReloads, type ReloadAction, reloadLabel, targetLabel } from "./plan.ts";
import { mapConcurrent } from "./pool.ts";
import { expiresWithin, readPem } from "./pem.ts";
import { readCurrent, refusedWrites } from "./precheck.ts";
import { RunDirectories } from "./run_dirs.ts";
import { ValidationError } from "./reload/runtime.ts";
import { restoreSnapshot, type Snapshot, takeSnapshot } from "./rollback.ts";
import { errorMessage } from "./text.ts";
import { selectKey } from "./extract.ts";
import { entrySelector, fetchKey, referenceOf, type SecretQuery } from "./reference.ts";
import {
  parseStage,
  type SecretBundle,
  type SecretSource,
  type UpcomingFetch,
  VaultError,
} from "./vault/mod.ts";
import {
  adjustAttributes,
  atomicWrite,
  type FileChange,
  fileChange,
  syncDirectory,
} from "./write.ts";

/** Files checked or written at once: enough to overlap filesystem calls, few open files. */
const FILE_CONCURRENCY = 16;

/** Whether a reload sent anything: a recipe with no safe reload only warns. */
export type ReloadOutcome = "reloaded" | "skipped";

/** Performs one planned reload; throws with a reason when it could not. */
export interface Reloader {
  reload(action: ReloadAction): Promise<ReloadOutcome>;
  /**
   * Whether reloading `target` with `reload` first validates the new files in the server (a
   * refusal throws a `ValidationError`): the run then keeps the old files to put them back.
   */
  validates?(target: Target, reload: Reload): boolean;
}

/** The edges a run talks to; tests point them at the OCI stand-in and real podman. */
export interface SyncDeps {
  source: SecretSource;
  reloader: Reloader;
  log: Logger;
  /**
   * Records, before the first write, the paths whose reload this run now owes, so that a run
   * killed after writing but before reloading leaves the reload owed to the next run.
   */
  oweReloads?: (paths: string[]) => Promise<void>;
}

/** How a run behaves. */
export interface SyncSettings {
  /** Roots the map's paths lie in; a path's longest root bounds its directory creation. */
  roots: string[];
  /** Fetch and compare, but write and reload nothing. */
  dryRun: boolean;
  /** Secrets fetched at once. */
  concurrency: number;
  /** Paths whose reload failed in an earlier run: their targets are reloaded again. */
  pendingReloads?: readonly string[];
  /** Accept certificates outside their validity window. @default false */
  allowExpired?: boolean;
  /** Warn about certificates that expire within this many ms. @default 14 days */
  warnExpiryMs?: number;
  /** The clock for validity and expiry. @default the time the run starts */
  now?: Date;
  /** The version each path held after the last run (from the state), for rollback messages. */
  recordedVersions?: ReadonlyMap<string, number | string>;
  /**
   * The run's `--stage`, which lines without their own `?stage=`/`?version=` fetch; lets
   * `REF` and `REF?stage=CURRENT` share one fetch. @default unknown: they are fetched apart
   */
  stage?: string;
  /**
   * Only the entries of these secrets are fetched and brought in line; reloads owed by any
   * entry still run. An entry is selected by its reference (`Entry.secretId`, in any spelling)
   * or by the OCID it names (see `entrySelector`). @default every entry
   */
  secrets?: readonly string[];
  /**
   * Stops the run early (SIGTERM, SIGINT): fired before the writes, none starts; fired later,
   * no reload starts (one under way finishes: it is bounded). Entries not written fail, and
   * reloads not done stay owed. Fetches are the source's to stop (see `run.ts`).
   */
  signal?: AbortSignal;
}

/** What one entry of a run came to. */
export interface EntryResult {
  entry: Entry;
  /**
   * What happened to the file. `unchanged`: in line already; `changed`: new content written
   * (or would be); `adjusted`: mode or owner set; `failed`: left as it was, see `error`.
   */
  status: "unchanged" | "changed" | "adjusted" | "failed";
  /** The secret version fetched, when the fetch succeeded. */
  version?: number;
  /**
   * Why the entry failed: its fetch or write (`failed`), or its target's reload (the file was
   * written, the reload is owed). Never a secret.
   */
  error?: string;
}

/** What a run did, for the exit code and for callers that want more than log lines. */
export interface SyncReport {
  /** Entries whose file content changed (or would, in a dry run). */
  changed: Entry[];
  /** Entries whose mode or owner alone changed. */
  adjusted: Entry[];
  /** Planned reloads that ran (or would, in a dry run). */
  reloaded: ReloadAction[];
  /** Paths whose reload failed in this run, to retry in the next one. */
  pendingReloads: string[];
  /** How many entries and reloads failed. */
  failures: number;
  /** Entries written, then put back because their target's validation refused them. */
  rolledBack: Entry[];
  /** Each certificate file's leaf, as the file now is (for state, status and metrics). */
  certificates: CertificateReport[];
  /** One result per entry this run looked at (all of them, or those of `secrets`). */
  results: EntryResult[];
}

/** A certificate file's leaf certificate: what `status` and the metrics show. */
export interface CertificateReport {
  path: string;
  subject: string;
  /** ISO 8601. */
  notAfter: string;
}

type Fetched = { bundle: SecretBundle } | { error: string };

/**
 * Exit code of a run: 1 if anything failed, else 3 if anything changed (a file, its mode or
 * owner, or a reload owed from an earlier run was done), else 0.
 */
export function exitCodeOf(report: SyncReport): 0 | 1 | 3 {
  if (report.failures > 0) return 1;
  const acted = report.changed.length + report.adjusted.length + report.reloaded.length;
  return acted > 0 ? 3 : 0;
}

/**
 * Runs one sync pass over validated entries.
 *
 * A failing secret fails only its own entries (their files stay as they were); every other
 * entry is still brought in line and reloaded.
 */
export async function sync(
  entries: readonly Entry[],
  deps: SyncDeps,
  settings: SyncSettings,
): Promise<SyncReport> {
  const { log } = deps;
  const report: SyncReport = {
    changed: [],
    adjusted: [],
    reloaded: [],
    pendingReloads: [],
    failures: 0,
    rolledBack: [],
    certificates: [],
    results: [],
  };
  const selected = settings.secrets ? entries.filter(entrySelector(settings.secrets)) : entries;
  const results = new Map<Entry, EntryResult>();
  const fail = (entry: Entry, error: string) => {
    const result = results.get(entry);
    if (result) Object.assign(result, { status: "failed", error });
  };
  const now = settings.now ?? new Date();

  // One fetch per distinct (secret, version), however many lines take keys from it.
  const defaultVersion = settings.stage ? parseStage(settings.stage) : undefined;
  const keyOf = (entry: Entry) => fetchKey(referenceOf(entry), defaultVersion);
  const queries = new Map<string, { query: SecretQuery; entries: Entry[] }>();
  for (const entry of selected) {
    const key = keyOf(entry);
    const group = queries.get(key);
    if (group) group.entries.push(entry);
    else queries.set(key, { query: referenceOf(entry), entries: [entry] });
  }
  const fetched = new Map<string, Fetched>();
  // The label as the map would write it, without the run's default stage; a bare OCID is asked
  // for as itself, anything more carries its query.
  const fetchOf = ({ query }: { query: SecretQuery }): UpcomingFetch => {
    const secretId = fetchKey({ secret: query.secret, version: query.version });
    return "ocid" in query.secret && !query.version
      ? { secretId }
      : { secretId, query: { secret: query.secret, version: query.version } };
  };
  // Each file is compared with its secret as soon as the secret is here (reading only, while
  // other fetches wait on the network). Decide first, act second: nothing is written before
  // every file's change is known.
  const compared = new Map<Entry, Promise<Comparison>>();
  const directories = new RunDirectories(selected.map((entry) => entry.path));
  // Only a run that fetches announces it: for watch's shared vault the hint opens the connection
  // (IMDS, federation), which a cycle with nothing to fetch must not do.
  const fetches = new Map([...queries].map(([key, group]) => [key, fetchOf(group)]));
  if (fetches.size > 0) deps.source.upcoming?.([...fetches.values()], settings.concurrency);
  await mapConcurrent([...queries.keys()], settings.concurrency, async (key) => {
    const { entries: group } = queries.get(key)!;
    const { secretId, query: asked } = fetches.get(key)!;
    try {
      const bundle = asked
        ? await deps.source.fetch(secretId, asked)
        : await deps.source.fetch(secretId);
      fetched.set(key, { bundle });
      for (const entry of group) {
        compared.set(entry, compareFile(entry, bundle, settings, directories));
      }
    } catch (error) {
      const reason = error instanceof VaultError ? error.reason : messageOf(error);
      fetched.set(key, { error: reason });
      const paths = group.map((e) => e.path);
      log.log(
        "error",
        "fetch",
        `Cannot fetch ${secretId}: ${reason}; left ${paths.join(", ")} as it was`,
        {
          event: "fetch_failed",
          secretId,
          paths,
          reason,
        },
      );
    }
    log.progress?.("fetch", fetched.size, queries.size);
  });

  // The comparisons' outcomes, taken in map order.
  const checks = await Promise.all(selected.map((entry) => compared.get(entry)));
  const planned: {
    entry: Entry;
    bundle: SecretBundle;
    change: Exclude<FileChange, "none">;
    absent?: boolean;
  }[] = [];
  // The bytes of the files found in line already (for the certificate report).
  const alreadyInSync = new Map<Entry, Uint8Array>();
  for (const [i, entry] of selected.entries()) {
    const result = fetched.get(keyOf(entry));
    if (!result || "error" in result) {
      report.failures++;
      results.set(entry, { entry, status: "failed", error: result?.error ?? "not fetched" });
      continue;
    }
    results.set(entry, { entry, status: "unchanged", version: result.bundle.version });
    try {
      const check = checks[i]!;
      if ("error" in check) throw check.error;
      if (check.change !== "none") {
        planned.push({ entry, bundle: check.bundle, change: check.change, absent: check.absent });
      } else {
        alreadyInSync.set(entry, check.bundle.bytes);
      }
    } catch (error) {
      report.failures++;
      fail(entry, messageOf(error));
      logWriteFailure(log, entry, error);
    }
  }

  // Check before writing: a certificate or key the server could not load keeps its old file.
  const refused = await refusedWrites(
    planned.filter((p) => p.change === "content").map((p) => ({
      entry: p.entry,
      bytes: p.bundle.bytes,
      absent: p.absent,
    })),
    entries,
    { now, allowExpired: settings.allowExpired ?? false },
  );
  for (const [entry, reason] of refused) {
    report.failures++;
    fail(entry, `refused before the write: ${reason}`);
    const version = planned.find((p) => p.entry === entry)!.bundle.version;
    log.log(
      "error",
      "check",
      `Refusing ${entry.path} from ${entry.secretId} (version ${version}): ${reason}; left ${entry.path} as it was`,
      { event: "content_refused", path: entry.path, secretId: entry.secretId, version, reason },
    );
  }
  planned.splice(0, planned.length, ...planned.filter((p) => !refused.has(p.entry)));

  // Write-ahead: a run killed between a write and its reload must not lose the reload, since
  // the next run finds the content unchanged. So the reloads are owed before any file moves.
  const willReload = planned.filter((p) =>
    p.change === "content" && p.entry.target && p.entry.reload
  );
  if (!settings.dryRun && willReload.length > 0 && deps.oweReloads) {
    try {
      await deps.oweReloads(willReload.map((p) => p.entry.path));
    } catch (error) {
      // A reload that is not owed is lost if the run dies after the write, or if the reload
      // fails: the next run finds the content unchanged. So these files keep their old
      // content and stay different; a run that can record the reload writes them.
      log.log("error", "state", `Cannot record the reloads this run owes: ${messageOf(error)}`, {
        event: "state_unwritable",
        reason: messageOf(error),
      });
      const reason = `its reload cannot be recorded in the state (${messageOf(error)})`;
      for (const { entry } of willReload) {
        report.failures++;
        fail(entry, `not written: ${reason}`);
        log.log("error", "write", `Not writing ${entry.path}: ${reason}; left as it was`, {
          event: "write_skipped",
          path: entry.path,
          secretId: entry.secretId,
          reason,
        });
      }
      planned.splice(0, planned.length, ...planned.filter((p) => !willReload.includes(p)));
    }
  }
  if (settings.signal?.aborted) {
    // Stopped before the writes: none starts. Once started they all finish (they are local
    // and quick, and their reloads are owed already).
    for (const { entry } of planned) {
      report.failures++;
      fail(entry, INTERRUPTED);
    }
    planned.length = 0;
  }

  // Files whose server validates them are kept (in memory, for this run) to be put back. A
  // file that cannot be kept is not written: it could not be put back.
  const snapshots = new Map<Entry, Snapshot>();
  if (!settings.dryRun) {
    for (const { entry, change } of planned) {
      if (
        change !== "content" || !entry.target || !entry.reload ||
        !deps.reloader.validates?.(entry.target, entry.reload)
      ) continue;
      try {
        snapshots.set(entry, await takeSnapshot(entry.path));
      } catch (error) {
        report.failures++;
        fail(entry, messageOf(error));
        logWriteFailure(log, entry, error);
      }
    }
    planned.splice(
      0,
      planned.length,
      ...planned.filter((p) => results.get(p.entry)?.status !== "failed"),
    );
  }

  // Files are written FILE_CONCURRENCY at a time, each directory fsynced once after its last
  // rename and before any reload; outcomes are then reported in map order.
  const written = await mapConcurrent(
    planned,
    FILE_CONCURRENCY,
    (p) =>
      writeChange(p.entry, p.bundle, p.change, settings, directories).then(
        () => undefined,
        (error) => error,
      ),
  );
  const dirs = new Set(
    planned.filter((p, i) => p.change === "content" && !written[i]).map((p) =>
      dirname(p.entry.path)
    ),
  );
  const dirErrors = new Map<string, unknown>();
  if (!settings.dryRun) {
    await mapConcurrent([...dirs], FILE_CONCURRENCY, (dir) =>
      syncDirectory(dir).catch((error) => {
        dirErrors.set(dir, error);
      }));
  }
  for (const [i, { entry, bundle, change }] of planned.entries()) {
    try {
      if (written[i] !== undefined) throw written[i];
      if (change === "content" && dirErrors.has(dirname(entry.path))) {
        throw dirErrors.get(dirname(entry.path));
      }
      logChange(deps.log, entry, bundle, change, settings);
      (change === "content" ? report.changed : report.adjusted).push(entry);
      results.get(entry)!.status = change === "content" ? "changed" : "adjusted";
    } catch (error) {
      report.failures++;
      fail(entry, messageOf(error));
      logWriteFailure(log, entry, error);
    }
  }

  // A reload that failed earlier is owed even though its file is now unchanged. Its file is
  // already on disk, so it is owed whatever this run's fetch did.
  const pending = new Set(settings.pendingReloads ?? []);
  const owed = entries.filter((e) => pending.has(e.path) && !report.changed.includes(e));
  for (const action of planReloads([...report.changed, ...owed])) {
    const what = `${targetLabel(action.target)} with ${reloadLabel(action.reload)}`;
    const fields = {
      target: targetLabel(action.target),
      reload: reloadLabel(action.reload),
      paths: action.paths,
    };
    if (settings.dryRun) {
      log.log("info", "reload", `Would reload ${what}`, { event: "would_reload", ...fields });
      report.reloaded.push(action);
      continue;
    }
    if (settings.signal?.aborted) {
      report.failures++;
      report.pendingReloads.push(...action.paths);
      log.log("warn", "reload", `Not reloading ${what}: ${INTERRUPTED}; owed to the next run`, {
        event: "reload_owed",
        ...fields,
      });
      continue;
    }
    try {
      // "skipped": the reloader has said why (a recipe with no safe reload).
      if ((await deps.reloader.reload(action)) === "skipped") continue;
      log.log("info", "reload", `Reloaded ${what} (for ${action.paths.join(", ")})`, {
        event: "reloaded",
        ...fields,
      });
      report.reloaded.push(action);
    } catch (error) {
      report.failures++;
      if (error instanceof ValidationError) {
        const putBack = await rollBack(action, error, snapshots, planned, report, deps, settings);
        for (const entry of putBack) {
          fail(entry, `rolled back: ${targetLabel(action.target)} refused it: ${error.message}`);
        }
        continue;
      }
      report.pendingReloads.push(...action.paths);
      for (const entry of entries) {
        const result = results.get(entry);
        // The file is written; its reload is what failed (and is owed).
        if (result && action.paths.includes(entry.path)) {
          result.error = `reload of ${targetLabel(action.target)} failed: ${messageOf(error)}`;
        }
      }
      log.log(
        "error",
        "reload",
        `Cannot reload ${what}: ${messageOf(error)}; will retry next run`,
        {
          event: "reload_failed",
          ...fields,
          reason: messageOf(error),
        },
      );
    }
  }
  report.results = selected.map((entry) => results.get(entry)!);
  const notDone = report.results.filter((r) => r.error === INTERRUPTED).map((r) => r.entry.path);
  if (notDone.length > 0) {
    log.log("warn", "sync", `Interrupted: left ${notDone.join(", ")} as they were`, {
      event: "not_done",
      paths: notDone,
    });
  }
  await reportCertificates(entries, planned, alreadyInSync, report, log, now, settings);
  return report;
}

/** Why an entry was not done when the run was stopped (its fetch, write or reload). */
export const INTERRUPTED = "the run was interrupted";

/**
 * The server refused the files of `action.target` (its validation failed): puts back every
 * file this run wrote for that target, so disk and server agree and a restart still works.
 * The reload is owed no more for what was put back (the server runs that content already),
 * only for what was owed before this run. Returns the entries of this target it put back.
 */
async function rollBack(
  action: ReloadAction,
  error: ValidationError,
  snapshots: ReadonlyMap<Entry, Snapshot>,
  planned: readonly { entry: Entry; bundle: SecretBundle }[],
  report: SyncReport,
  deps: SyncDeps,
  settings: SyncSettings,
): Promise<Entry[]> {
  const { log } = deps;
  const label = targetLabel(action.target);
  const owedBefore = new Set(settings.pendingReloads ?? []);
  const written = report.changed.filter((e) =>
    snapshots.has(e) && targetLabel(e.target!) === label
  );
  const what = `${label} with ${reloadLabel(action.reload)}`;
  log.log("error", "reload", `Cannot reload ${what}: ${error.message}`, {
    event: "validation_failed",
    target: label,
    reload: reloadLabel(action.reload),
    paths: action.paths,
    reason: error.message,
  });
  for (const entry of written) {
    const version = planned.find((p) => p.entry === entry)?.bundle.version;
    const previous = settings.recordedVersions?.get(entry.path);
    try {
      await restoreSnapshot(snapshots.get(entry)!);
      report.changed.splice(report.changed.indexOf(entry), 1);
      report.rolledBack.push(entry);
      log.log(
        "error",
        "rollback",
        `Rolled back ${entry.path}: version ${version} of ${entry.secretId} was refused by ` +
          `${label}; the previous content${
            previous === undefined ? "" : ` (version ${previous})`
          } is back and version ${version} will be tried again next run`,
        {
          event: "rolled_back",
          path: entry.path,
          secretId: entry.secretId,
          version,
          target: label,
        },
      );
    } catch (restoreError) {
      // The new file stays: its reload is owed, and the next run validates it again.
      report.pendingReloads.push(entry.path);
      log.log(
        "error",
        "rollback",
        `Cannot roll back ${entry.path} (version ${version} of ${entry.secretId}): ${
          messageOf(restoreError)
        }`,
        { event: "rollback_failed", path: entry.path, reason: messageOf(restoreError) },
      );
    }
  }
  const putBack = new Set(report.rolledBack.map((e) => e.path));
  report.pendingReloads.push(
    ...action.paths.filter((path) => !putBack.has(path) || owedBefore.has(path)),
  );
  return written.filter((entry) => putBack.has(entry.path));
}

/**
 * Reads each certificate file's leaf as the file now is (the new content when written or
 * unchanged, else what stayed on disk) and warns about those expiring soon.
 */
async function reportCertificates(
  entries: readonly Entry[],
  planned: readonly { entry: Entry; bundle: SecretBundle }[],
  alreadyInSync: ReadonlyMap<Entry, Uint8Array>,
  report: SyncReport,
  log: Logger,
  now: Date,
  settings: SyncSettings,
): Promise<void> {
  const done = new Set([...report.changed, ...report.adjusted]);
  const plannedBytes = new Map(planned.map((p) => [p.entry, p.bundle.bytes]));
  for (const entry of entries) {
    if (entry.noContentCheck) continue;
    // The file holds the fetched content when it was equal already or was written just now.
    const written = !settings.dryRun && done.has(entry) ? plannedBytes.get(entry) : undefined;
    const bytes = alreadyInSync.get(entry) ?? written ?? await readCurrent(entry.path);
    if (!bytes) continue; // No file: no certificate to report.
    let leaf;
    try {
      leaf = readPem(bytes)?.leaf;
    } catch {
      continue; // A broken file on disk: it was reported when it was refused.
    }
    if (!leaf) continue;
    const notAfter = leaf.notAfter.toISOString();
    report.certificates.push({ path: entry.path, subject: leaf.subject, notAfter });
    const within = settings.warnExpiryMs ?? 14 * 86_400_000;
    if (expiresWithin(leaf.notAfter, within, now)) {
      const state = leaf.notAfter.getTime() < now.getTime() ? "expired" : "expires";
      log.log(
        "warn",
        "expiry",
        `Certificate "${leaf.subject}" in ${entry.path} ${state} on ${notAfter}`,
        { event: "certificate_expiring", path: entry.path, subject: leaf.subject, notAfter },
      );
    }
  }
}

/** What the entry writes: the whole secret, or one key of it (throws when it has none). */
function contentOf(entry: Entry, bundle: SecretBundle): SecretBundle {
  const key = entry.ref?.key;
  return key ? { bytes: selectKey(bundle.bytes, key), version: bundle.version } : bundle;
}

/**
 * A file compared with its secret: the content it should have and what differs (and whether the
 * file is known not to exist), or why not.
 */
type Comparison = { bundle: SecretBundle; change: FileChange; absent?: boolean } | {
  error: unknown;
};

/** {@linkcode changeOf} as a {@linkcode Comparison}: it never rejects. */
async function compareFile(
  entry: Entry,
  fetched: SecretBundle,
  settings: SyncSettings,
  dirs: RunDirectories,
): Promise<Comparison> {
  try {
    const bundle = contentOf(entry, fetched);
    return { bundle, ...await changeOf(entry, bundle, settings, dirs) };
  } catch (error) {
    return { error };
  }
}

/** How the file differs from the secret; checks the directories on the way, never follows links. */
async function changeOf(
  entry: Entry,
  bundle: SecretBundle,
  settings: SyncSettings,
  dirs: RunDirectories,
): Promise<{ change: FileChange; absent?: boolean }> {
  const root = rootOf(entry.path, settings.roots);
  const parentExists = await dirs.parentReady(entry.path, root, { create: false });
  if (!parentExists || dirs.knownAbsent(entry.path)) return { change: "content", absent: true };
  const attributes = { mode: entry.mode, owner: entry.owner };
  return { change: await fileChange(entry.path, bundle.bytes, attributes) };
}

/** Writes the file (its directory not yet fsynced), or fixes its mode and owner; dry run: nothing. */
async function writeChange(
  entry: Entry,
  bundle: SecretBundle,
  change: Exclude<FileChange, "none">,
  settings: SyncSettings,
  dirs: RunDirectories,
): Promise<void> {
  const attributes = { mode: entry.mode, owner: entry.owner };
  if (settings.dryRun) return;
  if (change === "content") {
    await dirs.parentReady(entry.path, rootOf(entry.path, settings.roots), { create: true });
    await atomicWrite(entry.path, bundle.bytes, attributes, { syncDirectory: false });
  } else {
    // A file with other hard links gets a fresh copy: chmod would change every link.
    await adjustAttributes(entry.path, bundle.bytes, attributes);
  }
}

/** Says what was done (or, dry run, would be). */
function logChange(
  log: Logger,
  entry: Entry,
  bundle: SecretBundle,
  change: Exclude<FileChange, "none">,
  settings: SyncSettings,
): void {
  const fields = { path: entry.path, secretId: entry.secretId, version: bundle.version };
  const mode = `0${entry.mode.toString(8)}`;
  if (settings.dryRun) {
    const what = change === "content" ? "update" : `set mode ${mode}${ownerText(entry)} on`;
    log.log(
      "info",
      "write",
      `Would ${what} ${entry.path} from ${entry.secretId} (version ${bundle.version})`,
      { event: change === "content" ? "would_update" : "would_adjust", ...fields },
    );
  } else if (change === "content") {
    log.log(
      "info",
      "write",
      `Updated ${entry.path} from ${entry.secretId} (version ${bundle.version})`,
      { event: "updated", ...fields },
    );
  } else {
    log.log("info", "write", `Set mode ${mode}${ownerText(entry)} on ${entry.path}`, {
      event: "adjusted",
      ...fields,
    });
  }
}

function logWriteFailure(log: Logger, entry: Entry, error: unknown): void {
  log.log(
    "error",
    "write",
    `Cannot write ${entry.path} from ${entry.secretId}: ${messageOf(error)}`,
    {
      event: "write_failed",
      path: entry.path,
      secretId: entry.secretId,
      reason: messageOf(error),
    },
  );
}

function ownerText(entry: Entry): string {
  return entry.owner ? ` and owner ${entry.owner.uid}:${entry.owner.gid}` : "";
}

/** The innermost root holding `path`; the map parser guarantees there is one. */
function rootOf(path: string, roots: string[]): string {
  return roots.filter((root) => isInside(path, root)).sort((a, b) => b.length - a.length)[0];
}

/** The message of anything thrown, for log lines (one definition: `errorMessage`). */
export const messageOf = errorMessage;
