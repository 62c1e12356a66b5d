/**
 * `secretsync install`: puts the binary, the systemd units and the config directory in place,
 * then enables the timer. Copy one file onto a host, run `secretsync install`, done.
 *
 * Idempotent: a file already as it should be is left alone (same inode), a user's map is never
 * overwritten, and a second run changes nothing. Steps run in order and stop at the first
 * failure, since each one relies on the one before.
 *
 * Requires `--allow-read`/`--allow-write` for the three directories and the binary's path, and
 * `--allow-run=systemctl` unless `--no-enable`.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { COMMANDER_ERROR_OUTPUT, createLogger, type Logger } from "../log.ts";
import { dirname } from "../paths.ts";
import { systemctlOutcome } from "../host/systemctl.ts";
import { detectRuntime, type RuntimeName } from "../reload/runtime.ts";
import { accessProblems, explainNotCapable } from "../permissions.ts";
import {
  binaryTempOf,
  DEFAULT_CONFIG_DIR,
  DEFAULT_PREFIX_BIN,
  DEFAULT_SYSTEMD_DIR,
  ENV_FILE_NAME,
  INSTALLED_UNITS,
  renderUnits,
  UNITS_TO_ENABLE,
} from "../units.ts";
import { atomicWrite, fileChange, UnsafePathError } from "../write.ts";
import { ownershipProblem } from "../ownership.ts";
import { oneLine } from "../text.ts";
import { unitPathOption, validateOptions } from "./usage.ts";

/** Parsed options of `secretsync install`. */
export interface InstallOptions {
  /** Directory the binary is copied into, as `secretsync`. */
  prefixBin: string;
  /** Directory the units are written into. */
  systemdDir: string;
  /** Directory holding map.csv. */
  configDir: string;
  /** Run `systemctl daemon-reload` and `systemctl enable --now …`. */
  enable: boolean;
  /** Say what would change; change nothing. */
  dryRun: boolean;
  /** Which service variant to write: for the runtime that answers (`auto`), or this one. */
  runtime: "auto" | RuntimeName;
}

/** What {@linkcode runInstall} talks to; tests replace parts of it. */
export interface InstallDeps {
  log: Logger;
  /** Whether this process is a `deno compile`d binary. @default Deno.build.standalone */
  standalone: boolean;
  /** The running executable. @default Deno.execPath() */
  execPath: string;
  /** Runs `systemctl <args>`; resolves to its exit code and output. */
  systemctl(args: string[]): Promise<{ code: number; output: string }>;
  /** The container runtime that answers on this host (docker first), if any. */
  detectRuntime(): Promise<RuntimeName | undefined>;
}

const UNIT_MODE = 0o644;
const BINARY_MODE = 0o755;
const MAP_MODE = 0o644;
const CONFIG_DIR_MODE = 0o755;

/**
 * The map written when none exists: comments only, so the timer's first runs succeed with
 * nothing to do. Each example line is valid once uncommented.
 */
export const EXAMPLE_MAP = `# secretsync map: which OCI Vault secret goes to which file.
# One secret per line:  ocid,path,mode,target,reload[,owner[,options]]
#   ocid       the secret's OCID (ocid1.vaultsecret....)
#   path       where to write it, inside /run/secrets
#   mode       file mode, 0600 when empty; never group- or world-writable
#   target     optional: what to reload when the file changes: a docker/podman container
#              name, unit:NAME.service or pidfile:/path (the original tool's "container")
#   reload     optional: a signal (HUP, USR1, ...) or a recipe name (the original's "signal")
#   owner      optional: numeric uid:gid of the file
#   options    optional: nocheck skips the PEM checks (for a file that only looks like PEM)
#
# Examples: remove the leading "# " to use one.
# ocid1.vaultsecret.oc1.iad.exampledbpassword,/run/secrets/db_password,0600,myapp,HUP
# ocid1.vaultsecret.oc1.iad.exampleapikey,/run/secrets/api_key,0400,,
#
# Then: secretsync check && systemctl start oci-secretsync.service
`;

/**
 * The service's environment file written when none exists: every setting commented out.
 * `SECRETSYNC_ARGS` is appended to the service's `sync` command line.
 */
