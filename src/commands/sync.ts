/**
 * `secretsync sync`: one pass of map → OCI Vault → files → reloads.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { acquireRunLock, type RunLock } from "../lock.ts";
import { createLogger, type Logger } from "../log.ts";
import type { Entry } from "../map.ts";
import { dirname, isNormalizedAbsolute } from "../paths.ts";
import { accessProblems } from "../permissions.ts";
import type { RecipeRegistry } from "../recipes.ts";
import { directoryProblems } from "../roots.ts";
import { readState, writeState } from "../state.ts";
import { removeStaleTempFiles } from "../write.ts";
import { createReloader } from "../reload/reloader.ts";
import { detectRuntime } from "../reload/runtime.ts";
import { exitCodeOf, messageOf, sync } from "../sync.ts";
import { openVault, type SecretSource, type VaultAuth } from "../vault/mod.ts";
import { DEFAULT_MAP, loadMap } from "./check.ts";
import { openRecipes } from "./recipe.ts";
import { collect, rootsSchema, validateOptions } from "./usage.ts";

/** Parsed options of `secretsync sync`. */
export interface SyncOptions {
  map: string;
  roots: string[];
  auth: VaultAuth;
  region?: string;
  endpoint?: string;
  runtime: "auto" | "docker" | "podman";
  concurrency: number;
  stage: string;
  dryRun: boolean;
  json: boolean;
  /** Whole-run deadline for talking to OCI, in milliseconds. */
  timeoutMs: number;
  /** Per-request timeout, in milliseconds. */
  requestTimeoutMs: number;
  /** Largest secret accepted, in bytes. */
  maxBytes: number;
  /** Where the run lock and pending reloads live. */
  stateDir: string;
  /** How long to wait for another run to finish, in milliseconds. */
  lockTimeoutMs: number;
  /** `--recipes-dir` when given; else the default directory, which may be missing. */
  recipesDir?: string;
  /** `--rate`: vault requests per second at most; none when not given. */
  rate?: number;
}

const STAGES = ["CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"];
const DEFAULT_IMDS = "http://169.254.169.254/opc/v2/";
const DEFAULT_STATE_DIR = "/run/oci-secretsync";

const url = (flag: string) =>
  z.string().refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
    error: (issue) => `${flag} "${issue.input}" must be an http(s) URL`,
  });
const positiveInt = (flag: string, max: number) =>
  z.string().regex(/^\d+$/, `${flag} must be a whole number`).transform(Number).pipe(
    z.number().int().min(1, `${flag} must be at least 1`).max(
      max,
      `${flag} must be at most ${max}`,
    ),
  );

const syncSchema = z
  .object({
    map: z.string().min(1, "--map must name a file"),
    roots: rootsSchema,
    auth: z.string().transform((s) => s.replaceAll("-", "_")).pipe(
      z.enum(["instance_principal", "api_key"], "--auth must be instance_principal or api_key"),
    ),
    ociConfig: z.string().min(1).optional(),
    profile: z.string().min(1, "--profile must not be empty"),
    region: z.string().regex(/^[a-z0-9-]+$/, "--region must look like us-ashburn-1").optional(),
    endpoint: url("--endpoint").optional(),
    imdsUrl: url("--imds-url"),
    authEndpoint: url("--auth-endpoint").optional(),
    runtime: z.enum(["auto", "docker", "podman"], "--runtime must be auto, docker or podman"),
    concurrency: positiveInt("--concurrency", 64),
    stage: z.string().transform((s) => s.toUpperCase()).refine(
      (s) => STAGES.includes(s) || /^[1-9]\d{0,9}$/.test(s),
      {
        error: (issue) =>
          `--stage "${issue.input}" must be ${STAGES.join(", ")} or a version number`,
      },
    ),
    dryRun: z.boolean(),
    json: z.boolean(),
    timeout: positiveInt("--timeout", 3600),
    requestTimeout: positiveInt("--request-timeout", 600),
    maxSize: positiveInt("--max-size", 25 * 1024 * 1024),
    stateDir: z.string().refine(
      isNormalizedAbsolute,
      "--state-dir must be an absolute, normalized path",
    ),
    lockTimeout: positiveInt("--lock-timeout", 3600),
    recipesDir: z.string().min(1, "--recipes-dir must name a directory").optional(),
    rate: z.string().regex(
      /^\d{1,6}(\.\d{1,3})?$/,
      "--rate must be a number of requests per second",
    )
      .transform(Number).pipe(z.number().positive("--rate must be more than 0")).optional(),
  })
  .transform((o): SyncOptions => ({
    map: o.map,
    roots: o.roots,
    auth: o.auth === "api_key"
      ? { mode: "api_key", configFile: o.ociConfig ?? defaultOciConfig(), profile: o.profile }
      : { mode: "instance_principal", imdsUrl: o.imdsUrl, authEndpoint: o.authEndpoint },
    region: o.region,
    endpoint: o.endpoint,
    runtime: o.runtime,
    concurrency: o.concurrency,
    stage: o.stage,
    dryRun: o.dryRun,
    json: o.json,
    timeoutMs: o.timeout * 1000,
    requestTimeoutMs: o.requestTimeout * 1000,
    maxBytes: o.maxSize,
    stateDir: o.stateDir,
    lockTimeoutMs: o.lockTimeout * 1000,
    recipesDir: o.recipesDir,
    ...(o.rate !== undefined ? { rate: o.rate } : {}),
  }));

