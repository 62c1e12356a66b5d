/**
 * What one sync learns of the directories its files are in, so that a thousand files in one
 * directory cost one check of that directory, not two per file, and a first sync does not ask
 * for each file only to be told it is missing.
 *
 * Each directory on the way from a root is checked (a real directory, not a symlink: see
 * `ensureParent`) once for the comparisons and once for the writes, whichever file comes first;
 * the rest of the run's files in it reuse that answer. The check guards against a link planted
 * before the run, not against someone racing it: whoever can swap a directory under the root
 * while a run is under way can as well do it between a check and the write that follows, with or
 * without this. A new instance is made for each sync, so `watch` checks again every cycle.
 *
 * A directory holding several of the map's files is also listed once: a name missing from the
 * listing is a file to write, without an `lstat` that fails (a thrown `NotFound` costs several
 * times a successful call). A name the listing has is looked at as before; one that appears after
 * the listing is replaced by the atomic rename, which never follows it.
 *
 * @example
 * ```ts
 * import { RunDirectories } from "./run_dirs.ts";
 * const dirs = new RunDirectories(["/run/secrets/db.env", "/run/secrets/tls.crt"]);
 * if (await dirs.parentReady("/run/secrets/db.env", "/run/secrets", { create: false })) {
 *   dirs.knownAbsent("/run/secrets/db.env"); // true when the listing does not have it
 * }
 * ```
 *
 * @module
 */
import { basename, dirname } from "./paths.ts";
import { ensureParent } from "./write.ts";

/** Files of the map in one directory from which listing it is cheaper than asking for each. */
const LIST_FROM = 4;

/** A listing is given up past this many names per file of the map (a crowded directory). */
const NAMES_PER_FILE = 4;

/** What one sync knows of its directories. */
export class RunDirectories {
  readonly #files = new Map<string, number>();
  readonly #checked = new Map<string, Promise<boolean>>();
  readonly #listings = new Map<string, Set<string> | undefined>();

  /** @param paths the files this sync may compare or write */
  constructor(paths: Iterable<string>) {
    for (const path of paths) {
      const dir = dirname(path);
      this.#files.set(dir, (this.#files.get(dir) ?? 0) + 1);
    }
  }

  /**
   * `ensureParent(path, root, { create })`, asked once per directory and `create` in this run:
   * later files get the first one's answer. A refusal is not shared: its message names the
   * file it was asked for, so each later file asks again and is refused in its own name.
   * @returns whether the parent directory exists
   */
  async parentReady(path: string, root: string, options: { create: boolean }): Promise<boolean> {
    const key = `${options.create ? "create" : "look"}\0${root}\0${dirname(path)}`;
    const checked = this.#checked.get(key);
    if (!checked) {
      const first = ensureParent(path, root, options);
      this.#checked.set(key, first);
      return await first;
    }
    try {
      return await checked;
    } catch {
      return await ensureParent(path, root, options);
    }
  }

  /**
   * Whether the file is known not to exist: its directory, listed once in this run, lacked its
   * name. False when unknown (a directory with few of the map's files, or too many names).
   */
  knownAbsent(path: string): boolean {
    const dir = dirname(path);
    const files = this.#files.get(dir) ?? 0;
    if (files < LIST_FROM) return false;
    if (!this.#listings.has(dir)) this.#listings.set(dir, listing(dir, files * NAMES_PER_FILE));
    const names = this.#listings.get(dir);
    return names !== undefined && !names.has(basename(path));
  }
}

/** The names in `dir`, or undefined if it cannot be listed or has more than `limit`. */
function listing(dir: string, limit: number): Set<string> | undefined {
  const names = new Set<string>();
  try {
    for (const item of Deno.readDirSync(dir)) {
      if (names.size >= limit) return undefined;
      names.add(item.name);
    }
  } catch {
    return undefined; // the file-by-file way reports whatever is wrong
  }
  return names;
}