export const EXAMPLE_ENV =
  `# Environment of oci-secretsync.service (read by systemd, not by a shell). Keep it root's, 0644.
# SECRETSYNC_ARGS is appended to the service's command line:
#   secretsync sync --map /etc/oci-secretsync/map.csv --runtime <runtime> $SECRETSYNC_ARGS
# Words are split on spaces; quotes keep a word whole: --profile "my profile".
# After a change nothing needs reloading: the next run reads it.
#
# Examples: remove the leading "# " to use one.
# SECRETSYNC_ARGS=--auth api_key --profile DEFAULT
# SECRETSYNC_ARGS=--concurrency 4 --timeout 60 --json
`;

const dir = unitPathOption;

const installSchema = z.object({
  prefixBin: dir("--prefix-bin"),
  systemdDir: dir("--systemd-dir"),
  configDir: dir("--config-dir"),
  enable: z.boolean(),
  dryRun: z.boolean(),
  runtime: z.enum(["auto", "docker", "podman"], {
    error: (issue) => `--runtime "${issue.input}" must be auto, docker or podman`,
  }),
});

/** Declares `install` and its flags. */
export function installCommand(): Command {
  return new Command("install")
    .description(
      "Install this binary, the systemd units and /etc/oci-secretsync, then enable the timer",
    )
    .option("--prefix-bin <dir>", "where the binary goes, as secretsync", DEFAULT_PREFIX_BIN)
    .option("--systemd-dir <dir>", "where the units go", DEFAULT_SYSTEMD_DIR)
    .option("--config-dir <dir>", "where map.csv lives", DEFAULT_CONFIG_DIR)
    .option("--no-enable", "do not run systemctl daemon-reload and enable --now")
    .option("--dry-run", "say what would change; change nothing", false)
    .option(
      "--runtime <name>",
      "service variant: auto (the runtime that answers), docker or podman",
      "auto",
    )
    .addHelpText(
      "after",
      "\nExample: secretsync install --dry-run && secretsync install\n" +
        '\nA compiled secretsync may only write the default directories; see README, "Permissions".',
    );
}

/** Parses `install` arguments into options; throws UsageError on bad input. */
export function parseInstallArgs(args: string[]): InstallOptions {
  const command = installCommand().exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT);
  command.parse(args, { from: "user" });
  return validateOptions(installSchema, command.opts());
}

/** Counts what an install changed, for the closing line. */
interface Tally {
  changed: number;
  unchanged: number;
}

/** A step failed; the messages say what to do. */
class InstallError extends Error {
  constructor(readonly messages: string[], readonly exitCode: 1 | 2 = 1) {
    super(messages.join("; "));
    this.name = "InstallError";
  }
}

/**
 * Runs `install`; returns the exit code: 0 done (or nothing to do), 1 a step failed, 2 a path
 * this build may not use.
 */
export async function runInstall(
  options: InstallOptions,
  deps: Partial<InstallDeps> = {},
): Promise<number> {
  const log = deps.log ?? createLogger();
  const full: InstallDeps = {
    log,
    standalone: deps.standalone ?? Deno.build.standalone,
    execPath: deps.execPath ?? Deno.execPath(),
    systemctl: deps.systemctl ?? systemctlOutcome,
    detectRuntime: deps.detectRuntime ?? answeringRuntime,
  };
  const tally: Tally = { changed: 0, unchanged: 0 };
  try {
    preflight(options);
    // Everything is checked before anything changes: a refused install leaves the host as it was.
    const problems = await installProblems(options, full);
    if (problems.length > 0) throw new InstallError(problems);
    await installBinary(options, full, tally);
    const runtime = await chooseRuntime(options, full);
    const units = renderUnits(options, runtime);
    for (const name of INSTALLED_UNITS) {
      await installFile(
        `${options.systemdDir}/${name}`,
        units[name],
        UNIT_MODE,
        options,
        full,
        tally,
      );
    }
    await installConfig(options, full, tally);
    await enableUnits(options, full);
  } catch (error) {
    const failure = error instanceof InstallError ? error : new InstallError([explain(error)]);
    for (const message of failure.messages) {
      log.log("error", "install", message, { event: "install_failed" });
    }
    return failure.exitCode;
  }
  const summary = options.dryRun
    ? `Dry run: ${tally.changed} would change, ${tally.unchanged} already in place`
    : `Installed: ${tally.changed} changed, ${tally.unchanged} already in place`;
  log.log("info", "install", summary, {
    event: options.dryRun ? "install_dry_run" : "installed",
    changed: tally.changed,
    unchanged: tally.unchanged,
  });
  return 0;
}

