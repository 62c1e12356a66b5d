/**
 * The `secretsync` command line: wiring only. Each command lives in `commands/`.
 *
 * ```
 * secretsync sync  [--map FILE] [--root DIR] …   # fetch, write, reload
 * secretsync check [--map FILE] [--root DIR]     # validate, no network
 * ```
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { checkCommand, parseCheckArgs, runCheck } from "./commands/check.ts";
import { parseSyncArgs, runSync, syncCommand } from "./commands/sync.ts";
import { UsageError } from "./commands/usage.ts";
import { VERSION } from "./version.ts";

const commands: Record<string, (args: string[]) => Promise<number>> = {
  sync: (args) => runSync(parseSyncArgs(args)),
  check: (args) => runCheck(parseCheckArgs(args)),
};

/** The top-level program, for `--help` and `--version`. */
function program(): Command {
  return new Command("secretsync")
    .description(
      "Sync secrets from OCI Vault into files on tmpfs and reload the containers that use them",
    )
    .version(`secretsync ${VERSION}`, "-V, --version")
    .addCommand(syncCommand())
    .addCommand(checkCommand())
    .addHelpText(
      "after",
      "\nExit codes: 0 nothing changed, 3 something changed, 1 some entry failed, 2 usage or map error.",
    );
}

/**
 * Runs the command line and returns the exit code. Never exits the process itself.
 */
export async function main(args: string[]): Promise<number> {
  try {
    const handler = commands[args[0]];
    if (handler) return await handler(args.slice(1));
    program().exitOverride().parse(args, { from: "user" });
    return 2; // a bare `secretsync` printed help and must not look like success
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message or the help text.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError) {
      console.error(`secretsync: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
