/**
 * `<state-dir>/watch.json`: what a running `secretsync watch` tells `status` — its pid, its
 * interval, when its next full cycle is due, and when it stopped. Written only by the watch
 * process; a file of times and numbers, never a secret.
 *
 * @module
 */
import { z } from "zod";
import { atomicWrite } from "./write.ts";

const isoTime = z.iso.datetime({ offset: true });

const scheduleSchema = z.object({
  version: z.literal(1),
  pid: z.number().int(),
  startedAt: isoTime,
  intervalMs: z.number().int().min(0),
  jitterMs: z.number().int().min(0),
  cycles: z.number().int().min(0),
  nextCycleAt: isoTime.optional(),
  stoppedAt: isoTime.optional(),
});

/** What `watch` records about its schedule. */
export type WatchSchedule = Omit<z.infer<typeof scheduleSchema>, "version">;

/** The schedule file inside the state directory. */
export function scheduleFile(stateDir: string): string {
  return `${stateDir}/watch.json`;
}

/** Writes the schedule atomically (mode 0600). */
export async function writeSchedule(stateDir: string, schedule: WatchSchedule): Promise<void> {
  const body = JSON.stringify({ version: 1, ...schedule }) + "\n";
  // A fixed temp name, not a run's: watch writes this outside the run lock, and a run holding
  // the lock removes the state directory's run temp files as leftovers of a crash.
  await atomicWrite(scheduleFile(stateDir), new TextEncoder().encode(body), { mode: 0o600 }, {
    temp: `${stateDir}/.watch.json.tmp`,
  });
}

/**
 * Reads the schedule: `undefined` when no watch ever ran here; `warning` when the file is
 * there but unreadable or damaged (status then says so instead of guessing).
 */
export async function readSchedule(
  stateDir: string,
): Promise<{ schedule?: WatchSchedule; warning?: string }> {
  const path = scheduleFile(stateDir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    return { warning: `Cannot read ${path}: ${error instanceof Error ? error.message : error}` };
  }
  try {
    const { version: _, ...schedule } = scheduleSchema.parse(JSON.parse(text));
    return { schedule };
  } catch {
    return { warning: `Ignoring damaged ${path}` };
  }
}
