/**
 * Checks the directories secretsync writes into (the roots, the state directory) before a run
 * touches them.
 *
 * A directory another user can write to would let that user plant symlinks or swap files under
 * secretsync; one owned by someone else is most likely a mistyped `--root`.
 *
 * @module
 */

/**
 * Returns one message per unusable directory: missing, not a directory (a symlink counts as
 * not), owned by another user, or writable by group or others. Empty when all are fine.
 *
 * @param what how messages name the directories: `Root "/run/secrets" cannot be used: …`
 */
export async function directoryProblems(roots: readonly string[], what: string): Promise<string[]> {
  const problems: string[] = [];
  const uid = Deno.uid();
  for (const root of roots) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(root);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound ? "it does not exist" : String(error);
      problems.push(`${what} "${root}" cannot be used: ${reason}`);
      continue;
    }
    const mode = (info.mode ?? 0) & 0o7777;
    if (!info.isDirectory) {
      problems.push(`${what} "${root}" cannot be used: it is not a directory`);
    } else if (uid !== null && info.uid !== uid) {
      problems.push(
        `${what} "${root}" cannot be used: it is owned by uid ${info.uid}, not by uid ${uid} running secretsync`,
      );
    } else if (mode & 0o022) {
      problems.push(
        `${what} "${root}" cannot be used: mode 0${
          mode.toString(8)
        } lets group or others write (use 0700)`,
      );
    }
  }
  return problems;
}