function defaultOciConfig(): string {
  return `${Deno.env.get("HOME") ?? ""}/.oci/config`;
}

/** Declares `sync` and its flags. */
export function syncCommand(): Command {
  return new Command("sync")
    .description("Fetch every secret in the map, write changed files, reload their containers")
    .option("--map <file>", "map file", DEFAULT_MAP)
    .option(
      "--root <dir>",
      "directory secrets may be written in (repeatable) (default: /run/secrets)",
      collect,
      [],
    )
    .option("--auth <mode>", "instance_principal or api_key", "instance_principal")
    .option("--oci-config <file>", "OCI config file for api_key (default: ~/.oci/config)")
    .option("--profile <name>", "profile in the OCI config file", "DEFAULT")
    .option(
      "--region <id>",
      "OCI region, e.g. eu-frankfurt-1 (default: from the instance or config)",
    )
    .option("--endpoint <url>", "Secrets service endpoint (default: from the region)")
    .option("--imds-url <url>", "instance metadata service base URL", DEFAULT_IMDS)
    .option(
      "--auth-endpoint <url>",
      "federation endpoint for instance principals (default: from the region)",
    )
    .option("--runtime <name>", "auto, docker or podman", "auto")
    .option("--concurrency <n>", "secrets fetched at once", "8")
    .option("--stage <stage>", `${STAGES.join(", ")} or a version number`, "CURRENT")
    .option("--timeout <seconds>", "deadline for all OCI requests of the run", "45")
    .option("--request-timeout <seconds>", "deadline for one OCI request", "10")
    .option("--max-size <bytes>", "largest secret accepted", "65536")
    .option(
      "--state-dir <dir>",
      "where the run lock and pending reloads are kept",
      DEFAULT_STATE_DIR,
    )
    .option("--lock-timeout <seconds>", "how long to wait for another run to finish", "60")
    .option(
      "--recipes-dir <dir>",
      "directory of user recipe files (default: /etc/oci-secretsync/recipes.d)",
    )
    .option(
      "--rate <n>",
      "vault requests per second at most (a 429 from the vault slows the run down further)",
    )
    .option("--dry-run", "fetch and compare, but write and reload nothing", false)
    .option("--json", "one JSON object per line", false);
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
  const recipes = await openRecipes(options.recipesDir, log);
  if (!recipes) return 2;
  const entries = await loadMap(options, log, recipes);
  if (!entries) return 2;
  const denied = accessProblems({
    write: options.dryRun ? [] : [...options.roots, options.stateDir],
    read: options.auth.mode === "api_key" && options.auth.configFile
      ? [options.auth.configFile]
      : [],
    net: [
      options.endpoint,
      ...(options.auth.mode === "instance_principal"
        ? [options.auth.imdsUrl, options.auth.authEndpoint]
        : []),
    ].filter((url): url is string => url !== undefined),
  });
  for (const message of denied) log.log("error", "sync", message, { event: "not_permitted" });
  if (denied.length > 0) return 2;
  if (options.dryRun) return (await syncOnce(entries, options, log, recipes, [])).code;

  try {
    await Deno.mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    log.log(
      "error",
      "state",
      `Cannot create state directory ${options.stateDir}: ${messageOf(error)}`,
      {
        event: "state_unusable",
      },
    );
    return 2;
  }
  // The lock and the state file live here: as for a root, nobody else may write in it.
  const unsafe = await directoryProblems([options.stateDir], "State directory");
  for (const message of unsafe) log.log("error", "state", message, { event: "state_unusable" });
  if (unsafe.length > 0) return 2;
  let lock: RunLock;
  try {
    lock = await acquireRunLock(options.stateDir, options.lockTimeoutMs);
  } catch (error) {
    log.log("error", "lock", messageOf(error), { event: "lock_timeout" });
    return 1;
  }
  try {
    // Holding the lock, any temp file in these directories belongs to a run that died.
    const dirs = new Set([options.stateDir, ...entries.map((e) => dirname(e.path))]);
    for (const dir of dirs) {
      for (const path of await removeStaleTempFiles(dir)) {
        log.log("warn", "write", `Removed ${path} left by an interrupted run`, {
          event: "temp_removed",
          path,
        });
      }
    }
    const { state, warning } = await readState(options.stateDir);
    if (warning) log.log("warn", "state", warning, { event: "state_corrupt" });
    let recorded = state.pendingReloads; // what state.json says now
    const oweReloads = async (paths: string[]) => {
      recorded = [...new Set([...state.pendingReloads, ...paths])];
      await writeState(options.stateDir, { pendingReloads: recorded });
    };
    const { code, pendingReloads } = await syncOnce(
      entries,
      options,
      log,
      recipes,
      state.pendingReloads,
      oweReloads,
    );
    if (!sameSet(pendingReloads, recorded) || warning) {
      await writeState(options.stateDir, { pendingReloads });
    }
    return code;
  } finally {
    lock.release();
  }
}