/** Every path install touches must be within this build's permissions: say which is not. */
function preflight(options: InstallOptions): void {
  const units = INSTALLED_UNITS.map((name) => `${options.systemdDir}/${name}`);
  const binary = `${options.prefixBin}/secretsync`;
  const map = `${options.configDir}/map.csv`;
  const env = `${options.configDir}/${ENV_FILE_NAME}`;
  const config = [options.configDir, map, env];
  const problems = accessProblems({
    read: [binary, ...units, ...config],
    write: options.dryRun ? [] : [binary, binaryTempOf(options.prefixBin), ...units, ...config],
  });
  if (problems.length > 0) throw new InstallError(problems, 2);
}

/**
 * What would make the install fail half-way, found before anything changes: each directory
 * must exist (the config directory, or its parent), be a directory, belong to root or the
 * running user and be writable by nobody else (the binary, units and map there decide what root
 * runs); each file to replace must be a regular file; systemctl must run when units are enabled.
 */
async function installProblems(options: InstallOptions, deps: InstallDeps): Promise<string[]> {
  const problems: string[] = [];
  const directory = async (path: string, flag: string, hint = "") => {
    // A release build may not read /usr/local/bin itself, only its own file there: a
    // directory this build cannot examine is not checked (preflight() has already refused
    // every path it may not write).
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return;
    const info = await Deno.stat(path).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    });
    if (!info?.isDirectory) {
      problems.push(`Cannot install: ${flag} "${path}" is not an existing directory${hint}`);
      return;
    }
    const why = ownershipProblem(info, { owners: "root-or-self" });
    if (why) problems.push(`Cannot install: ${flag} "${path}" cannot be used: ${why}`);
  };
  await directory(options.prefixBin, "--prefix-bin");
  await directory(options.systemdDir, "--systemd-dir", " (is this a systemd host?)");
  const config = await Deno.lstat(options.configDir).catch(() => undefined);
  if (config) await directory(options.configDir, "--config-dir");
  else await directory(dirname(options.configDir), "the parent of --config-dir");

  const files = [
    ...(deps.standalone && deps.execPath !== `${options.prefixBin}/secretsync`
      ? [`${options.prefixBin}/secretsync`]
      : []),
    ...INSTALLED_UNITS.map((name) => `${options.systemdDir}/${name}`),
  ];
  for (const file of files) {
    const info = await Deno.lstat(file).catch(() => undefined);
    if (info && !info.isFile) {
      problems.push(`Cannot install: ${file} exists and is not a regular file (a symlink?)`);
    }
  }
  // The map and secretsync.env are kept, not replaced: they must already be safe. The env file
  // sets the flags and the environment (PATH, LD_PRELOAD, …) of a service running as root, and
  // systemd checks neither its owner nor its mode.
  if (config && (await Deno.stat(options.configDir).then((i) => i.isDirectory, () => false))) {
    for (const name of ["map.csv", ENV_FILE_NAME]) {
      const file = `${options.configDir}/${name}`;
      const info = await Deno.lstat(file).catch(() => undefined);
      if (!info) continue;
      if (!info.isFile) {
        problems.push(`Cannot install: ${file} exists and is not a regular file (a symlink?)`);
        continue;
      }
      const why = ownershipProblem(info, { owners: "root-or-self" });
      if (why) {
        problems.push(
          `Cannot install: ${file} cannot be used: ${why} (root runs what it says; ` +
            `chown root:root and chmod 0644 it)`,
        );
      }
    }
  }

  if (options.enable && !options.dryRun && problems.length === 0) {
    // Asks the running systemd, read-only: `systemctl --version` answers even where systemd
    // is not PID 1 (a container, a chroot), and daemon-reload would then fail after the files
    // were written.
    const probeArgs = ["show", "--property=Version"];
    const probeLine = `systemctl ${probeArgs.join(" ")}`;
    try {
      const probe = await deps.systemctl(probeArgs);
      if (probe.code !== 0) {
        problems.push(
          `Cannot install: "${probeLine}" failed (exit code ${probe.code}): ` +
            `${oneLine(probe.output) || "no output"} (use --no-enable on a host without systemd)`,
        );
      }
    } catch (error) {
      problems.push(`Cannot run ${probeLine}: ${systemctlFailure(error)}`);
    }
  }
  return problems;
}

