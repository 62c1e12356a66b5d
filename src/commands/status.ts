/**
 * `secretsync status`: what the last run left (per entry: path, secret, version on disk, last
 * change, last error, owed reload; the run: start, end, outcome) and when the next run is due
 * (a running `watch`, else the systemd timer). Reads files only; never contacts OCI, never shows
 * a value (the state holds none).
 *
 * Exit codes, for health checks: 0 the last run succeeded, 1 it failed (or the state cannot be
 * read), 4 no run recorded yet, 2 usage error.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { COMMANDER_ERROR_OUTPUT } from "../log.ts";
import { isNormalizedAbsolute } from "../paths.ts";
import { accessProblems } from "../permissions.ts";
import { readSchedule } from "../schedule.ts";
import { readState, stateFile } from "../state.ts";
import { buildStatus, formatStatus, STATUS_EXIT } from "../status.ts";
import { readStreamStatus } from "../stream/watch.ts";
import { readTimer, type TimerInfo } from "../timer.ts";
import { validateOptions } from "./usage.ts";

/** Parsed options of `secretsync status`. */
export interface StatusOptions {
  stateDir: string;
  json: boolean;
  /** Ask systemd about the timer when no watch is running. */
  timer: boolean;
}

const statusSchema = z.object({
  stateDir: z.string().refine(
    isNormalizedAbsolute,
    "--state-dir must be an absolute, normalized path",
  ),
  json: z.boolean(),
  timer: z.boolean(),
});

/** Declares `status` and its flags. */
export function statusCommand(): Command {
  return new Command("status")
    .description("Show what the last run did and when the next is due; never a secret's value")
    .option("--state-dir <dir>", "where sync and watch keep their state", "/run/oci-secretsync")
    .option("--json", "one JSON object", false)
    .option("--no-timer", "do not ask systemctl about oci-secretsync.timer")
    .addHelpText(
      "after",
      `
Exit codes: 0 the last run succeeded, 1 it failed (or the state is unreadable),
4 no run recorded yet, 2 usage error.

Example:
  secretsync status
  secretsync status --json | jq '.entries[] | select(.error)'`,
    );
}

/** Parses `status` arguments; throws UsageError on bad input. */
export function parseStatusArgs(args: string[]): StatusOptions {
  const command = statusCommand().exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT);
  command.parse(args, { from: "user" });
  return validateOptions(statusSchema, command.opts());
}

/** Runs `status`; returns its exit code (see the module documentation). */
export async function runStatus(options: StatusOptions): Promise<number> {
  const denied = accessProblems({ read: [options.stateDir] });
  if (denied.length > 0) {
    for (const message of denied) console.error(`secretsync: ${message}`);
    return 2;
  }
  const stateFound = await exists(stateFile(options.stateDir));
  const { state, warning: stateWarning } = await readState(options.stateDir);
  const { schedule: watch, warning: watchWarning } = await readSchedule(options.stateDir);
  const { status: stream, warning: streamWarning } = await readStreamStatus(options.stateDir);
  const watching = watch !== undefined && watch.stoppedAt === undefined;
  // systemctl is asked only when no watch answers, with a deadline; no systemd is an answer.
  const timer: TimerInfo | undefined = options.timer && !watching ? await readTimer() : undefined;
  const report = buildStatus({
    stateFound,
    stateWarning,
    entries: state.entries ?? {},
    pendingReloads: state.pendingReloads,
    lastRun: state.lastRun,
    watch,
    watchWarning,
    stream,
    streamWarning,
    timer,
    now: new Date(),
  });
  console.log(
    options.json
      ? JSON.stringify({ stateDir: options.stateDir, ...report }, null, 2)
      : formatStatus(report).trimEnd(),
  );
  return STATUS_EXIT[report.health];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return true; // there, but unreadable: readState says why
  }
}
