/**
 * The content check of a run: before anything is written, every planned write whose content is
 * PEM is checked (see {@link checkContent}), and each reload target's certificates and keys
 * must still pair up once the run's writes are in place, counting the files it leaves as they
 * are (see {@link pairingProblems}). A refused write is not made: its old file stays.
 *
 * Reads the current files (never follows a symlink); writes nothing.
 *
 * @module
 */
import type { Entry } from "./map.ts";
import { checkContent, pairingProblems, type PemContent, readPem, type TargetFile } from "./pem.ts";
import { targetLabel } from "./plan.ts";
import { mapConcurrent } from "./pool.ts";

/** One write a run is about to make. */
export interface PlannedWrite {
  entry: Entry;
  bytes: Uint8Array;
  /** The file was found missing a moment ago (by the comparison): it is not looked for again. */
  absent?: boolean;
}

/** Options for {@link refusedWrites}. */
export interface PrecheckOptions {
  /** The clock certificates' validity windows are compared with. */
  now: Date;
  /** Accept certificates outside their validity window. */
  allowExpired: boolean;
}

/** Files read at once. */
const READ_CONCURRENCY = 16;

/** Files larger than this are not read back for the pairing check: no PEM file is that big. */
const MAX_READ = 1024 * 1024;

/**
 * The planned writes to refuse, each with the reason (which names no content).
 *
 * @example
 * ```ts
 * import type { Entry } from "./map.ts";
 * const entry: Entry = { line: 1, secretId: "ocid1.vaultsecret.oc1..a", path: "/run/secrets/tls.crt", mode: 0o644 };
 * const writes = [{ entry, bytes: new TextEncoder().encode("-----BEGIN CERTIFICATE-----\n") }];
 * const refused = await refusedWrites(writes, [entry], { now: new Date(), allowExpired: false });
 * for (const [entry, reason] of refused) console.log(`${entry.path}: ${reason}`);
 * ```
 */
export async function refusedWrites(
  writes: readonly PlannedWrite[],
  entries: readonly Entry[],
  options: PrecheckOptions,
): Promise<Map<Entry, string>> {
  const refused = new Map<Entry, string>();
  const fresh = new Map<string, PemContent | undefined>();
  const onDisk = new Map<string, PemContent | undefined>();
  const diskPem = async (path: string) => {
    if (!onDisk.has(path)) onDisk.set(path, pemOrUndefined(await readCurrent(path)));
    return onDisk.get(path);
  };

  const checked = writes.filter((w) => !w.entry.noContentCheck);
  // The files being replaced, read READ_CONCURRENCY at a time (a thousand one after another
  // took a tenth of a second).
  const previousBytes = await mapConcurrent(
    checked,
    READ_CONCURRENCY,
    (w) => w.absent ? Promise.resolve(undefined) : readCurrent(w.entry.path),
  );
  for (const [i, { entry, bytes }] of checked.entries()) {
    const previous = previousBytes[i];
    onDisk.set(entry.path, pemOrUndefined(previous));
    const verdict = checkContent(bytes, { ...options, previous });
    if (verdict.ok) fresh.set(entry.path, verdict.pem);
    else refused.set(entry, verdict.reason);
  }

  const targets = new Set(
    writes.filter((w) => w.entry.target && fresh.has(w.entry.path)).map((w) =>
      targetLabel(w.entry.target!)
    ),
  );
  for (const label of targets) {
    const members = entries.filter((e) =>
      e.target && targetLabel(e.target) === label && !e.noContentCheck
    );
    const files: TargetFile[] = [];
    for (const entry of members) {
      files.push(
        fresh.has(entry.path)
          ? { path: entry.path, changed: true, pem: fresh.get(entry.path) }
          : { path: entry.path, changed: false, pem: await diskPem(entry.path) },
      );
    }
    for (const problem of pairingProblems(files, onDisk)) {
      const entry = members.find((e) => e.path === problem.path)!;
      refused.set(entry, `${problem.reason} (target ${label})`);
    }
  }
  return refused;
}

/**
 * The file's bytes when it is a regular file (not a symlink) of a sane size; else `undefined`.
 */
// deno-lint-ignore require-await -- synchronous calls, promise-shaped (as in write.ts)
export async function readCurrent(path: string): Promise<Uint8Array | undefined> {
  try {
    const info = Deno.lstatSync(path);
    if (!info.isFile || info.size > MAX_READ) return undefined;
    return Deno.readFileSync(path);
  } catch {
    // Missing or unreadable: there is no old content to weigh against; the write itself will
    // report an unreadable path.
    return undefined;
  }
}

function pemOrUndefined(bytes: Uint8Array | undefined): PemContent | undefined {
  if (!bytes) return undefined;
  try {
    return readPem(bytes);
  } catch {
    // A broken file on disk pairs with nothing; it is being replaced or was refused before.
    return undefined;
  }
}
