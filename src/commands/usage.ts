/**
 * What every command shares: the usage error, option checks and how errors read.
 *
 * @module
 */
import { Option } from "commander";
import { z } from "zod";
import { isNormalizedAbsolute } from "../paths.ts";
import type { RunOptions } from "../run.ts";
import { SAFE_DIR } from "../units.ts";

/** Bad command-line usage: the run stops with exit code 2 before touching anything. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * A run's options as `sync` parses them, with how to log and where metrics go: what `watch`
 * and `doctor` get from sync's parser (handed to them by `cli.ts`).
 */
export type RunFlags = RunOptions & { json: boolean; metricsFile?: string };

/**
 * `--root <dir>`, repeatable. Its help shows the default the schema applies (`/run/secrets`)
 * rather than the empty list commander starts collecting from.
 */
export function rootOption(): Option {
  return new Option("--root <dir>", "directory secrets may be written in (repeatable)")
    .argParser(collect)
    .default([], "/run/secrets");
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * `--root`: repeatable, each absolute and normalized (a trailing slash is dropped);
 * `/run/secrets` when none is given.
 */
export const rootsSchema = z
  .array(z.string())
  // A trailing slash is how many people type a directory; it names the same one.
  .transform((roots) =>
    roots.length > 0 ? roots.map((r) => r.replace(/(?<=.)\/+$/, "")) : ["/run/secrets"]
  )
  .pipe(
    z.array(
      z.string().refine((root) => isNormalizedAbsolute(root) && root !== "/", {
        error: (issue) =>
          `--root "${issue.input}" must be an absolute, normalized directory other than /`,
      }),
    ),
  );

/**
 * A directory option of install/uninstall: absolute, normalized, only characters that keep a
 * unit's ExecStart line meaning what it says (no spaces, no `%` specifiers), and never /, /proc,
 * /sys or /dev.
 */
export function unitPathOption(flag: string): z.ZodType<string> {
  return z.string().refine((value) => isNormalizedAbsolute(value) && SAFE_DIR.test(value), {
    error: (issue) =>
      `${flag} "${issue.input}" must be an absolute, normalized directory of letters, digits and . _ / + @ -`,
  }).refine((value) => !NEVER_INSTALL_IN.test(value), {
    error: (issue) => `${flag} "${issue.input}" must not be /, nor under /proc, /sys or /dev`,
  });
}

/** Directories no install may write into: the filesystem root and the kernel's own trees. */
const NEVER_INSTALL_IN = /^\/(proc|sys|dev)?(\/|$)/;

/** Validates parsed options against `schema`, turning zod issues into one UsageError. */
export function validateOptions<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new UsageError(result.error.issues.map((i) => i.message).join("; "));
  }
  return result.data;
}
