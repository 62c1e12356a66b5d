/**
 * The map file: which secret goes to which file, with which mode, and what to reload.
 *
 * Format (compatible with the original bash tool):
 *
 * ```
 * # ocid,path,mode,target,reload[,owner]
 * ocid1.vaultsecret.oc1..aaaa,/run/secrets/db_password,0600,myapp,HUP
 * ```
 *
 * Every line is validated before anything is fetched; {@link parseMap} returns every bad line
 * with its number, so one run of `secretsync check` shows them all.
 *
 * @module
 */
import { parse as parseCsv } from "csv-parse/sync";
import { z } from "zod";
import { dirname, isInside, isNormalizedAbsolute } from "./paths.ts";
import { formatReference, parseReference, type SecretReference } from "./reference.ts";
import { normalizeSignal } from "./signals.ts";
import { quoted } from "./text.ts";

/** What to reload when a secret's file changed. */
export type Target =
  | { kind: "container"; name: string }
  | { kind: "unit"; name: string }
  | { kind: "pidfile"; path: string };

/** How to reload a target: a bare signal, or a named recipe. */
export type Reload = { kind: "signal"; signal: string } | { kind: "recipe"; name: string };

/** One validated map line. */
export interface Entry {
  /** 1-based line number in the map file, for messages. */
  line: number;
  /** The first column: a secret OCID, or a reference in its canonical form (reference.ts). */
  secretId: string;
  /**
   * The parsed reference, when the first column is more than a bare OCID (a name, a version
   * or a key). `referenceOf(entry)` in reference.ts gives it for every entry.
   */
  ref?: SecretReference;
  path: string;
  /** Permission bits, e.g. `0o600`. */
  mode: number;
  owner?: { uid: number; gid: number };
  target?: Target;
  reload?: Reload;
}

/** A map line that failed validation. */
export interface MapProblem {
  line: number;
  message: string;
}

/** Options for {@link parseMap}. */
export interface ParseMapOptions {
  /** Directories every path must lie strictly inside (normalized, absolute). */
  roots: string[];
  /** Recipe names the fifth column may name besides a signal. @default [] */
  recipes?: readonly string[];
}

/** The result of {@link parseMap}: entries when the whole map is valid, else every problem. */
export type ParsedMap = { ok: true; entries: Entry[] } | { ok: false; problems: MapProblem[] };

/** Shape of an OCI secret OCID: `ocid1.vaultsecret.<realm>.<region>[.<future>].<unique>`. */
const SECRET_OCID = /^ocid1\.vaultsecret\.[a-z0-9]+\.[a-z0-9-]*(\.[a-z0-9-]+)?\.[a-z0-9]{1,255}$/;
/** docker/podman container names; the first character can never make it a CLI flag. */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$/;
const UNIT_NAME = /^[a-zA-Z0-9:_.\\@-]+\.service$/;
const MODE = /^0?[0-7]{3}$/;
const OWNER = /^(\d{1,10}):(\d{1,10})$/;
const DEFAULT_MODE = 0o600;

/**
 * What ends a map line: LF, CRLF, or a bare CR (as old Mac editors write). CRs before an LF
 * belong to that one line end (a CRLF file converted twice has `\r\r\n`).
 */
export const LINE_END = /\r*\n|\r/;

const HEADER_FIRST_FIELD = /^(ocid|secret|secret_?id)$/i;

/**
 * Parses and validates a whole map file.
 *
 * Comment lines (first non-blank character `#`), blank lines, CRLF line ends and a literal
 * header line (`ocid,path,...`) are accepted. Each line is parsed as CSV on its own, so a
 * broken quote on one line cannot hide problems on the others.
 *
 * @example
 * ```ts
 * const map = parseMap("ocid1.vaultsecret.oc1..aaaa,/run/secrets/a,0600,,\n", { roots: ["/run/secrets"] });
 * if (map.ok) console.log(map.entries[0].path); // "/run/secrets/a"
 * ```
 */
