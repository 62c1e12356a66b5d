/**
 * The state kept between runs: reloads that failed and must be retried.
 *
 * A file whose content changed is written at once, but its container may be down or its
 * validation may fail; the next run finds the content unchanged and would never reload it.
 * So a failed reload's paths are kept here, and the next run reloads their targets again.
 * The file holds paths only, never a secret.
 *
 * @module
 */
import { z } from "zod";
import { atomicWrite } from "./write.ts";

/** What is kept between runs. */
export interface State {
  /** Paths whose target still needs a reload. */
  pendingReloads: string[];
}

const stateSchema = z.object({
  version: z.literal(1),
  pendingReloads: z.array(z.string()),
});

/** The state file inside the state directory. */
export function stateFile(stateDir: string): string {
  return `${stateDir}/state.json`;
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
    if (error instanceof Deno.errors.NotFound) return { state: { pendingReloads: [] } };
    return {
      state: { pendingReloads: [] },
      warning: `Cannot read ${path} (${error}); starting afresh`,
    };
  }
  try {
    const parsed = stateSchema.parse(JSON.parse(text));
    return { state: { pendingReloads: parsed.pendingReloads } };
  } catch {
    return {
      state: { pendingReloads: [] },
      warning: `Ignoring corrupt state file ${path}; starting afresh`,
    };
  }
}

/** Writes the state atomically (mode 0600). */
export async function writeState(stateDir: string, state: State): Promise<void> {
  const body = JSON.stringify({
    version: 1,
    pendingReloads: [...new Set(state.pendingReloads)].sort(),
  });
  await atomicWrite(stateFile(stateDir), new TextEncoder().encode(body + "\n"), { mode: 0o600 });
}
