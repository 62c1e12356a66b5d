/**
 * `secretsync uninstall`: undoes `secretsync install`. Stops and disables the timer, disables
 * the mount, removes the three units and the binary, and reloads systemd.
 *
 * What it never touches: the map and secretsync.env (a user's configuration), and the secrets
 * under /run/secrets, which the mount keeps until the next reboot; `--purge-secrets` unmounts
 * that tmpfs (its content is gone) and removes the run state too. Like install, it checks first
 * (permissions, the systemd directory) and changes nothing when a check fails; `--dry-run`
 * only says what it would do.
 *
 * Requires `--allow-read`/`--allow-write` for the unit directory, the binary and (with
 * `--purge-secrets`) /run/secrets and /run/oci-secretsync; `--allow-run=systemctl`.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { COMMANDER_ERROR_OUTPUT, createLogger, type Logger } from "../log.ts";
import { accessProblems, explainNotCapable } from "../permissions.ts";
import { systemctlOutcome } from "../host/systemctl.ts";
import {
  binaryTempOf,
  DEFAULT_CONFIG_DIR,
  DEFAULT_PREFIX_BIN,
  DEFAULT_SYSTEMD_DIR,
  enableLinks,
  INSTALLED_UNITS,
  SECRETS_MOUNT,
  STATE_DIR,
} from "../units.ts";
import { dirname } from "../paths.ts";
import { oneLine } from "../text.ts";
import { unitPathOption, validateOptions } from "./usage.ts";

/** Parsed options of `secretsync uninstall`. */
export interface UninstallOptions {
  /** Directory the binary was installed into, as `secretsync`. */
  prefixBin: string;
  /** Directory the units were written into. */
  systemdDir: string;
  /** Directory of map.csv: named in the closing message, never touched. */
  configDir: string;
  /** Run systemctl (disable, stop, daemon-reload); off: only remove files. */
  systemctl: boolean;
  /** Unmount /run/secrets (its content is gone) and remove the run state. */
  purgeSecrets: boolean;
  /** Say what would change; change nothing. */
  dryRun: boolean;
}

/** What {@linkcode runUninstall} talks to; tests replace parts of it. */
export interface UninstallDeps {
  log: Logger;
  /** Runs `systemctl <args>`; resolves to its exit code and output. */
  systemctl(args: string[]): Promise<{ code: number; output: string }>;
  /** The secrets mount point, emptied only with `--purge-secrets`. @default "/run/secrets" */
  secretsDir: string;
  /** The run state directory, removed only with `--purge-secrets`. @default "/run/oci-secretsync" */
  stateDir: string;
  /** Whether `path` is a mount point (another file system than its parent's). */
  isMounted(path: string): Promise<boolean>;
}

const dir = unitPathOption;

const uninstallSchema = z.object({
  prefixBin: dir("--prefix-bin"),
  systemdDir: dir("--systemd-dir"),
  configDir: dir("--config-dir"),
  systemctl: z.boolean(),
  purgeSecrets: z.boolean(),
  dryRun: z.boolean(),
});

/** Declares `uninstall` and its flags. */
export function uninstallCommand(): Command {
  return new Command("uninstall")
    .description(
      "Stop and remove what install put in place: the timer, the units, the binary " +
        "(never the map; never the secrets unless --purge-secrets)",
    )
    .option("--prefix-bin <dir>", "where install put the binary", DEFAULT_PREFIX_BIN)
    .option("--systemd-dir <dir>", "where install put the units", DEFAULT_SYSTEMD_DIR)
    .option("--config-dir <dir>", "where the map lives (kept)", DEFAULT_CONFIG_DIR)
    .option("--no-systemctl", "only remove files; run no systemctl")
    .option(
      "--purge-secrets",
      "also unmount /run/secrets (the secrets there are gone) and remove /run/oci-secretsync",
      false,
    )
    .option("--dry-run", "say what would change; change nothing", false)
    .addHelpText("after", "\nExample: secretsync uninstall --dry-run && secretsync uninstall");
}

/** Parses `uninstall` arguments into options; throws UsageError on bad input. */
export function parseUninstallArgs(args: string[]): UninstallOptions {
  const command = uninstallCommand().exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT);
  command.parse(args, { from: "user" });
  return validateOptions(uninstallSchema, command.opts());
}

