/**
 * Log lines for people (`[INFO] (write) Updated …`) or machines (`--json`: one object per
 * line). Callers pass names, paths, OCIDs and versions; nothing here ever receives a secret.
 *
 * How a human line looks depends on where it goes:
 * - to journald (systemd sets `JOURNAL_STREAM` to the device and inode of the stream it
 *   connected): each line starts with its syslog priority, `<3>` error, `<4>` warning,
 *   `<6>` info, which journald strips and records, so `journalctl -p err` finds failures;
 * - to a terminal: the level is coloured (never when `NO_COLOR` is set), and a long run can
 *   show a progress line that the next log line replaces;
 * - anywhere else (a file, a pipe): the plain line.
 *
 * Requires `--allow-env=JOURNAL_STREAM,NO_COLOR` (an unreadable variable counts as unset).
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
  /**
   * How far a long step is (`done` of `total`); shown on a terminal only, as one line that
   * the next call or log line replaces. Optional: loggers that show nothing leave it out.
   */
  progress?(component: string, done: number, total: number): void;
}

/** A stream a logger writes to. */
export interface LogStream {
  writeSync(p: Uint8Array): number;
  /** Whether the stream is a terminal. @default false */
  isTerminal?(): boolean;
  /** Device and inode of the stream, to recognise journald's. */
  statSync?(): { dev: number; ino: number | null };
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** One JSON object per line instead of human lines. @default false */
  json?: boolean;
  /** @default Deno.stdout */
  stdout?: LogStream;
  /** @default Deno.stderr */
  stderr?: LogStream;
  /** Reads an environment variable. @default Deno.env.get, undefined when not permitted */
  env?: (name: string) => string | undefined;
}

/** Syslog priority of each level, as journald reads it from a `<N>` prefix. */
export const SYSLOG_PRIORITY: Readonly<Record<Level, number>> = { error: 3, warn: 4, info: 6 };

/** Maps shorter than this show no progress line: they are done before one helps. */
export const PROGRESS_MIN_TOTAL = 20;

const COLOR: Readonly<Record<Level, string>> = {
  error: "\x1b[31m",
  warn: "\x1b[33m",
  info: "\x1b[32m",
};
const RESET = "\x1b[0m";
const CLEAR_LINE = "\r\x1b[2K";

const encoder = new TextEncoder();

/** How a stream's lines are decorated. */
export type StreamStyle = "journal" | "color" | "plain";

/**
 * Decides how lines to a stream look: journald's priority prefixes when the stream is the one
 * `JOURNAL_STREAM` names (`DEV:INO`; when the stream cannot be examined, the variable alone
 * decides), colour on a terminal unless `NO_COLOR` is set (to anything, even empty), plain
 * otherwise. Pure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(streamStyle({ journalStream: "8:1234", stream: { dev: 8, ino: 1234 }, terminal: false }), "journal");
 * assert.equal(streamStyle({ terminal: true, noColor: "" }), "plain");
 * ```
 */
export function streamStyle(input: {
  journalStream?: string;
  stream?: { dev: number; ino: number | null };
  terminal: boolean;
  noColor?: string;
}): StreamStyle {
  if (input.journalStream) {
    const [dev, ino] = input.journalStream.split(":").map(Number);
    if (!input.stream || (input.stream.dev === dev && input.stream.ino === ino)) return "journal";
  }
  if (input.terminal && input.noColor === undefined) return "color";
  return "plain";
}

/**
 * One human log line, decorated for its stream. Pure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(formatLine("error", "fetch", "Cannot fetch x", "journal"), "<3>[ERROR] (fetch) Cannot fetch x");
 * ```
 */
export function formatLine(
  level: Level,
  component: string,
  message: string,
  style: StreamStyle,
): string {
  const tag = `[${level.toUpperCase()}]`;
  if (style === "journal") return `<${SYSLOG_PRIORITY[level]}>${tag} (${component}) ${message}`;
  if (style === "color") return `${COLOR[level]}${tag}${RESET} (${component}) ${message}`;
  return `${tag} (${component}) ${message}`;
}

/**
 * An error line that is not a log line (`secretsync: <usage error>`), with journald's `<3>`
 * prefix when stderr goes to the journal, so `journalctl -p err` shows it too.
 */
export function errorText(
  text: string,
  env: (name: string) => string | undefined = readEnv,
): string {
  const style = streamStyle({ journalStream: env("JOURNAL_STREAM"), terminal: false });
  return style === "journal" ? `<${SYSLOG_PRIORITY.error}>${text}` : text;
}

/** Creates a logger writing human lines, or JSON lines when `json` is set. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const stdout = options.stdout ?? Deno.stdout;
  const stderr = options.stderr ?? Deno.stderr;
  const env = options.env ?? readEnv;
  const styleOf = (stream: LogStream): StreamStyle =>
    streamStyle({
      journalStream: env("JOURNAL_STREAM"),
      stream: statOf(stream),
      terminal: stream.isTerminal?.() ?? false,
      noColor: env("NO_COLOR"),
    });
  const styles = new Map<LogStream, StreamStyle>([[stdout, styleOf(stdout)], [
    stderr,
    styleOf(stderr),
  ]]);
  // The progress line lives on stderr, and only on a terminal.
  let progressShown = false;
  const clearProgress = () => {
    if (progressShown) writeAllSync(stderr, encoder.encode(CLEAR_LINE));
    progressShown = false;
  };
  const logger: Logger = {
    log(level, component, message, fields = {}) {
      const stream = level === "info" ? stdout : stderr;
      const style = styles.get(stream) ?? "plain";
      // The last guard against injected lines and terminal escapes: whatever a message quotes,
      // a log line is one line of printable text (JSON keeps its own escaping, and gets the
      // characters JSON.stringify leaves raw escaped too). The decoration (journald's priority,
      // colour) is added after, so it is the only escape sequence on the line.
      // JSON lines get journald's prefix too (journald strips it; the stored line is JSON).
      const line = options.json
        ? (style === "journal" ? `<${SYSLOG_PRIORITY[level]}>` : "") +
          escapeControl(
            JSON.stringify({
              time: new Date().toISOString(),
              level,
              component,
              message,
              ...fields,
            }),
          )
        : formatLine(level, component, escapeControl(message), style);
      clearProgress();
      writeAllSync(stream, encoder.encode(line + "\n"));
    },
  };
  if (!options.json && (stderr.isTerminal?.() ?? false)) {
    logger.progress = (component, done, total) => {
      if (total < PROGRESS_MIN_TOTAL) return;
      if (done >= total) return clearProgress();
      writeAllSync(stderr, encoder.encode(`${CLEAR_LINE}(${component}) ${done}/${total}`));
      progressShown = true;
    };
  }
  return logger;
}

function statOf(stream: LogStream): { dev: number; ino: number | null } | undefined {
  try {
    return stream.statSync?.();
  } catch {
    // Not a file descriptor that can be examined: JOURNAL_STREAM alone decides.
    return undefined;
  }
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    // Not in this build's --allow-env: as if unset.
    return undefined;
  }
}

function writeAllSync(stream: LogStream, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}
