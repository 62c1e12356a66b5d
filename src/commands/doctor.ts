/**
 * `secretsync doctor`: checks a host's set-up and prints one line per check — ok, WARN or
 * FAIL, and what to do. The map is valid and safely owned; each root is a tmpfs with safe
 * permissions; the container runtime answers; each named container exists and mounts the
 * root's directory (never a single file); authentication works (one secret fetched, its
 * version shown, never its value); certificates are not about to expire; the timer is enabled.
 *
 * Takes every `sync` flag (given by `cli.ts`, so the two cannot drift). Exit 1 when any check
 * fails, 0 otherwise (warnings included), 2 on a usage error.
 *
 * @module
 */
import { Command, type Option } from "commander";
import {
  certificateChecks,
  type CheckResult,
  containerMountCheck,
  doctorExitCode,
  formatCheck,
  ownershipCheck,
  rootCheck,
  timerCheck,
} from "../doctor.ts";
import { loadMap, openRecipes } from "../inputs.ts";
import { COMMANDER_ERROR_OUTPUT, type Logger } from "../log.ts";
import type { Entry } from "../map.ts";
import { mountOf } from "../mounts.ts";
import { basename, dirname } from "../paths.ts";
import { targetLabel } from "../plan.ts";
import { detectRuntime } from "../reload/runtime.ts";
import { directoryProblems } from "../roots.ts";
import { fetchKey, referenceOf } from "../reference.ts";
import { readSchedule } from "../schedule.ts";
import { readState } from "../state.ts";
import { messageOf } from "../sync.ts";
import { readTimer } from "../timer.ts";
import { openVault, VaultError } from "../vault/mod.ts";
import type { RunFlags } from "./usage.ts";

/** Parsed options of `secretsync doctor`: sync's, of which it uses the inputs and auth. */
export interface DoctorOptions {
  run: RunFlags;
}

/** Sync flags that mean nothing to doctor, left out of its help. */
const NOT_FOR_DOCTOR = ["--dry-run", "--concurrency", "--lock-timeout", "--metrics-file"];

/** Declares `doctor`: sync's flags (given by the caller), minus those it does not use. */
export function doctorCommand(syncOptions: readonly Option[] = []): Command {
  const command = new Command("doctor")
    .description(
      "Check the set-up: map, tmpfs roots, runtime, container mounts, auth, certificates, timer",
    )
    .addHelpText(
      "after",
      `
Exit codes: 0 every check ok (warnings allowed), 1 some check failed, 2 usage error.

Example:
  secretsync doctor --map /etc/oci-secretsync/map.csv
  ok   map /etc/oci-secretsync/map.csv: valid: 3 files, 3 secrets, 1 reload target
  FAIL container web: mounts /run/secrets/tls.key (at /etc/nginx/tls.key) as a single file: …`,
    );
  for (const option of syncOptions) {
    if (!NOT_FOR_DOCTOR.includes(option.long ?? "")) command.addOption(option);
  }
  return command;
}

/** Parses `doctor` arguments with sync's parser; throws UsageError on bad input. */
export function parseDoctorArgs(
  args: string[],
  parseSyncArgs: (args: string[]) => RunFlags,
  syncOptions: readonly Option[] = [],
): DoctorOptions {
  // Parsed once by doctor's own declaration, for --help and flags it does not take.
  doctorCommand(syncOptions).exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT).parse(args, {
    from: "user",
  });
  return { run: parseSyncArgs(args) };
}

/** Runs every check, printing each as it completes; returns the exit code. */
export async function runDoctor(options: DoctorOptions): Promise<number> {
  const flags = options.run;
  const results: CheckResult[] = [];
  const emit = (result: CheckResult) => {
    results.push(result);
    console.log(flags.json ? JSON.stringify(result) : formatCheck(result));
  };

  // The map, through the same loader as sync, its messages gathered into one line.
  const problems: string[] = [];
  const gather: Logger = {
    log: (level, _component, message) => {
      if (level === "error") problems.push(message);
    },
  };
  const recipes = await openRecipes(flags.recipesDir, gather);
  const entries = recipes ? await loadMap(flags, gather, recipes) : undefined;
  const mapSubject = `map ${flags.map}`;
  if (entries) {
    const secrets = new Set(entries.map((e) => e.secretId)).size;
    const targets = new Set(entries.flatMap((e) => e.target ? [targetLabel(e.target)] : [])).size;
    emit({
      level: "ok",
      subject: mapSubject,
      message: `valid: ${entries.length} files, ${secrets} secrets, ${targets} reload targets`,
    });
  } else {
    emit({
      level: "fail",
      subject: mapSubject,
      message: problems.join("; ") || "cannot be used",
      fix: "fix the lines named; `secretsync check` lists every problem",
    });
  }
  try {
    const info = await Deno.lstat(flags.map);
    emit(ownershipCheck("map owner", flags.map, info, Deno.uid()));
  } catch {
    // Missing or unreadable: the map line above already failed and said why.
  }

  for (const root of flags.roots) {
    const unusable = await directoryProblems([root], "Root");
    const mount = unusable.length > 0
      ? new Error("not checked")
      : await mountOf(root).catch((error: Error) => error);
    emit(rootCheck(root, unusable, mount));
  }
  emit(await stateDirCheck(flags.stateDir));

  if (entries) {
    await containerChecks(entries, flags, emit);
    if (entries.length > 0) emit(await authCheck(entries[0], flags));
  }

  const { state } = await readState(flags.stateDir);
  const certificates = Object.entries(state.entries ?? {}).flatMap(([path, e]) =>
    e.notAfter ? [{ path, notAfter: new Date(e.notAfter) }] : []
  );
  for (const result of certificateChecks(certificates, new Date())) emit(result);

  const { schedule } = await readSchedule(flags.stateDir);
  const timer = timerCheck(await readTimer());
  if (timer.level !== "ok" && schedule && !schedule.stoppedAt) {
    emit({
      level: "ok",
      subject: "schedule",
      message: `secretsync watch (pid ${schedule.pid}) runs the syncs; next at ${
        schedule.nextCycleAt ?? "unknown"
      }`,
    });
  } else {
    emit(timer);
  }
  return doctorExitCode(results);
}

