/**
 * Putting a file back as it was: the bytes, mode and owner held before a write, restored
 * atomically when the server refused the new content (its validation failed), so that what is
 * on disk is what the server runs and its next restart still works.
 *
 * A snapshot lives in memory for one run only and is taken only for files whose target has a
 * validation step. It holds a secret's old value: it is never logged or stored.
 *
 * @module
 */
import { atomicWrite } from "./write.ts";

/** A file as it was before a write; `bytes` absent when there was no file. */
export interface Snapshot {
  path: string;
  bytes?: Uint8Array;
  mode?: number;
  owner?: { uid: number; gid: number };
}

/**
 * Remembers the file at `path` (not following a symlink; the write refuses one anyway).
 *
 * @example
 * ```ts
 * const before = await takeSnapshot("/run/secrets/tls.crt");
 * // … write, validation fails …
 * await restoreSnapshot(before);
 * ```
 */
export async function takeSnapshot(path: string): Promise<Snapshot> {
  try {
    const info = await Deno.lstat(path);
    if (!info.isFile) return { path };
    const bytes = await Deno.readFile(path);
    return {
      path,
      bytes,
      mode: (info.mode ?? 0o600) & 0o7777,
      owner: info.uid !== null && info.gid !== null ? { uid: info.uid, gid: info.gid } : undefined,
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { path };
    throw error;
  }
}

/**
 * Puts the file back: the old bytes with the old mode and owner, through the same atomic write
 * (temp file, fsync, rename); a file that did not exist is removed.
 */
export async function restoreSnapshot(snapshot: Snapshot): Promise<void> {
  if (!snapshot.bytes) {
    await Deno.remove(snapshot.path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    return;
  }
  await atomicWrite(snapshot.path, snapshot.bytes, {
    mode: snapshot.mode ?? 0o600,
    owner: snapshot.owner,
  });
}
