/**
 * The one rule for files and directories that decide what root does (recipe files, the map,
 * pidfiles, the roots, the state directory): owned by the right user, writable by nobody else.
 *
 * @module
 */

/** Who may own the thing checked. */
export type Owners =
  /** root or the user running secretsync (files root reads: the map, recipes, pidfiles). */
  | "root-or-self"
  /** only the user running secretsync (directories it writes into: roots, state). */
  | "self";

/** Options for {@link ownershipProblem}. */
export interface OwnershipOptions {
  owners: Owners;
  /** The uid running secretsync. @default Deno.uid() */
  uid?: number | null;
}

/**
 * Why `info` (from `Deno.lstat`) may not be trusted, or `undefined` when it may: owned by
 * someone else than `owners` allows, or writable by group or others. The reason reads after
 * "cannot be used: ".
 *
 * @example
 * ```ts
 * import { ownershipProblem } from "./ownership.ts";
 * ownershipProblem({ uid: 0, mode: 0o100666 }, { owners: "root-or-self", uid: 0 });
 * // "mode 0666 lets group or others write it"
 * ownershipProblem({ uid: 1000, mode: 0o100600 }, { owners: "root-or-self", uid: 0 });
 * // "it is owned by uid 1000, not by root or uid 0 running secretsync"
 * ```
 */
export function ownershipProblem(
  info: Pick<Deno.FileInfo, "uid" | "mode">,
  options: OwnershipOptions,
): string | undefined {
  const uid = options.uid === undefined ? Deno.uid() : options.uid;
  // Without a uid (not a Unix system) there is no owner to compare.
  if (uid !== null && info.uid !== null) {
    const ok = info.uid === uid || (options.owners === "root-or-self" && info.uid === 0);
    if (!ok) {
      const allowed = options.owners === "root-or-self" && uid !== 0
        ? `root or uid ${uid}`
        : `uid ${uid}`;
      return `it is owned by uid ${info.uid}, not by ${allowed} running secretsync`;
    }
  }
  const mode = (info.mode ?? 0) & 0o7777;
  if (mode & 0o022) return `mode 0${mode.toString(8)} lets group or others write it`;
  return undefined;
}
