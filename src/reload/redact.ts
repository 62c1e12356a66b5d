/**
 * What secretsync shows of a command's output: a server's validator or reload command may echo
 * configuration or file contents, so its output is cut down and every value secretsync wrote
 * is blanked out before it reaches a log line.
 *
 * @module
 */
import type { ExecResult } from "./runtime.ts";
import { capped, sanitize } from "../text.ts";

/** Lines of output kept (the last ones: that is where errors are). */
export const MAX_LINES = 20;
/** Characters kept of one line. */
export const MAX_LINE_CHARS = 300;

export { redact } from "../text.ts";

/**
 * The part of a command's output worth showing, on one line: its error output (its standard
 * output only when it wrote no errors, since standard output is where configuration dumps go),
 * without terminal escapes, then redacted, the last {@linkcode MAX_LINES} non-empty lines, each cut
 * at {@linkcode MAX_LINE_CHARS}, joined with ` | `.
 */
export function outputExcerpt(result: ExecResult, secrets: readonly string[]): string {
  const chosen = result.stderr.trim() !== "" ? result.stderr : result.stdout;
  // Escapes are stripped before redaction: an escape inside a secret value must not hide it.
  const clean = sanitize(chosen, secrets);
  const lines = clean.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  if (lines.length === 0) return "no output";
  const kept = lines.slice(-MAX_LINES).map((line) => capped(line, MAX_LINE_CHARS));
  const skipped = lines.length - kept.length;
  return (skipped > 0 ? `(${skipped} earlier lines) | ` : "") + kept.join(" | ");
}

/**
 * Reads the files secretsync wrote, to know what to blank out. A file that cannot be read is
 * skipped: the run already reported it, and there is nothing of it to leak.
 */
export async function readSecretValues(paths: readonly string[]): Promise<string[]> {
  const values: string[] = [];
  for (const path of new Set(paths)) {
    try {
      const bytes = await Deno.readFile(path);
      values.push(new TextDecoder().decode(bytes.subarray(0, 1 << 20)));
    } catch {
      // Not written (a failed fetch) or gone: nothing secretsync knows is in it.
    }
  }
  return values;
}
