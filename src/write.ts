/**
 * Compares a secret with its file and replaces the file atomically.
 *
 * The shape follows consul-template's renderer: compare first and leave an equal file alone
 * (same inode, no reload); otherwise write a temp file in the same directory, fsync it, give it
 * its mode and owner, rename it over the target and fsync the directory. A reader sees the old
 * bytes or the new bytes, never a mix, and a crash leaves at most a stray temp file.
 *
 * The file system calls are synchronous, except fsync. An async call hands its work to another
 * thread and back, which on a small VM costs more than the call itself (an lstat on a tmpfs takes
 * microseconds); at a thousand secrets the synchronous calls saved about 0.25 s of CPU and 0.3 s
 * of a run. An fsync on a disk can take milliseconds, so it stays async. The functions still
 * return promises, as callers (and rejected calls) expect.
 *
 * Requires `--allow-read` and `--allow-write` for the target's directory.
 *
 * @module
 */
import { basename, dirname } from "./paths.ts";

/** What differs between a secret and its file. */
export type FileChange = "none" | "content" | "metadata";

/** The file attributes secretsync manages besides the bytes. */
export interface FileAttributes {
  /** Permission bits, e.g. `0o600`. */
  mode: number;
  /** Numeric owner; `undefined` keeps whoever runs secretsync. */
  owner?: { uid: number; gid: number };
}

/** Refused because of what is on disk: a symlink, a directory, a foreign file. */
export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafePathError";
  }
}

/** Temp files are dot files named after their target, so a later run can find strays. */
export const TEMP_FILE = /^\..+\.secretsync-[0-9]+-[0-9a-z]+\.tmp$/;

/**
 * Tells how `bytes` and `attributes` differ from the file at `path`. A missing file is a
 * `content` change. Never follows a symlink: one at `path` is an {@link UnsafePathError}.
 *
 * @example
 * ```ts
 * import { atomicWrite, fileChange } from "./write.ts";
 * const bytes = new TextEncoder().encode("s3cret-value");
 * const change = await fileChange("/run/secrets/db", bytes, { mode: 0o600 });
 * if (change === "content") await atomicWrite("/run/secrets/db", bytes, { mode: 0o600 });
 * ```
 */
// deno-lint-ignore require-await -- synchronous calls, promise-shaped (see the module doc)
export async function fileChange(
  path: string,
  bytes: Uint8Array,
  attributes: FileAttributes,
): Promise<FileChange> {
  const info = lstatOrNull(path);
  if (info === null) return "content";
  if (info.isSymlink) throw new UnsafePathError(`Refusing to write "${path}": it is a symlink`);
  if (!info.isFile) {
    throw new UnsafePathError(`Refusing to write "${path}": it is not a regular file`);
  }
  if (info.size !== bytes.length || !equalBytes(Deno.readFileSync(path), bytes)) return "content";
  const { owner } = attributes;
  const modeDiffers = ((info.mode ?? 0) & 0o7777) !== attributes.mode;
  const ownerDiffers = owner !== undefined && (info.uid !== owner.uid || info.gid !== owner.gid);
  return modeDiffers || ownerDiffers ? "metadata" : "none";
}

/** Options for {@link atomicWrite}. */
export interface AtomicWriteOptions {
  /**
   * A fixed temp path in the target's directory, for callers whose write permission names
   * exact files (`install` replacing the binary). @default a unique dot file per write
   */
  temp?: string;
  /**
   * Fsync the directory after the rename. A caller writing many files into one directory may
   * pass false and call {@link syncDirectory} once after the last rename. @default true
   */
  syncDirectory?: boolean;
}

/**
 * Replaces the file at `path` with `bytes`, atomically, with exactly `attributes`.
 *
 * The temp file is created with the final mode (never wider, even for a moment), written,
 * fsynced, chowned and chmodded (only when an owner is set or the umask took bits away), then
 * renamed over `path`; the directory is fsynced so the rename survives a power cut. On any error the temp file is removed and `path` is untouched.
 * The parent directory must exist (see {@link ensureParent}).
 */