async function stateDirCheck(stateDir: string): Promise<CheckResult> {
  const subject = `state directory ${stateDir}`;
  try {
    await Deno.lstat(stateDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { level: "ok", subject, message: "not there yet; the first run creates it (0700)" };
    }
  }
  const problems = await directoryProblems([stateDir], "State directory");
  return problems.length > 0
    ? {
      level: "fail",
      subject,
      message: problems.join("; "),
      fix: `chown root: ${stateDir} && chmod 0700 ${stateDir}`,
    }
    : { level: "ok", subject, message: "safe owner and mode" };
}

/** The runtime, then each container's mounts against the files it is reloaded for. */
async function containerChecks(
  entries: readonly Entry[],
  flags: RunFlags,
  emit: (result: CheckResult) => void,
): Promise<void> {
  const byContainer = new Map<string, string[]>();
  for (const entry of entries) {
    if (entry.target?.kind !== "container") continue;
    byContainer.set(entry.target.name, [
      ...(byContainer.get(entry.target.name) ?? []),
      entry.path,
    ]);
  }
  if (byContainer.size === 0) return;
  let runtime;
  try {
    runtime = await detectRuntime(flags.runtime);
    emit({ level: "ok", subject: "runtime", message: `${runtime.name} answers` });
  } catch (error) {
    emit({
      level: "fail",
      subject: "runtime",
      message: messageOf(error),
      fix: "start the container engine, or choose one with --runtime docker|podman",
    });
    return;
  }
  for (const [name, paths] of byContainer) {
    try {
      const mounts = await runtime.mounts(name);
      emit(containerMountCheck(name, await Promise.all(paths.map(hostPath)), mounts));
    } catch (error) {
      emit({ level: "fail", subject: `container ${name}`, message: messageOf(error) });
    }
  }
}

/** The path as a container engine records it: symlinks in its directory resolved. */
async function hostPath(path: string): Promise<string> {
  try {
    return `${await Deno.realPath(dirname(path))}/${basename(path)}`;
  } catch {
    return path; // the directory does not exist yet: compare the path as written
  }
}

/** Authenticates and fetches one secret; reports its version, never its value. */
async function authCheck(entry: Entry, flags: RunFlags): Promise<CheckResult> {
  const subject = `auth ${flags.auth.mode}`;
  let source;
  try {
    source = await openVault({
      auth: flags.auth,
      region: flags.region,
      endpoint: flags.endpoint,
      stage: flags.stage,
      timeoutMs: flags.requestTimeoutMs,
      signal: AbortSignal.timeout(flags.timeoutMs),
      maxBytes: flags.maxBytes,
      rate: flags.rate,
    });
    // As sync asks for it: a bare OCID as itself, a name or a pinned version with its query.
    const query = referenceOf(entry);
    const label = fetchKey({ secret: query.secret, version: query.version });
    const { version } = "ocid" in query.secret && !query.version
      ? await source.fetch(label)
      : await source.fetch(label, { secret: query.secret, version: query.version });
    return {
      level: "ok",
      subject,
      message: `fetched ${entry.secretId} (${flags.stage}): version ${version}`,
    };
  } catch (error) {
    const reason = error instanceof VaultError ? error.reason : messageOf(error);
    return {
      level: "fail",
      subject,
      message: `cannot fetch ${entry.secretId}: ${reason}`,
      fix: flags.auth.mode === "instance_principal"
        ? "check the dynamic group and the policy `allow dynamic-group … to read secret-bundles`"
        : "check the OCI config profile and the user's policy",
    };
  } finally {
    source?.close();
  }
}