/** Where fetches go when there is no vault: each fails, and every file stays as it is. */
const NO_SOURCE: SecretSource = {
  fetch: () => Promise.reject(new Error("not fetched: OCI Vault is unavailable")),
  close: () => {},
};

/**
 * Opens the vault and runs the engine: the exit code, and the reloads still owed. Without
 * `oweReloads` (a dry run) nothing is recorded.
 */
async function syncOnce(
  entries: Entry[],
  options: SyncOptions,
  log: Logger,
  recipes: RecipeRegistry,
  pendingReloads: readonly string[],
  oweReloads?: (paths: string[]) => Promise<void>,
): Promise<{ code: number; pendingReloads: string[] }> {
  let source: SecretSource = NO_SOURCE;
  try {
    // A map with no lines needs no vault: do not authenticate (and fail off OCI) for nothing.
    if (entries.length > 0) {
      source = await openVault({
        auth: options.auth,
        region: options.region,
        endpoint: options.endpoint,
        stage: options.stage,
        timeoutMs: options.requestTimeoutMs,
        signal: AbortSignal.timeout(options.timeoutMs),
        maxBytes: options.maxBytes,
        rate: options.rate,
      });
    }
  } catch (error) {
    log.log("error", "vault", `Cannot connect to OCI Vault: ${messageOf(error)}`, {
      event: "vault_unavailable",
      reason: messageOf(error),
    });
    // The source stays NO_SOURCE: every fetch fails and every file stays as it is, but
    // reloads owed from an earlier run need no vault, so they still run.
  }
  try {
    const reloader = createReloader({
      runtime: () => detectRuntime(options.runtime),
      recipes,
      entries,
      log,
    });
    const report = await sync(entries, { source, reloader, log, oweReloads }, {
      ...options,
      pendingReloads,
    });
    return { code: exitCodeOf(report), pendingReloads: report.pendingReloads };
  } finally {
    source.close();
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
}
