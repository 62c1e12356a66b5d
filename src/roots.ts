/**
 * Checks the directories secrets are written into before a run touches them.
 *
 * A root another user can write to would let that user plant symlinks or swap files under
 * secretsync; a root owned by someone else is most likely a mistyped `--root`.
 *
 * @module
 */

/**
 * Returns one message per unusable root: missing, not a directory (a symlink counts as not),
 * owned by another user, or writable by group or others. Empty when all are fine.
 */
export async function rootProblems(roots: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const uid = Deno.uid();
  for (const root of roots) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(root);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound ? "it does not exist" : String(error);
      problems.push(`Root "${root}" cannot be used: ${reason}`);
      continue;
    }
    const mode = (info.mode ?? 0) & 0o7777;
    if (!info.isDirectory) {
      problems.push(`Root "${root}" cannot be used: it is not a directory`);
    } else if (uid !== null && info.uid !== uid) {
      problems.push(
        `Root "${root}" cannot be used: it is owned by uid ${info.uid}, not by uid ${uid} running secretsync`,
      );
    } else if (mode & 0o022) {
      problems.push(
        `Root "${root}" cannot be used: mode 0${
          mode.toString(8)
        } lets group or others write (use 0700)`,
      );
    }
  }
  return problems;
}