export function parseMap(text: string, options: ParseMapOptions): ParsedMap {
  const entries: Entry[] = [];
  const problems: MapProblem[] = [];
  const schema = rowSchema(options);
  // Any line end (LF, CRLF, or a bare CR as old Mac editors write) ends a line, quoted or not:
  // one map, one answer.
  const lines = text.replace(/^\uFEFF/, "").split(LINE_END);
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (/^\s*(#|$)/.test(raw)) return;
    const fields = splitCsvLine(raw);
    if (typeof fields === "string") {
      problems.push({ line, message: fields });
      return;
    }
    if (entries.length === 0 && problems.length === 0 && HEADER_FIRST_FIELD.test(fields[0])) {
      return;
    }
    const result = schema.safeParse(fields);
    if (!result.success) {
      problems.push({ line, message: result.error.issues.map((i) => i.message).join("; ") });
      return;
    }
    entries.push({ line, ...result.data });
  });
  problems.push(...pathConflicts(entries));
  problems.sort((a, b) => a.line - b.line);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, entries };
}

/** Formats problems as `Cannot parse map line N: …` lines, one per problem. */
export function formatProblems(file: string, problems: MapProblem[]): string[] {
  return problems.map((p) => `Cannot parse map ${quoted(file, 300)} line ${p.line}: ${p.message}`);
}

function splitCsvLine(raw: string): string[] | string {
  // Without a quote, CSV is a plain split; a parser per line would cost 80 µs a line, the
  // whole of a large map's validation time.
  if (!raw.includes('"')) return raw.split(",").map((field) => field.trim());
  try {
    const rows = parseCsv(raw, { trim: true, relax_column_count: true }) as string[][];
    return rows[0] ?? [];
  } catch (error) {
    // csv-parse messages quote the input line; keep only the reason.
    const reason = error instanceof Error ? error.message.split(":")[0] : String(error);
    return `not valid CSV (${reason})`;
  }
}

function rowSchema(options: ParseMapOptions) {
  const recipes = options.recipes ?? [];
  return z
    .array(z.string())
    .transform((fields, ctx) => {
      if (fields.length < 3 || fields.length > 6) {
        return fail(
          ctx,
          `expected 3 to 6 fields (ocid,path,mode[,target,reload[,owner]]), found ${fields.length}`,
        );
      }
      const [secretId, path, mode, target, reload, owner] = fields;
      const ref = checkReference(secretId, ctx);
      const entry: Omit<Entry, "line"> = {
        secretId: ref ? formatReference(ref) : secretId,
        path: checkPath(path, options.roots, ctx),
        mode: checkMode(mode, ctx),
      };
      if (ref && !("ocid" in ref.secret && !ref.version && !ref.key)) entry.ref = ref;
      const parsedTarget = checkTarget(target ?? "", options.roots, ctx);
      const parsedReload = checkReload(reload ?? "", recipes, ctx);
      if (parsedReload && !parsedTarget) {
        fail(ctx, `"${clip(reload ?? "")}" is given but no container to reload`);
      }
      if (parsedTarget) entry.target = parsedTarget;
      if (parsedReload) entry.reload = parsedReload;
      if (owner) entry.owner = checkOwner(owner, ctx);
      return entry;
    });
}

type Ctx = z.RefinementCtx;

function fail(ctx: Ctx, message: string): never {
  ctx.addIssue({ code: "custom", message });
  return z.NEVER;
}

function checkReference(value: string, ctx: Ctx): SecretReference | undefined {
  // The common case, a bare OCID, stays on its fast path.
  if (SECRET_OCID.test(value)) return undefined;
  const parsed = parseReference(value);
  if (!parsed.ok) {
    ctx.addIssue({ code: "custom", message: parsed.message });
    return undefined;
  }
  return parsed.ref;
}