/** Why systemctl could not be started. */
function systemctlFailure(error: unknown): string {
  const notFound = error instanceof Deno.errors.NotFound ||
    (error instanceof Error && error.cause instanceof Deno.errors.NotFound);
  return notFound
    ? "systemctl is not on PATH (is this a systemd host? use --no-enable)"
    : explain(error);
}

async function installBinary(options: InstallOptions, deps: InstallDeps, tally: Tally) {
  const { log } = deps;
  const target = `${options.prefixBin}/secretsync`;
  if (!deps.standalone) {
    const exists = await Deno.lstat(target).then(() => true, () => false);
    log.log(
      "warn",
      "install",
      `Running from source (deno run), so there is no binary to copy to ${target}; skipped. ` +
        "Build one with `deno task compile` and run its `install`" +
        (exists ? "." : `; until then the service's ExecStart=${target} does not exist.`),
      { event: "binary_skipped", path: target },
    );
    return;
  }
  if (deps.execPath === target) {
    log.log("info", "install", `${target} is this binary already`, {
      event: "unchanged",
      path: target,
    });
    tally.unchanged++;
    return;
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(deps.execPath);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    throw new InstallError([
      `Cannot copy ${deps.execPath} to ${target}: this build may not read its own file there. ` +
      `Copy it yourself and install from the copy: ` +
      `install -m 0755 ${deps.execPath} ${target} && ${target} install`,
    ]);
  }
  if (await unchanged(target, bytes, BINARY_MODE)) {
    log.log("info", "install", `${target} is up to date`, { event: "unchanged", path: target });
    tally.unchanged++;
    return;
  }
  tally.changed++;
  if (options.dryRun) {
    log.log("info", "install", `Would copy ${deps.execPath} to ${target}`, {
      event: "would_write",
      path: target,
    });
    return;
  }
  await replaceFile(target, binaryTempOf(options.prefixBin), bytes, BINARY_MODE);
  log.log("info", "install", `Copied ${deps.execPath} to ${target}`, {
    event: "wrote",
    path: target,
  });
}

async function installFile(
  path: string,
  text: string,
  mode: number,
  options: InstallOptions,
  deps: InstallDeps,
  tally: Tally,
): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  if (await unchanged(path, bytes, mode)) {
    deps.log.log("info", "install", `${path} is up to date`, { event: "unchanged", path });
    tally.unchanged++;
    return;
  }
  tally.changed++;
  if (options.dryRun) {
    deps.log.log("info", "install", `Would write ${path}`, { event: "would_write", path });
    return;
  }
  const temp = `${dirname(path)}/.${path.slice(dirname(path).length + 1)}.secretsync-install.tmp`;
  await replaceFile(path, temp, bytes, mode);
  deps.log.log("info", "install", `Wrote ${path}`, { event: "wrote", path });
}

async function installConfig(options: InstallOptions, deps: InstallDeps, tally: Tally) {
  const { log } = deps;
  const { configDir } = options;
  const map = `${configDir}/map.csv`;
  const dirInfo = await Deno.lstat(configDir).catch(() => undefined);
  if (dirInfo && !dirInfo.isDirectory) {
    throw new InstallError([`Cannot install: "${configDir}" exists and is not a directory`]);
  }
  if (!dirInfo) {
    tally.changed++;
    if (options.dryRun) {
      log.log("info", "install", `Would create ${configDir}`, {
        event: "would_create",
        path: configDir,
      });
    } else {
      await Deno.mkdir(configDir, { mode: CONFIG_DIR_MODE }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        throw new InstallError([`Cannot create ${configDir}: its parent directory does not exist`]);
      });
      await Deno.chmod(configDir, CONFIG_DIR_MODE); // mkdir's mode is reduced by the umask
      log.log("info", "install", `Created ${configDir}`, { event: "created", path: configDir });
    }
  }
  await writeExample(map, EXAMPLE_MAP, "add your secrets to it", !!dirInfo, options, deps, tally);
  await writeExample(
    `${configDir}/${ENV_FILE_NAME}`,
    EXAMPLE_ENV,
    "extra flags for the service go there",
    !!dirInfo,
    options,
    deps,
    tally,
  );
}