/** A check or step failed; the messages say what to do. */
class UninstallError extends Error {
  constructor(readonly messages: string[], readonly exitCode: 1 | 2 = 1) {
    super(messages.join("; "));
    this.name = "UninstallError";
  }
}

/**
 * Runs `uninstall`; returns the exit code: 0 done (or nothing to do), 1 a step failed, 2 a
 * path this build may not use.
 */
export async function runUninstall(
  options: UninstallOptions,
  deps: Partial<UninstallDeps> = {},
): Promise<number> {
  const full: UninstallDeps = {
    log: deps.log ?? createLogger(),
    systemctl: deps.systemctl ?? systemctlOutcome,
    secretsDir: deps.secretsDir ?? SECRETS_MOUNT,
    stateDir: deps.stateDir ?? STATE_DIR,
    isMounted: deps.isMounted ?? isMountPoint,
  };
  const { log } = full;
  const binary = `${options.prefixBin}/secretsync`;
  const units = INSTALLED_UNITS.map((name) => ({ name, path: `${options.systemdDir}/${name}` }));
  // What `systemctl disable` removes; removed by hand with --no-systemctl.
  const links = INSTALLED_UNITS.flatMap(enableLinks).map((link) => `${options.systemdDir}/${link}`);
  let removed = 0;
  try {
    // Checks first: nothing changes unless every path is within reach.
    const purge = options.purgeSecrets ? [full.secretsDir, full.stateDir] : [];
    const paths = [
      binary,
      binaryTempOf(options.prefixBin),
      ...units.map((u) => u.path),
      ...(options.systemctl ? [] : links),
      ...purge,
    ];
    const problems = accessProblems({ read: paths, write: options.dryRun ? [] : paths });
    if (problems.length > 0) throw new UninstallError(problems, 2);
    if (!(await isDirectory(options.systemdDir))) {
      throw new UninstallError([
        `Cannot uninstall: --systemd-dir "${options.systemdDir}" is not an existing directory`,
      ]);
    }
    // Install writes files; a directory by one of their names is someone else's (a checkout
    // named secretsync in --prefix-bin): it is never removed, and nothing else is either.
    const directories = [];
    for (const path of [binary, binaryTempOf(options.prefixBin), ...units.map((u) => u.path)]) {
      if (await isRealDirectory(path)) {
        directories.push(
          `Cannot uninstall: ${path} is a directory, not a file install writes: not removed`,
        );
      }
    }
    if (directories.length > 0) throw new UninstallError(directories);
    const present = new Set<string>();
    for (const unit of units) if (await exists(unit.path)) present.add(unit.name);
    const mounted = options.purgeSecrets && (await full.isMounted(full.secretsDir));
    if (mounted && !options.systemctl) {
      throw new UninstallError([
        `Cannot purge ${full.secretsDir}: it is still mounted, and with --no-systemctl nothing ` +
        `unmounts it (umount ${full.secretsDir}, then again)`,
      ]);
    }

    const calls: string[][] = [];
    if (present.has("oci-secretsync.timer")) {
      calls.push(["disable", "--now", "oci-secretsync.timer"]);
    }
    // Disabled, not stopped: stopping the mount unmounts the tmpfs and the secrets with it,
    // and the containers using them would lose their files. They go at the next reboot.
    if (present.has("run-secrets.mount")) {
      calls.push(
        options.purgeSecrets
          ? ["disable", "--now", "run-secrets.mount"]
          : ["disable", "run-secrets.mount"],
      );
    } else if (mounted) {
      // A first uninstall kept the tmpfs mounted and removed the unit's file; systemd still
      // knows the mount from the mount table, so it can stop (unmount) it.
      calls.push(["stop", "run-secrets.mount"]);
    }
    await runSystemctl(calls, options, full);

    for (const unit of units) {
      if (present.has(unit.name)) removed += await remove(unit.path, options, log);
    }
    if (!options.systemctl) {
      for (const link of links) {
        if (await isSymlink(link)) removed += await remove(link, options, log);
      }
    }
    if (present.size > 0) await runSystemctl([["daemon-reload"]], options, full);
    removed += await remove(binaryTempOf(options.prefixBin), options, log, true);
    if (await exists(binary)) removed += await remove(binary, options, log);

    if (options.purgeSecrets) {
      removed += await remove(full.stateDir, options, log);
      // After the unmount only an empty mount point (or files written without the mount) is left.
      removed += await remove(full.secretsDir, options, log);
    } else if (await exists(full.secretsDir)) {
      log.log(
        "info",
        "uninstall",
        `Kept ${full.secretsDir} and the secrets in it (gone at the next reboot; ` +
          "--purge-secrets removes them now)",
        { event: "kept", path: full.secretsDir },
      );
    }
  } catch (error) {
    const failure = error instanceof UninstallError
      ? error
      : new UninstallError([explainError(error)]);
    for (const message of failure.messages) {
      log.log("error", "uninstall", message, { event: "uninstall_failed" });
    }
    return failure.exitCode;
  }
  log.log(
    "info",
    "uninstall",
    `Kept ${options.configDir} (your map and secretsync.env); remove it yourself when done`,
    { event: "kept", path: options.configDir },
  );
  const summary = options.dryRun
    ? `Dry run: ${removed} would be removed`
    : removed === 0
    ? "Nothing to uninstall"
    : `Uninstalled: ${removed} removed`;
  log.log("info", "uninstall", summary, {
    event: options.dryRun ? "uninstall_dry_run" : "uninstalled",
    removed,
  });
  return 0;
}

