/**
 * `secretsync sync`: one pass of map → OCI Vault → files → reloads.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { createLogger } from "../log.ts";
import { run, type RunOptions } from "../run.ts";
import { addRunFlags, runFlagsShape, toRunOptions } from "./run_flags.ts";
import { validateOptions } from "./usage.ts";

/** Parsed options of `secretsync sync`: a run's options, and how to log. */
export interface SyncOptions extends RunOptions {
  json: boolean;
}

const syncSchema = z.object(runFlagsShape).transform((o): SyncOptions => ({
  ...toRunOptions(o),
  json: o.json,
}));

/** Declares `sync` and its flags. */
export function syncCommand(): Command {
  return addRunFlags(
    new Command("sync")
      .description("Fetch every secret in the map, write changed files, reload their containers"),
  );
}

/** Parses `sync` arguments into options; throws UsageError on bad input. */
export function parseSyncArgs(args: string[]): SyncOptions {
  const command = syncCommand().exitOverride();
  command.parse(args, { from: "user" });
  const raw = command.opts();
  return validateOptions(syncSchema, { ...raw, roots: raw.root });
}

/** Runs `sync`; returns the exit code (0, 1, 2 or 3; see the README). */
export async function runSync(options: SyncOptions): Promise<number> {
  const log = createLogger({ json: options.json });
  return (await run(options, { log })).code;
}
