/**
 * Which filesystem a directory is on, so `doctor` can tell a tmpfs root from one on disk.
 *
 * Deno refuses to read anything under `/proc` without `--allow-all` (even
 * `/proc/self/mountinfo`), which the release binary never has; so this asks util-linux's
 * `findmnt`, which reads the same table. `findmnt` is part of util-linux, present on every
 * distribution secretsync supports.
 *
 * Requires `--allow-run` for `findmnt`.
 *
 * @module
 */
import { z } from "zod";
import { hostEnv, runCommand } from "./host/command.ts";

/** The mount a path lies on. */
export interface MountInfo {
  /** Its mount point. */
  target: string;
  /** `tmpfs`, `ext4`, `xfs`, … */
  fstype: string;
  /** Its mount options, e.g. `rw,nosuid,nodev,mode=700`. */
  options: string[];
}

/** Filesystems that live in memory only: a secret written there never reaches a disk. */
export const MEMORY_FILESYSTEMS: readonly string[] = ["tmpfs", "ramfs"];

const findmntSchema = z.object({
  filesystems: z.array(z.object({
    target: z.string(),
    fstype: z.string(),
    options: z.string().nullable().optional(),
  })).min(1),
});

/**
 * Reads `findmnt --json` output: the last filesystem listed is the one on top (the one a
 * path below it sees when mounts are stacked).
 *
 * @throws {Error} when the output is not what `findmnt --json` prints
 */
export function parseFindmnt(json: string): MountInfo {
  const parsed = findmntSchema.parse(JSON.parse(json));
  const top = parsed.filesystems[parsed.filesystems.length - 1];
  return {
    target: top.target,
    fstype: top.fstype,
    options: (top.options ?? "").split(",").filter((o) => o !== ""),
  };
}

/**
 * The mount `path` lies on, from `findmnt --json --target PATH`, with a deadline.
 *
 * @throws {Error} naming why it could not be told (no findmnt, a timeout, odd output)
 *
 * @example
 * ```ts
 * import { mountOf, MEMORY_FILESYSTEMS } from "./mounts.ts";
 *
 * const mount = await mountOf("/run/secrets");
 * if (!MEMORY_FILESYSTEMS.includes(mount.fstype)) console.log(`on disk (${mount.fstype})`);
 * ```
 */
export async function mountOf(path: string, options: { bin?: string } = {}): Promise<MountInfo> {
  const bin = options.bin ?? "findmnt";
  const result = await runCommand(bin, [
    "--json",
    "--output",
    "TARGET,FSTYPE,OPTIONS",
    "--target",
    path,
  ], { env: hostEnv(), timeoutMs: 5_000 });
  if (result.code !== 0) {
    throw new Error(
      `findmnt failed (exit code ${result.code}): ${result.stderr.trim().slice(0, 200)}`,
    );
  }
  try {
    return parseFindmnt(result.stdout);
  } catch {
    throw new Error(`findmnt printed what secretsync cannot read for ${path}`);
  }
}