async function runSystemctl(
  calls: string[][],
  options: UninstallOptions,
  deps: UninstallDeps,
): Promise<void> {
  for (const args of calls) {
    const line = `systemctl ${args.join(" ")}`;
    if (!options.systemctl) {
      deps.log.log("info", "uninstall", `Not running ${line} (--no-systemctl)`, {
        event: "systemctl_skipped",
        command: line,
      });
      continue;
    }
    if (options.dryRun) {
      deps.log.log("info", "uninstall", `Would run ${line}`, { event: "would_run", command: line });
      continue;
    }
    let result: { code: number; output: string };
    try {
      result = await deps.systemctl(args);
    } catch (error) {
      const notFound = error instanceof Deno.errors.NotFound ||
        (error instanceof Error && error.cause instanceof Deno.errors.NotFound);
      const why = notFound
        ? "systemctl is not on PATH (use --no-systemctl to only remove the files)"
        : explainError(error);
      throw new UninstallError([`Cannot run ${line}: ${why}`]);
    }
    if (result.code !== 0) {
      throw new UninstallError([
        `${line} failed (exit code ${result.code}): ${oneLine(result.output) || "no output"}`,
      ]);
    }
    deps.log.log("info", "uninstall", `Ran ${line}`, { event: "ran", command: line });
  }
}

/** Removes `path` (recursively for a directory); returns 1 if it was there, else 0. */
async function remove(
  path: string,
  options: UninstallOptions,
  log: Logger,
  quiet = false,
): Promise<number> {
  if (!(await exists(path))) return 0;
  if (options.dryRun) {
    log.log("info", "uninstall", `Would remove ${path}`, { event: "would_remove", path });
    return 1;
  }
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    // EBUSY arrives as a plain Error with code "EBUSY" (Deno has no class for it on remove).
    if (error instanceof Deno.errors.Busy || (error as { code?: string }).code === "EBUSY") {
      throw new UninstallError([
        `Cannot remove ${path}: it is still mounted (systemctl stop run-secrets.mount, then again)`,
      ]);
    }
    throw error;
  }
  if (!quiet) log.log("info", "uninstall", `Removed ${path}`, { event: "removed", path });
  return 1;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/** Whether `path` is on another file system than its parent: a mount point. */
async function isMountPoint(path: string): Promise<boolean> {
  const [here, parent] = await Promise.all([Deno.stat(path), Deno.stat(dirname(path))]).catch(
    () => [undefined, undefined],
  );
  return here !== undefined && parent !== undefined && here.dev !== parent.dev;
}

async function isSymlink(path: string): Promise<boolean> {
  return await Deno.lstat(path).then((info) => info.isSymlink, () => false);
}

/** Whether `path` is a directory itself (not a symlink to one). */
async function isRealDirectory(path: string): Promise<boolean> {
  return await Deno.lstat(path).then((info) => info.isDirectory, () => false);
}

async function isDirectory(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isDirectory, () => false);
}

function explainError(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) {
    return `${error.message}: run uninstall as root (sudo secretsync uninstall)`;
  }
  if (error instanceof UninstallError) return error.message;
  return explainNotCapable(error);
}
