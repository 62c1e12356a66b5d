/**
 * What secretsync shows of a command's output: a server's validator or reload command may echo
 * configuration or file contents, so its output is cut down and every value secretsync wrote
 * is blanked out before it reaches a log line.
 *
 * @module
 */
import type { ExecResult } from "./runtime.ts";

/** Lines of output kept (the last ones: that is where errors are). */
export const MAX_LINES = 20;
/** Characters kept of one line. */
export const MAX_LINE_CHARS = 300;

const REDACTED = "[redacted]";
/** A PEM private key block, also one cut short by the end of the output. */
const PRIVATE_KEY_BLOCK =
  /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g;
/** PEM armour lines carry nothing secret; blanking them would only hide context. */
const PEM_ARMOUR = /^-----(BEGIN|END) [A-Z0-9 ]+-----$/;
// deno-lint-ignore no-control-regex
const ANSI_ESCAPE = /\x1b\[[0-9;?]*[A-Za-z]/g;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

/**
 * Blanks out, in `text`, any PEM private key and every secret value, whole or line by line
 * (a server may echo one line of a file). Values shorter than 6 characters and lines shorter
 * than 8 are left alone: blanking them would garble everything.
 *
 * @example
 * ```ts
 * redact("bad line: hunter2-hunter2", ["hunter2-hunter2"]); // "bad line: [redacted]"
 * ```
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(PRIVATE_KEY_BLOCK, "[redacted private key]");
  const needles = new Set<string>();
  for (const secret of secrets) {
    const whole = secret.trim();
    if (whole.length >= 6) needles.add(whole);
    for (const raw of secret.split(/\r?\n/)) {
      const line = raw.trim();
      if (line.length >= 8 && !PEM_ARMOUR.test(line)) needles.add(line);
    }
  }
  for (const needle of [...needles].sort((a, b) => b.length - a.length)) {
    out = out.split(needle).join(REDACTED);
  }
  return out;
}

/**
 * The part of a command's output worth showing, on one line: its error output (its standard
 * output only when it wrote no errors, since standard output is where configuration dumps go),
 * redacted, without terminal escapes, the last {@linkcode MAX_LINES} non-empty lines, each cut
 * at {@linkcode MAX_LINE_CHARS}, joined with ` | `.
 */
export function outputExcerpt(result: ExecResult, secrets: readonly string[]): string {
  const chosen = result.stderr.trim() !== "" ? result.stderr : result.stdout;
  const clean = redact(chosen, secrets).replace(ANSI_ESCAPE, "").replace(CONTROL, "");
  const lines = clean.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "");
  if (lines.length === 0) return "no output";
  const kept = lines.slice(-MAX_LINES).map((line) =>
    line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line
  );
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
