/**
 * Reads back what `deno compile` baked into a binary ({@linkcode verifyPayload}): the
 * compile metadata (permissions, prompt, log level, V8 flags), the systemd units and the stamped
 * commit. The compiler reports none of it, so `scripts/compile.ts` checks every binary it
 * builds against `src/permissions.ts` and `src/assets.ts`.
 *
 * @module
 */
import { PERMISSIONS, type PermissionSet } from "../src/permissions.ts";
import { UNITS } from "../src/assets.ts";
import { BuildError } from "./_util.ts";
import { COMPILE_FLAGS } from "./permissions.ts";

/** The compile metadata a Deno 2.9 binary carries: the parts checked here. */
interface CompileMetadata {
  permissions: Record<string, string[] | boolean | null>;
  log_level: string | null;
  v8_flags?: string[];
}

/** Checks what is baked into a built binary: permissions, no prompt, V8 flags, units, commit. */
export function verifyPayload(bytes: Uint8Array, target: string, commit: string): void {
  const metadata = readMetadata(bytes);
  if (!metadata) throw new BuildError(`${target}: no compile metadata found in the binary`);
  const problems = permissionDifferences(metadata.permissions, PERMISSIONS);
  if (metadata.permissions.prompt !== false) problems.push("it may prompt for permissions");
  if (metadata.log_level !== "ERROR") problems.push(`log level is ${metadata.log_level}`);
  problems.push(...v8FlagDifferences(metadata.v8_flags));
  for (const [name, text] of Object.entries(UNITS)) {
    if (indexOf(bytes, new TextEncoder().encode(text)) < 0) {
      problems.push(`the unit ${name} is not in the payload`);
    }
  }
  if (indexOf(bytes, new TextEncoder().encode(`"${commit}"`)) < 0) {
    problems.push(`the commit "${commit}" is not in the payload`);
  }
  if (problems.length > 0) {
    throw new BuildError(
      `${target}: the binary is not what was asked for:\n  ${problems.join("\n  ")}`,
    );
  }
}

/** Compares baked permissions with the set; returns one line per difference. */
export function permissionDifferences(
  baked: Record<string, unknown>,
  set: PermissionSet,
): string[] {
  const expected: Record<string, readonly string[] | null> = {
    allow_read: set.read,
    allow_write: set.write,
    allow_run: set.run,
    allow_env: set.env,
    ignore_env: set.ignoreEnv,
    allow_net: set.net,
    allow_sys: set.sys,
    allow_ffi: null,
    deny_read: null,
    deny_write: null,
    deny_run: null,
    deny_env: null,
    deny_net: null,
    deny_sys: null,
    deny_ffi: null,
    ignore_read: null,
  };
  const problems: string[] = [];
  for (const [key, want] of Object.entries(expected)) {
    const got = baked[key] ?? null;
    const norm = (v: unknown) => JSON.stringify(Array.isArray(v) && v.length === 0 ? null : v);
    if (norm(got) !== norm(want)) {
      problems.push(`${key} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
  }
  return problems;
}

/**
 * The V8 flags of `flags` (`--v8-flags=a,b`) missing from those baked in, one line each: a
 * binary without `--expose-gc` would still run, but `watch` would never collect between cycles.
 */
export function v8FlagDifferences(
  baked: unknown,
  flags: readonly string[] = COMPILE_FLAGS,
): string[] {
  const wanted = flags.filter((flag) => flag.startsWith("--v8-flags="))
    .flatMap((flag) => flag.slice("--v8-flags=".length).split(","));
  const have = Array.isArray(baked) ? baked : [];
  return wanted.filter((flag) => !have.includes(flag)).map((flag) => `V8 flag ${flag} is missing`);
}

/** Finds the compile metadata JSON (`{"argv":[…`) in a binary and parses it. */
export function readMetadata(bytes: Uint8Array): CompileMetadata | undefined {
  const start = lastIndexOf(bytes, new TextEncoder().encode('{"argv":['));
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      return JSON.parse(new TextDecoder().decode(bytes.subarray(start, i + 1)));
    }
  }
  return undefined;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  for (let i = haystack.indexOf(first, from); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function lastIndexOf(haystack: Uint8Array, needle: Uint8Array): number {
  let found = -1;
  for (let i = indexOf(haystack, needle); i >= 0; i = indexOf(haystack, needle, i + 1)) {
    found = i;
  }
  return found;
}
