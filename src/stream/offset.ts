/**
 * The stream offset kept in the state directory (`stream-offset.json`): the offset of the last
 * message whose entries were applied. It is written only after the sync it asked for
 * succeeded, so a watcher killed at any point re-reads, never skips.
 *
 * @module
 */
import { z } from "zod";
import type { CursorStart } from "./client.ts";
import { atomicWrite } from "../write.ts";

/** What is saved. */
export interface SavedOffset {
  streamId: string;
  partition: string;
  /** The last message applied (or found irrelevant). */
  offset: number;
  /** When it was saved (ISO 8601). */
  savedAt: string;
}

const savedSchema = z.object({
  version: z.literal(1),
  streamId: z.string().min(1),
  partition: z.string().min(1),
  offset: z.number().int().nonnegative(),
  savedAt: z.string(),
});

/** The offset file in a state directory. */
export function offsetFile(stateDir: string): string {
  return `${stateDir}/stream-offset.json`;
}

/**
 * Reads the saved offset; null when there is none. A corrupt file is null too, with
 * `warning` saying so: starting at LATEST with a full sync loses nothing.
 */
export async function readOffset(
  stateDir: string,
): Promise<{ saved: SavedOffset | null; warning?: string }> {
  let text: string;
  try {
    text = await Deno.readTextFile(offsetFile(stateDir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { saved: null };
    return { saved: null, warning: `Cannot read ${offsetFile(stateDir)} (${e}); starting afresh` };
  }
  try {
    const { version: _, ...saved } = savedSchema.parse(JSON.parse(text));
    return { saved };
  } catch (e) {
    const why = e instanceof SyntaxError ? "not JSON" : "unexpected fields";
    return {
      saved: null,
      warning: `Ignoring corrupt ${offsetFile(stateDir)} (${why}); starting afresh`,
    };
  }
}

/** Saves the offset atomically (mode 0600). */
export async function writeOffset(stateDir: string, saved: SavedOffset): Promise<void> {
  const body = JSON.stringify({ version: 1, ...saved }) + "\n";
  await atomicWrite(offsetFile(stateDir), new TextEncoder().encode(body), { mode: 0o600 });
}

/** Where to start reading, and whether a full sync must run first. */
export interface StartPlan {
  cursor: CursorStart;
  /** No offset to resume from: rotations before the new cursor are only caught by a sync. */
  fullSyncFirst: boolean;
}

/**
 * Where a consumer starts: right after a saved offset of this stream and partition, else at
 * LATEST with a full sync first so no rotation falls in the gap.
 *
 * @example
 * ```ts
 * planStart(null, "ocid1.stream.oc1..s", "0");
 * // { cursor: { type: "LATEST" }, fullSyncFirst: true }
 * planStart(
 *   { streamId: "ocid1.stream.oc1..s", partition: "0", offset: 41, savedAt: "" },
 *   "ocid1.stream.oc1..s",
 *   "0",
 * );
 * // { cursor: { type: "AFTER_OFFSET", offset: 41 }, fullSyncFirst: false }
 * ```
 */
export function planStart(
  saved: SavedOffset | null,
  streamId: string,
  partition: string,
): StartPlan {
  if (saved && saved.streamId === streamId && saved.partition === partition) {
    return { cursor: { type: "AFTER_OFFSET", offset: saved.offset }, fullSyncFirst: false };
  }
  return { cursor: { type: "LATEST" }, fullSyncFirst: true };
}
