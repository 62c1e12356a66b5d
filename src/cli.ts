/**
 * The `secretsync` command line: wiring only. Each command lives in `commands/`; the entry point
 * is `main.ts`.
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
import { UsageError } from "./commands/usage.ts";
import { COMMANDER_ERROR_OUTPUT, errorText } from "./log.ts";
import { explainNotCapable } from "./permissions.ts";
import { versionText } from "./version.ts";

// A Map, not an object: a command name is user input, and `constructor` or `valueOf` must not
// find Object.prototype's members. Each command's modules load only when it runs, so a `sync`
// every few minutes does not load install's or doctor's (literal specifiers: `deno compile`
// still embeds them).
const commands = new Map<string, (args: string[]) => Promise<number>>([
  ["sync", async (args) => {
    const { parseSyncArgs, runSync } = await import("./commands/sync.ts");
    return await runSync(parseSyncArgs(args));
  }],
  // watch and doctor take sync's flags: handed over here, so commands never import each other.
  ["watch", async (args) => {
    const [sync, { parseWatchArgs, runWatch }] = await Promise.all([
      import("./commands/sync.ts"),
      import("./commands/watch.ts"),
    ]);
    return await runWatch(parseWatchArgs(args, sync.parseSyncArgs, sync.syncCommand().options));
  }],
  ["status", async (args) => {
    const { parseStatusArgs, runStatus } = await import("./commands/status.ts");
    return await runStatus(parseStatusArgs(args));
  }],
  ["doctor", async (args) => {
    const [sync, { parseDoctorArgs, runDoctor }] = await Promise.all([
      import("./commands/sync.ts"),
      import("./commands/doctor.ts"),
    ]);
    return await runDoctor(parseDoctorArgs(args, sync.parseSyncArgs, sync.syncCommand().options));
  }],
  ["check", async (args) => {
    const { parseCheckArgs, runCheck } = await import("./commands/check.ts");
    return await runCheck(parseCheckArgs(args));
  }],
  ["install", async (args) => {
    const { parseInstallArgs, runInstall } = await import("./commands/install.ts");
    return await runInstall(parseInstallArgs(args));
  }],
  ["uninstall", async (args) => {
    const { parseUninstallArgs, runUninstall } = await import("./commands/uninstall.ts");
    return await runUninstall(parseUninstallArgs(args));
  }],
  ["recipe", async (args) => {
    const { parseRecipeArgs, runRecipe } = await import("./commands/recipe.ts");
    return await runRecipe(parseRecipeArgs(args));
  }],
  ["env-wrapper", async (args) => {
    const { parseEnvWrapperArgs, runEnvWrapper } = await import("./commands/env_wrapper.ts");
    parseEnvWrapperArgs(args);
    return await runEnvWrapper();
  }],
]);

/** `--help` or `-h` before any `--`: the program prints that command's help. */
function asksForHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** The top-level program, for `--help` and `--version`. */
async function program(): Promise<Command> {
  const [sync, watch, status, doctor, check, install, uninstall, recipe, envWrapper] = await Promise
    .all([
      import("./commands/sync.ts"),
      import("./commands/watch.ts"),
      import("./commands/status.ts"),
      import("./commands/doctor.ts"),
      import("./commands/check.ts"),
      import("./commands/install.ts"),
      import("./commands/uninstall.ts"),
      import("./commands/recipe.ts"),
      import("./commands/env_wrapper.ts"),
    ]);
  // sync's options, freshly declared, for the commands that take them too.
  const syncFlags = () => sync.syncCommand().options;
  return new Command("secretsync")
    .description(
      "Sync secrets from OCI Vault into files on tmpfs and reload the containers that use them",
    )
    .version(versionText(), "-V, --version")
    .addCommand(sync.syncCommand())
    .addCommand(watch.watchCommand(syncFlags()))
    .addCommand(status.statusCommand())
    .addCommand(doctor.doctorCommand(syncFlags()))
    .addCommand(check.checkCommand())
    .addCommand(install.installCommand())
    .addCommand(uninstall.uninstallCommand())
    .addCommand(recipe.recipeCommand())
    .addCommand(envWrapper.envWrapperCommand())
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
    (await program()).exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT)
      .parse(args, { from: "user" });
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
