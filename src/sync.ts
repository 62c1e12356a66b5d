/**
 * One run of `secretsync sync`: fetch every distinct secret once, bring each file in line, then
 * reload each changed target once. All writes happen before any reload, so a container reloads
 * with every one of its new files in place.
 *
 * @module
 */
import type { Entry } from "./map.ts";
import type { Logger } from "./log.ts";
import { dirname, isInside } from "./paths.ts";
import { planReloads, type ReloadAction, reloadLabel, targetLabel } from "./plan.ts";
import { mapConcurrent } from "./pool.ts";
import { errorMessage } from "./text.ts";
import { selectKey } from "./extract.ts";
import { entrySelector, fetchKey, referenceOf, type SecretQuery } from "./reference.ts";
import { parseStage, type SecretBundle, type SecretSource, VaultError } from "./vault/mod.ts";
import {
  applyAttributes,
  atomicWrite,
  ensureParent,
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
  /** One result per entry this run looked at (all of them, or those of `secrets`). */
  results: EntryResult[];
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
    results: [],
  };
  const selected = settings.secrets ? entries.filter(entrySelector(settings.secrets)) : entries;
  const results = new Map<Entry, EntryResult>();
  const fail = (entry: Entry, error: string) => {
    const result = results.get(entry);
    if (result) Object.assign(result, { status: "failed", error });
  };

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
  await mapConcurrent([...queries.keys()], settings.concurrency, async (key) => {
    const { query, entries: group } = queries.get(key)!;
    // The label as the map would write it, without the run's default stage.
    const secretId = fetchKey({ secret: query.secret, version: query.version });
    try {
      // A bare OCID is asked for as itself; anything more carries its query.
      const plain = "ocid" in query.secret && !query.version;
      const bundle = plain
        ? await deps.source.fetch(secretId)
        : await deps.source.fetch(secretId, { secret: query.secret, version: query.version });
      fetched.set(key, { bundle });
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

  // Decide first, act second: every file's change is known before the first write.
  // The file checks run FILE_CONCURRENCY at a time; their outcomes are taken in map order.
  const checks = await mapConcurrent(selected, FILE_CONCURRENCY, async (entry) => {
    const result = fetched.get(keyOf(entry));
    if (!result || "error" in result) return undefined;
    try {
      const bundle = contentOf(entry, result.bundle);
      return { bundle, change: await changeOf(entry, bundle, settings) };
    } catch (error) {
      return { error };
    }
  });
  const planned: { entry: Entry; bundle: SecretBundle; change: Exclude<FileChange, "none"> }[] = [];
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
        planned.push({ entry, bundle: check.bundle, change: check.change });
      }
    } catch (error) {
      report.failures++;
      fail(entry, messageOf(error));
      logWriteFailure(log, entry, error);
    }
  }

  // Write-ahead: a run killed between a write and its reload must not lose the reload, since
  // the next run finds the content unchanged. So the reloads are owed before any file moves.
  const willReload = planned.filter((p) =>
    p.change === "content" && p.entry.target && p.entry.reload
  );
  if (!settings.dryRun && willReload.length > 0 && deps.oweReloads) {
    try {
      await deps.oweReloads(willReload.map((p) => p.entry.path));
    } catch (error) {
      report.failures++;
      log.log("error", "state", `Cannot record the reloads this run owes: ${messageOf(error)}`, {
        event: "state_unwritable",
        reason: messageOf(error),
      });
    }
  }

  // Files are written FILE_CONCURRENCY at a time, each directory fsynced once after its last
  // rename and before any reload; outcomes are then reported in map order.
  const written = await mapConcurrent(
    planned,
    FILE_CONCURRENCY,
    (p) =>
      writeChange(p.entry, p.bundle, p.change, settings).then(() => undefined, (error) => error),
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
  return report;
}

/** What the entry writes: the whole secret, or one key of it (throws when it has none). */
function contentOf(entry: Entry, bundle: SecretBundle): SecretBundle {
  const key = entry.ref?.key;
  return key ? { bytes: selectKey(bundle.bytes, key), version: bundle.version } : bundle;
}

/** How the file differs from the secret; checks the directories on the way, never follows links. */
async function changeOf(
  entry: Entry,
  bundle: SecretBundle,
  settings: SyncSettings,
): Promise<FileChange> {
  const root = rootOf(entry.path, settings.roots);
  const parentExists = await ensureParent(entry.path, root, { create: false });
  if (!parentExists) return "content";
  return await fileChange(entry.path, bundle.bytes, { mode: entry.mode, owner: entry.owner });
}

/** Writes the file (its directory not yet fsynced), or fixes its mode and owner; dry run: nothing. */
async function writeChange(
  entry: Entry,
  bundle: SecretBundle,
  change: Exclude<FileChange, "none">,
  settings: SyncSettings,
): Promise<void> {
  const attributes = { mode: entry.mode, owner: entry.owner };
  if (settings.dryRun) return;
  if (change === "content") {
    await ensureParent(entry.path, rootOf(entry.path, settings.roots), { create: true });
    await atomicWrite(entry.path, bundle.bytes, attributes, { syncDirectory: false });
  } else {
    await applyAttributes(entry.path, attributes);
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
