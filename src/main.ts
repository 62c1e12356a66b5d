/**
 * The `secretsync` command line: wiring only. Each command lives in `commands/`.
 *
 * ```
 * secretsync sync  [--map FILE] [--root DIR] …   # fetch, write, reload
 * secretsync check [--map FILE] [--root DIR]     # validate, no network
 * secretsync install [--no-enable] [--dry-run]   # binary, systemd units, /etc/oci-secretsync
 * secretsync uninstall [--dry-run]               # stop and remove them; keep map and secrets
 * secretsync recipe list|show NAME [--json]      # reload recipes, with notes and sources
 * secretsync watch [--interval 6h] [--stream OCID]  # sync in a loop (+ rotation events); SIGTERM stops
 * secretsync status [--json]                     # last run, next run, each entry; no values
 * secretsync doctor                              # check the set-up, one line per check
 * secretsync env-wrapper > secretsync-env        # the _FILE entrypoint wrapper (POSIX sh)
 * ```
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { checkCommand, parseCheckArgs, runCheck } from "./commands/check.ts";
import { envWrapperCommand, parseEnvWrapperArgs, runEnvWrapper } from "./commands/env_wrapper.ts";
import { installCommand, parseInstallArgs, runInstall } from "./commands/install.ts";
import { parseRecipeArgs, recipeCommand, runRecipe } from "./commands/recipe.ts";
import { doctorCommand, parseDoctorArgs, runDoctor } from "./commands/doctor.ts";
import { parseStatusArgs, runStatus, statusCommand } from "./commands/status.ts";
import { parseSyncArgs, runSync, syncCommand } from "./commands/sync.ts";
import { parseUninstallArgs, runUninstall, uninstallCommand } from "./commands/uninstall.ts";
import { UsageError } from "./commands/usage.ts";
import { parseWatchArgs, runWatch, watchCommand } from "./commands/watch.ts";
import { COMMANDER_ERROR_OUTPUT, errorText } from "./log.ts";
import { explainNotCapable } from "./permissions.ts";
import { versionText } from "./version.ts";

// A Map, not an object: a command name is user input, and `constructor` or `valueOf` must not
// find Object.prototype's members.
const commands = new Map<string, (args: string[]) => Promise<number>>([
  ["sync", (args) => runSync(parseSyncArgs(args))],
  // watch and doctor take sync's flags: handed over here, so commands never import each other.
  ["watch", (args) => runWatch(parseWatchArgs(args, parseSyncArgs, syncFlags()))],
  ["status", (args) => runStatus(parseStatusArgs(args))],
  ["doctor", (args) => runDoctor(parseDoctorArgs(args, parseSyncArgs, syncFlags()))],
  ["check", (args) => runCheck(parseCheckArgs(args))],
  ["install", (args) => runInstall(parseInstallArgs(args))],
  ["uninstall", (args) => runUninstall(parseUninstallArgs(args))],
  ["recipe", (args) => runRecipe(parseRecipeArgs(args))],
  ["env-wrapper", (args) => {
    parseEnvWrapperArgs(args);
    return runEnvWrapper();
  }],
]);

/** `--help` or `-h` before any `--`: the program prints that command's help. */
function asksForHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** sync's options, freshly declared, for the commands that take them too. */
function syncFlags() {
  return syncCommand().options;
}

/** The top-level program, for `--help` and `--version`. */
function program(): Command {
  return new Command("secretsync")
    .description(
      "Sync secrets from OCI Vault into files on tmpfs and reload the containers that use them",
    )
    .version(versionText(), "-V, --version")
    .addCommand(syncCommand())
    .addCommand(watchCommand(syncFlags()))
    .addCommand(statusCommand())
    .addCommand(doctorCommand(syncFlags()))
    .addCommand(checkCommand())
    .addCommand(installCommand())
    .addCommand(uninstallCommand())
    .addCommand(recipeCommand())
    .addCommand(envWrapperCommand())
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
    const handler = commands.get(args[0]);
    // Help goes through the whole program, so `sync --help` and `help sync` print the same
    // text, with the same `Usage: secretsync sync …` line.
    if (handler && !asksForHelp(args)) return await handler(args.slice(1));
    program().exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT).parse(args, { from: "user" });
    return 2; // a bare `secretsync` printed help and must not look like success
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message or the help text.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError) {
      console.error(errorText(`secretsync: ${error.message}`));
      return 2;
    }
    if (error instanceof Deno.errors.NotCapable) {
      // Something this build may not touch, found only on the way: say how to proceed.
      console.error(errorText(`secretsync: ${explainNotCapable(error)}`));
      return 1;
    }
    // Nothing should reach here (each command reports its own failures); if something does,
    // it is still one line, never a stack trace.
    console.error(
      `secretsync: unexpected error: ${error instanceof Error ? error.message : error}`,
    );
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
