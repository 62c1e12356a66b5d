/**
 * Checks the directories secretsync writes into (the roots, the state directory) before a run
 * touches them.
 *
 * A directory another user can write to would let that user plant symlinks or swap files under
 * secretsync; one owned by someone else is most likely a mistyped `--root`.
 *
 * @module
 */
import { ownershipProblem } from "./ownership.ts";
import { errorMessage } from "./text.ts";
import { basename, dirname, isInside } from "./paths.ts";

/**
 * Returns one message per unusable directory: missing, not a directory (a symlink counts as
 * not), owned by another user, or writable by group or others. Empty when all are fine.
 *
 * @param what how messages name the directories: `Root "/run/secrets" cannot be used: …`
 */
export async function directoryProblems(roots: readonly string[], what: string): Promise<string[]> {
  const problems: string[] = [];
  for (const root of roots) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(root);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound
        ? "it does not exist"
        : errorMessage(error);
      problems.push(`${what} "${root}" cannot be used: ${reason}`);
      continue;
    }
    const why = info.isDirectory
      ? ownershipProblem(info, { owners: "self" })
      : "it is not a directory";
    if (why) problems.push(`${what} "${root}" cannot be used: ${why}`);
  }
  return problems;
}

/**
 * Refuses a state directory that is a root or lies inside one: a map line could then
 * overwrite `state.json` or the lock. Compared as written and, as far as the paths exist,
 * with symlinks resolved (a link must not hide it).
 *
 * @returns one message per root it lies in; empty when it lies in none
 */
export async function stateDirProblems(
  stateDir: string,
  roots: readonly string[],
): Promise<string[]> {
  const state = [stateDir, await resolvedPath(stateDir)];
  const problems: string[] = [];
  for (const root of roots) {
    const real = [root, await resolvedPath(root)];
    const inside = state.some((s) => real.some((r) => s === r || isInside(s, r)));
    if (inside) {
      problems.push(
        `State directory "${stateDir}" cannot be inside root "${root}": a map line could ` +
          "overwrite its state file or lock; choose a directory outside every root",
      );
    }
  }
  return problems;
}

/**
 * `path` with its deepest existing ancestor's symlinks resolved, the rest as written; `path`
 * itself when nothing can be resolved (not permitted, say).
 */
async function resolvedPath(path: string): Promise<string> {
  const rest: string[] = [];
  for (let head = path;; head = dirname(head)) {
    try {
      const real = await Deno.realPath(head);
      return rest.length === 0 ? real : `${real === "/" ? "" : real}/${rest.join("/")}`;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || head === "/") return path;
      rest.unshift(basename(head));
    }
  }
}
