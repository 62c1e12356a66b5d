/**
 * The state kept between runs (`<state-dir>/state.json`): the reloads still owed, what each
 * map entry last did, and how the last run ended.
 *
 * A file whose content changed is written at once, but its container may be down or its
 * validation may fail; the next run finds the content unchanged and would never reload it.
 * So a failed reload's paths are kept here, and the next run reloads their targets again.
 * The per-entry records and the last run are for `status` and metrics. The file holds paths,
 * OCIDs, versions, times and reasons; never a secret.
 *
 * Version 1 (`{version: 1, pendingReloads}`) is still read; it is written back as version 2.
 *
 * @module
 */
import { z } from "zod";
import { atomicWrite } from "./write.ts";

/** Where the run lock and `state.json` live unless `--state-dir` says otherwise. */
export const DEFAULT_STATE_DIR = "/run/oci-secretsync";

const isoTime = z.iso.datetime({ offset: true });

const entryStateSchema = z.object({
  secretId: z.string(),
  version: z.union([z.number(), z.string()]).optional(),
  changedAt: isoTime.optional(),
  checkedAt: isoTime.optional(),
  error: z.string().optional(),
  notAfter: isoTime.optional(),
});

const lastRunSchema = z.object({
  startedAt: isoTime,
  endedAt: isoTime,
  code: z.number().int(),
  outcome: z.enum(["unchanged", "changed", "failed"]),
  trigger: z.string().optional(),
});

const stateV1Schema = z.object({
  version: z.literal(1),
  pendingReloads: z.array(z.string()),
});

const stateV2Schema = z.object({
  version: z.literal(2),
  pendingReloads: z.array(z.string()),
  entries: z.record(z.string(), entryStateSchema),
  lastRun: lastRunSchema.optional(),
});

/** What the last run knows of one map entry (keyed by its path in {@link State.entries}). */
export type EntryState = z.infer<typeof entryStateSchema>;

/** How the last run ended. */
export type LastRun = z.infer<typeof lastRunSchema>;

/** What a run ended as: nothing to do, something done, or something failed. */
export type RunOutcome = LastRun["outcome"];

/** What is kept between runs. */
export interface State {
  /** Paths whose target still needs a reload. */
  pendingReloads: string[];
  /**
   * Per map path: the secret it holds, the version written, when its content last changed,
   * when it was last found in line, and why it last failed (a reason, never a value).
   * @default {}
   */
  entries?: Record<string, EntryState>;
  /** The last real run (dry runs record nothing). */
  lastRun?: LastRun;
}

/** The state of a first run. */
export function emptyState(): State {
  return { pendingReloads: [], entries: {} };
}

/** The state file inside the state directory. */
export function stateFile(stateDir: string): string {
  return `${stateDir}/state.json`;
}

/**
 * Parses the text of a state file (version 1 or 2). Throws on anything else.
 *
 * @example
 * ```ts
 * const state = parseState('{"version":1,"pendingReloads":["/run/secrets/a"]}');
 * console.log(state.pendingReloads); // ["/run/secrets/a"]
 * ```
 */
export function parseState(text: string): State {
  const json = JSON.parse(text);
  const parsed = z.union([stateV1Schema, stateV2Schema]).parse(json);
  if (parsed.version === 1) return { pendingReloads: parsed.pendingReloads, entries: {} };
  const state: State = { pendingReloads: parsed.pendingReloads, entries: parsed.entries };
  if (parsed.lastRun) state.lastRun = parsed.lastRun;
  return state;
}

/**
 * Reads the state. A missing file is an empty state; an unreadable or corrupt one is an empty
 * state too, with `warning` saying why, so a damaged file never stops secrets from syncing.
 */
export async function readState(stateDir: string): Promise<{ state: State; warning?: string }> {
  const path = stateFile(stateDir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { state: emptyState() };
    return {
      state: emptyState(),
      warning: `Cannot read ${path} (${error instanceof Error ? error.message : error}); ` +
        "starting afresh",
    };
  }
  try {
    return { state: parseState(text) };
  } catch {
    return {
      state: emptyState(),
      warning: `Ignoring corrupt state file ${path}; starting afresh`,
    };
  }
}

/** The JSON text written for `state` (version 2, sorted, one line). */
export function stateText(state: State): string {
  const entries: Record<string, EntryState> = {};
  for (const path of Object.keys(state.entries ?? {}).sort()) entries[path] = state.entries![path];
  const body: z.infer<typeof stateV2Schema> = {
    version: 2,
    pendingReloads: [...new Set(state.pendingReloads)].sort(),
    entries,
  };
  if (state.lastRun) body.lastRun = state.lastRun;
  return JSON.stringify(body) + "\n";
}

/** Writes the state atomically (mode 0600). */
export async function writeState(stateDir: string, state: State): Promise<void> {
  await atomicWrite(stateFile(stateDir), new TextEncoder().encode(stateText(state)), {
    mode: 0o600,
  });
}