export async function atomicWrite(
  path: string,
  bytes: Uint8Array,
  attributes: FileAttributes,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const temp = options.temp ??
    `${dir}/.${basename(path)}.secretsync-${Deno.pid}-${randomSuffix()}.tmp`;
  if (options.temp) {
    // A fixed name may be left over from an interrupted write; it is ours to clear.
    await Deno.remove(temp).catch(() => {});
  }
  let renamed = false;
  try {
    const file = Deno.openSync(temp, { write: true, createNew: true, mode: attributes.mode });
    let modeIsExact = false;
    try {
      writeAll(file, bytes);
      await file.sync();
      // Created with the mode less the umask: a chmod (a path lookup) only when bits went.
      modeIsExact = (file.statSync().mode! & 0o7777) === attributes.mode;
    } finally {
      file.close();
    }
    if (attributes.owner || !modeIsExact) await applyAttributes(temp, attributes);
    Deno.renameSync(temp, path);
    renamed = true;
    if (options.syncDirectory ?? true) await syncDirectory(dir);
  } finally {
    if (!renamed) {
      // The original error is the one worth reporting; a failed clean-up only leaves a
      // temp file that the next run removes.
      await Deno.remove(temp).catch(() => {});
    }
  }
}

/** Sets mode and owner in place: for a file whose bytes are already right. */
// deno-lint-ignore require-await -- synchronous calls, promise-shaped (see the module doc)
export async function applyAttributes(path: string, attributes: FileAttributes): Promise<void> {
  // Owner first: chown may clear mode bits on some systems; chmod then sets the exact mode.
  if (attributes.owner) Deno.chownSync(path, attributes.owner.uid, attributes.owner.gid);
  Deno.chmodSync(path, attributes.mode);
}

/**
 * Gives the file at `path`, whose bytes are already `bytes`, exactly `attributes`. A file with
 * other hard links is not changed in place: its mode and owner are shared with every link, one
 * of which may be outside the root (a planted link to a system file). It is replaced by a fresh
 * copy instead, which leaves the other links as they were.
 *
 * @returns `"replaced"` for a fresh copy, `"in place"` otherwise
 */
export async function adjustAttributes(
  path: string,
  bytes: Uint8Array,
  attributes: FileAttributes,
): Promise<"in place" | "replaced"> {
  const info = Deno.lstatSync(path);
  if (!info.isFile) {
    throw new UnsafePathError(`Refusing to write "${path}": it is not a regular file`);
  }
  if ((info.nlink ?? 1) > 1) {
    await atomicWrite(path, bytes, attributes);
    return "replaced";
  }
  await applyAttributes(path, attributes);
  return "in place";
}

/**
 * Checks every directory from `root` down to the parent of `path`: each must be a real
 * directory, so a planted symlink cannot redirect a secret outside the root. With `create`,
 * missing ones are made with mode 0700; without it, a missing one ends the walk.
 *
 * @returns whether the parent directory exists now
 */
// deno-lint-ignore require-await -- synchronous calls, promise-shaped (see the module doc)
export async function ensureParent(
  path: string,
  root: string,
  options: { create: boolean } = { create: true },
): Promise<boolean> {
  const parent = dirname(path);
  const segments = parent === root ? [] : parent.slice(root.length + 1).split("/");
  let dir = root;
  for (const segment of ["", ...segments]) {
    if (segment) dir = `${dir}/${segment}`;
    let info = lstatOrNull(dir);
    if (info === null) {
      if (!options.create) return false;
      try {
        Deno.mkdirSync(dir, { mode: 0o700 });
        continue;
      } catch (error) {
        // A concurrent write made it first: check what is there now like any other.
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        info = Deno.lstatSync(dir);
      }
    }
    if (info.isSymlink) {
      throw new UnsafePathError(`Refusing to write "${path}": "${dir}" is a symlink`);
    }
    if (!info.isDirectory) {
      throw new UnsafePathError(`Refusing to write "${path}": "${dir}" is not a directory`);
    }
  }
  return true;
}

/**
 * Removes temp files left in `dir` by a run that died before renaming them. Only safe while
 * no other run is writing (the run lock guarantees that).
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  try {
    for await (const item of Deno.readDir(dir)) {
      if (item.isFile && TEMP_FILE.test(item.name)) {
        await Deno.remove(`${dir}/${item.name}`);
        removed.push(`${dir}/${item.name}`);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return removed;
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) {
    written += file.writeSync(bytes.subarray(written));
  }
}

/** Fsyncs a directory, so the renames in it survive a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function randomSuffix(): string {
  return crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "");
}
