/**
 * Log lines for people (`[INFO] (write) Updated …`) or machines (`--json`: one object per
 * line). Callers pass names, paths, OCIDs and versions; nothing here ever receives a secret.
 *
 * @module
 */
import { escapeControl } from "./text.ts";

/** Severity of a log line; `info` goes to stdout, the others to stderr. */
export type Level = "info" | "warn" | "error";

/** Structured fields carried with a line; in `--json` mode they become properties. */
export type Fields = Record<string, string | number | boolean | string[] | undefined>;

/** Where a run reports what it did. */
export interface Logger {
  log(level: Level, component: string, message: string, fields?: Fields): void;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** One JSON object per line instead of human lines. @default false */
  json?: boolean;
  /** @default Deno.stdout */
  stdout?: { writeSync(p: Uint8Array): number };
  /** @default Deno.stderr */
  stderr?: { writeSync(p: Uint8Array): number };
}

const encoder = new TextEncoder();

/** Creates a logger writing human lines, or JSON lines when `json` is set. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const stdout = options.stdout ?? Deno.stdout;
  const stderr = options.stderr ?? Deno.stderr;
  return {
    log(level, component, message, fields = {}) {
      // The last guard against injected lines and terminal escapes: whatever a message quotes,
      // a log line is one line of printable text (JSON keeps its own escaping, and gets the
      // characters JSON.stringify leaves raw escaped too).
      const line = options.json
        ? escapeControl(
          JSON.stringify({ time: new Date().toISOString(), level, component, message, ...fields }),
        )
        : `[${level.toUpperCase()}] (${component}) ${escapeControl(message)}`;
      writeAllSync(level === "info" ? stdout : stderr, encoder.encode(line + "\n"));
    },
  };
}

function writeAllSync(stream: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}