function checkPath(value: string, roots: string[], ctx: Ctx): string {
  if (!isNormalizedAbsolute(value)) {
    return fail(
      ctx,
      `path "${clip(value)}" must be absolute and normalized (no "..", "." or "//")`,
    );
  }
  if (!roots.some((root) => isInside(value, root))) {
    return fail(
      ctx,
      `path "${clip(value)}" is not inside ${roots.map((r) => `"${clip(r)}"`).join(" or ")}`,
    );
  }
  return value;
}

function checkMode(value: string, ctx: Ctx): number {
  if (value === "") return DEFAULT_MODE;
  if (!MODE.test(value)) {
    return fail(ctx, `mode "${clip(value)}" must be octal permission bits like 0600`);
  }
  const mode = parseInt(value, 8);
  if (mode & 0o022) {
    return fail(ctx, `mode "${value}" must not be group- or world-writable`);
  }
  return mode;
}

function checkTarget(value: string, roots: string[], ctx: Ctx): Target | undefined {
  if (value === "") return undefined;
  if (value.startsWith("unit:")) {
    const name = value.slice(5);
    if (!UNIT_NAME.test(name)) return fail(ctx, `"${clip(value)}" is not a systemd service unit`);
    return { kind: "unit", name };
  }
  if (value.startsWith("pidfile:")) {
    const path = value.slice(8);
    if (!isNormalizedAbsolute(path)) {
      return fail(ctx, `pidfile "${clip(path)}" must be an absolute, normalized path`);
    }
    // A file in a root holds a secret: read as a PID, it would be quoted or signalled.
    const root = roots.find((r) => path === r || isInside(path, r));
    if (root) {
      return fail(
        ctx,
        `pidfile "${clip(path)}" is inside "${clip(root)}", where secrets are written; ` +
          `a pidfile must be outside every root`,
      );
    }
    return { kind: "pidfile", path };
  }
  if (!CONTAINER_NAME.test(value)) {
    return fail(ctx, `container "${clip(value)}" is not a valid container name`);
  }
  return { kind: "container", name: value };
}

function checkReload(value: string, recipes: readonly string[], ctx: Ctx): Reload | undefined {
  if (value === "") return undefined;
  const signal = normalizeSignal(value);
  if (signal) return { kind: "signal", signal };
  if (recipes.includes(value)) return { kind: "recipe", name: value };
  return fail(
    ctx,
    `"${
      clip(value)
    }" is neither a signal (HUP, USR1, …) nor a known recipe (see \`secretsync recipe list\`)`,
  );
}

function checkOwner(value: string, ctx: Ctx): { uid: number; gid: number } {
  const match = OWNER.exec(value);
  const uid = Number(match?.[1]);
  const gid = Number(match?.[2]);
  if (!match || uid > 0xfffffffe || gid > 0xfffffffe) {
    return fail(ctx, `owner "${clip(value)}" must be numeric uid:gid, like 1000:1000`);
  }
  return { uid, gid };
}

/** Two lines writing one path, or one path inside another's, cannot both be honoured. */
function pathConflicts(entries: Entry[]): MapProblem[] {
  const problems: MapProblem[] = [];
  const byPath = new Map<string, Entry>();
  for (const entry of entries) {
    const first = byPath.get(entry.path);
    if (first) {
      problems.push({
        line: entry.line,
        message: `path "${clip(entry.path)}" is already written by line ${first.line}`,
      });
    } else {
      byPath.set(entry.path, entry);
    }
  }
  for (const entry of byPath.values()) {
    for (let dir = dirname(entry.path); dir !== "/"; dir = dirname(dir)) {
      const file = byPath.get(dir);
      if (file) {
        problems.push({
          line: entry.line,
          message: `path "${clip(entry.path)}" is inside the file "${
            clip(file.path)
          }" of line ${file.line}`,
        });
      }
    }
  }
  return problems;
}

/**
 * A map value as a message quotes it: escaped (a map line is outside input: no control
 * character or escape reaches a log line) and cut at 80 characters.
 */
function clip(value: string): string {
  return quoted(value, 80);
}
