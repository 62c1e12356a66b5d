/**
 * Text that came from outside secretsync (a server's output, a vault error, a map line, a file
 * name) made safe to show: escapes and control characters removed first, then every secret value
 * blanked out, then cut to one bounded line. Every message built from such text goes through
 * here, so the rules are the same everywhere.
 *
 * What {@linkcode redact} can blank out is limited to what it can recognise: a secret value of
 * at least {@linkcode MIN_SECRET_CHARS} characters, or one of its lines of at least
 * {@linkcode MIN_LINE_CHARS} characters, appearing verbatim (after escapes are stripped) in the
 * text; and any PEM private key block. Shorter values, a value that was transformed (base64, hex,
 * quoted, re-encoded, upper-cased) and a part of a value cut by a line end or a length limit
 * pass unchanged.
 *
 * @module
 */

/** Shortest secret value that is blanked out: shorter ones would garble ordinary words. */
export const MIN_SECRET_CHARS = 6;
/** Shortest line of a multi-line secret value that is blanked out on its own. */
export const MIN_LINE_CHARS = 8;
/** What a blanked-out value reads as. */
export const REDACTED = "[redacted]";

/**
 * Terminal escape sequences: CSI (`ESC [ … final`, also the one-byte C1 form), OSC (`ESC ] …`
 * up to BEL or ST, or the end), and the other `ESC [intermediates] final` sequences.
 */
const ESCAPE_SEQUENCE =
  // deno-lint-ignore no-control-regex
  /(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?/g;
/**
 * Control characters other than tab and line feed: C0, DEL, C1, and the Unicode characters
 * that reorder or break what a terminal shows (bidi overrides and isolates, line and paragraph
 * separators, zero-width characters).
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;
/** {@linkcode CONTROL}, line feed and tab included. */
// deno-lint-ignore no-control-regex
const ANY_CONTROL = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;
/** A PEM private key block, also one cut short by the end of the text. */
const PRIVATE_KEY_BLOCK =
  /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g;
/** PEM armour lines carry nothing secret; blanking them would only hide context. */
const PEM_ARMOUR = /^-----(BEGIN|END) [A-Z0-9 ]+-----$/;

/**
 * The message of anything thrown: an `Error`'s message, an object's `message` (the OCI SDK
 * throws plain objects and strings too), or the value as a string.
 *
 * @example
 * ```ts
 * import { errorMessage } from "./text.ts";
 * errorMessage(new Error("disk full")); // "disk full"
 * errorMessage({ message: "HTTP 500" }); // "HTTP 500"
 * errorMessage("timeout"); // "timeout"
 * ```
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "message" in error) {
    return String((error as { message: unknown }).message);
  }
  return String(error ?? "");
}

/**
 * Removes terminal escape sequences and control characters; line ends (`\r\n`, `\r`) become
 * `\n`, and tabs and line feeds are kept.
 *
 * @example
 * ```ts
 * import { stripControl } from "./text.ts";
 * stripControl("red\x1b[31m text\x07"); // "red text"
 * ```
 */
export function stripControl(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(ESCAPE_SEQUENCE, "").replace(CONTROL, "");
}

/**
 * Blanks out, in `text`, any PEM private key and every secret value, whole or line by line
 * (a server may echo one line of a file). Values shorter than {@linkcode MIN_SECRET_CHARS} and
 * lines shorter than {@linkcode MIN_LINE_CHARS} are left alone: blanking them would garble
 * everything. Call {@linkcode sanitize} rather than this on text that may hold escapes.
 *
 * @example
 * ```ts
 * import { redact } from "./text.ts";
 * redact("bad line: hunter2-hunter2", ["hunter2-hunter2"]); // "bad line: [redacted]"
 * ```
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(PRIVATE_KEY_BLOCK, "[redacted private key]");
  const needles = new Set<string>();
  for (const secret of secrets) {
    // The text was stripped of escapes, so a value is looked for as it reads once stripped.
    const clean = stripControl(secret);
    const whole = clean.trim();
    if (whole.length >= MIN_SECRET_CHARS) needles.add(whole);
    for (const raw of clean.split("\n")) {
      const line = raw.trim();
      if (line.length >= MIN_LINE_CHARS && !PEM_ARMOUR.test(line)) needles.add(line);
    }
  }
  for (const needle of [...needles].sort((a, b) => b.length - a.length)) {
    out = out.split(needle).join(REDACTED);
  }
  return out;
}

/**
 * The one sanitiser for outside-sourced text: escapes and control characters stripped first
 * (so an escape cannot split a secret value and hide it from redaction), then secret values
 * redacted. Line feeds are kept; use {@linkcode oneLine} for a log line.
 *
 * @example
 * ```ts
 * import { sanitize } from "./text.ts";
 * sanitize("token api-\x1b[0mtoken-LEAK", ["api-token-LEAK"]); // "token [redacted]"
 * ```
 */
export function sanitize(text: string, secrets: readonly string[] = []): string {
  return redact(stripControl(text), secrets);
}

/**
 * Outside-sourced text as one log-line fragment: sanitised, its non-empty lines trimmed and
 * joined with ` | `, other whitespace runs folded into one space, and cut at `maxChars` with
 * `…`. The one "one line, capped" helper.
 *
 * @example
 * ```ts
 * import { oneLine } from "./text.ts";
 * oneLine("line one\n\x1b[2Kline two\n", 300); // "line one | line two"
 * oneLine("x".repeat(10), 4); // "xxxx…"
 * ```
 */
export function oneLine(text: string, maxChars = 300, secrets: readonly string[] = []): string {
  const lines = sanitize(text, secrets).split("\n").map((line) => line.replace(/\s+/g, " ").trim());
  return capped(lines.filter((line) => line !== "").join(" | "), maxChars);
}

/**
 * `text` cut at `maxChars` characters, with `…` when something was cut. Never cuts a UTF-16
 * surrogate pair in two.
 *
 * @example
 * ```ts
 * import { capped } from "./text.ts";
 * capped("abcdef", 3); // "abc…"
 * ```
 */
export function capped(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  let cut = maxChars;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return `${text.slice(0, cut)}…`;
}

/**
 * A value as a message quotes it: control characters and escapes written as JSON escapes
 * (`\n`, `\u001b`), so nothing in it can start a new log line or drive the terminal, and cut
 * at `maxChars`. Without the surrounding quotes.
 *
 * @example
 * ```ts
 * import { quoted } from "./text.ts";
 * quoted("a\nb\x1b[2J"); // "a\\nb\\u001b[2J"
 * ```
 */
export function quoted(value: string, maxChars = 80): string {
  return escapeControl(JSON.stringify(capped(value, maxChars)).slice(1, -1));
}

/**
 * `text` with every control character (line ends included) written as a `\uXXXX` escape, so
 * it stays on one line and cannot drive a terminal; the last guard of every log line.
 *
 * @example
 * ```ts
 * import { escapeControl } from "./text.ts";
 * escapeControl("a\nb"); // "a\\u000ab"
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(ANY_CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
