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