/** Writes an example config file unless one exists: a user's file is never replaced. */
async function writeExample(
  path: string,
  text: string,
  hint: string,
  dirExists: boolean,
  options: InstallOptions,
  deps: InstallDeps,
  tally: Tally,
): Promise<void> {
  const { log } = deps;
  const info = dirExists ? await Deno.lstat(path).catch(() => undefined) : undefined;
  if (info) {
    log.log("info", "install", `Kept the existing ${path}`, { event: "unchanged", path });
    tally.unchanged++;
    return;
  }
  tally.changed++;
  if (options.dryRun) {
    log.log("info", "install", `Would write an example ${path}`, { event: "would_write", path });
    return;
  }
  // createNew: if a file appeared since the check, it is the user's and stays.
  const file = await Deno.open(path, { write: true, createNew: true, mode: MAP_MODE });
  try {
    await file.write(new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.chmod(path, MAP_MODE);
  log.log("info", "install", `Wrote an example ${path}: ${hint}`, { event: "wrote", path });
}

/** The runtime whose service variant to write: the chosen one, or the one that answers. */
async function chooseRuntime(options: InstallOptions, deps: InstallDeps): Promise<RuntimeName> {
  if (options.runtime !== "auto") {
    deps.log.log("info", "install", `Service for ${options.runtime} (--runtime)`, {
      event: "runtime",
      runtime: options.runtime,
    });
    return options.runtime;
  }
  const found = await deps.detectRuntime();
  if (found) {
    deps.log.log("info", "install", `Service for ${found}: it answers on this host`, {
      event: "runtime",
      runtime: found,
    });
    return found;
  }
  deps.log.log(
    "warn",
    "install",
    "Neither docker nor podman answers: writing the docker service (the strictest sandbox; " +
      "enough for unit: and pidfile: targets). For podman containers: install --runtime podman",
    { event: "runtime", runtime: "docker" },
  );
  return "docker";
}

async function answeringRuntime(): Promise<RuntimeName | undefined> {
  try {
    return (await detectRuntime("auto")).name;
  } catch {
    // Neither answered: the caller says so and picks the strictest variant.
    return undefined;
  }
}

async function enableUnits(options: InstallOptions, deps: InstallDeps): Promise<void> {
  const calls = [["daemon-reload"], ["enable", "--now", ...UNITS_TO_ENABLE]];
  // A sandbox change (another runtime's variant) applies at the next start of the oneshot
  // service; nothing to restart.
  if (!options.enable) {
    deps.log.log(
      "info",
      "install",
      `Not enabling (--no-enable); to start: systemctl daemon-reload && systemctl enable --now ${
        UNITS_TO_ENABLE.join(" ")
      }`,
      { event: "enable_skipped" },
    );
    return;
  }
  for (const args of calls) {
    const line = `systemctl ${args.join(" ")}`;
    if (options.dryRun) {
      deps.log.log("info", "install", `Would run ${line}`, { event: "would_run", command: line });
      continue;
    }
    let result: { code: number; output: string };
    try {
      result = await deps.systemctl(args);
    } catch (error) {
      throw new InstallError([`Cannot run ${line}: ${systemctlFailure(error)}`]);
    }
    if (result.code !== 0) {
      throw new InstallError([
        `${line} failed (exit code ${result.code}): ${oneLine(result.output) || "no output"}`,
      ]);
    }
    deps.log.log("info", "install", `Ran ${line}`, { event: "ran", command: line });
  }
}

/** Whether `path` already holds exactly `bytes` with `mode`; a missing file is a change. */
async function unchanged(path: string, bytes: Uint8Array, mode: number): Promise<boolean> {
  return (await fileChange(path, bytes, { mode })) === "none";
}

/**
 * Replaces `path` with `bytes` through `temp` in the same directory ({@linkcode atomicWrite}).
 * A running binary can be replaced this way (no ETXTBSY).
 */
async function replaceFile(path: string, temp: string, bytes: Uint8Array, mode: number) {
  try {
    await atomicWrite(path, bytes, { mode }, { temp });
  } catch (error) {
    const dirMissing = error instanceof Deno.errors.NotFound &&
      !(await Deno.lstat(dirname(path)).then(() => true, () => false));
    if (!dirMissing) throw error;
    throw new InstallError([`Cannot write ${path}: the directory ${dirname(path)} does not exist`]);
  }
}

function explain(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) {
    return `${error.message}: run install as root (sudo secretsync install)`;
  }
  if (error instanceof UnsafePathError || error instanceof InstallError) return error.message;
  return explainNotCapable(error);
}
