/**
 * `secretsync sync`: one pass of map → OCI Vault → files → reloads.
 *
 * @module
 */
import { Command } from "commander";
import { z } from "zod";
import { DEFAULT_MAP } from "../inputs.ts";
import { COMMANDER_ERROR_OUTPUT, createLogger } from "../log.ts";
import { writeRunMetricsLogged } from "../metrics.ts";
import { isNormalizedAbsolute } from "../paths.ts";
import { accessProblems } from "../permissions.ts";
import type { RunOptions } from "../run.ts";
import { DEFAULT_STATE_DIR } from "../state.ts";
import { AUTH_MODES, type VaultAuth } from "../vault/types.ts";
// Directly, not through vault/mod.ts: this module must stay light (see runSync).
import { dropSessionKeyPair, startSessionKeyPair } from "../vault/session_key.ts";
import { loadSdk } from "../vault/sdk.ts";
import { rootOption, rootsSchema, validateOptions } from "./usage.ts";
import { parseDuration } from "../duration.ts";

/** Parsed options of `secretsync sync`: a run's options, how to log, where metrics go. */
export interface SyncOptions extends RunOptions {
  json: boolean;
  /** `--metrics-file`: the Prometheus textfile written after the run (not for a dry run). */
  metricsFile?: string;
}

const STAGES = ["CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"];
const DEFAULT_IMDS = "http://169.254.169.254/opc/v2/";

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
      z.enum(
        AUTH_MODES,
        `--auth must be ${AUTH_MODES.slice(0, -1).join(", ")} or ${AUTH_MODES.at(-1)}`,
      ),
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
    metricsFile: z.string().refine(
      isNormalizedAbsolute,
      "--metrics-file must be an absolute, normalized path",
    ).optional(),
    allowExpired: z.boolean(),
    warnExpiry: z.string().transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `--warn-expiry "${value}" must be a number and a unit: 90s, 30m, 12h, 14d`,
        });
        return z.NEVER;
      }
      return ms;
    }),
    rate: z.string().regex(
      /^\d{1,6}(\.\d{1,3})?$/,
      "--rate must be a number of requests per second",
    )
      .transform(Number).pipe(z.number().positive("--rate must be more than 0")).optional(),
    allowStopSignals: z.boolean(),
  })
  .transform((o): SyncOptions => ({
    map: o.map,
    roots: o.roots,
    auth: authOf(o),
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
    metricsFile: o.metricsFile,
    allowExpired: o.allowExpired,
    warnExpiryMs: o.warnExpiry,
    ...(o.rate !== undefined ? { rate: o.rate } : {}),
    allowStopSignals: o.allowStopSignals,
  }));

function authOf(
  o: { auth: VaultAuth["mode"]; ociConfig?: string; profile: string; imdsUrl: string } & {
    authEndpoint?: string;
  },
): VaultAuth {
  switch (o.auth) {
    case "api_key":
    case "security_token":
      return { mode: o.auth, configFile: o.ociConfig ?? defaultOciConfig(), profile: o.profile };
    case "resource_principal":
      return { mode: "resource_principal" };
    default:
      return { mode: "instance_principal", imdsUrl: o.imdsUrl, authEndpoint: o.authEndpoint };
  }
}

function defaultOciConfig(): string {
  return `${Deno.env.get("HOME") ?? ""}/.oci/config`;
}

/** Declares `sync` and its flags. */
export function syncCommand(): Command {
  return new Command("sync")
    .description("Fetch every secret in the map, write changed files, reload their containers")
    .option("--map <file>", "map file", DEFAULT_MAP)
    .addOption(rootOption())
    .option("--auth <mode>", AUTH_MODES.join(", "), "instance_principal")
    .option(
      "--oci-config <file>",
      "OCI config file for api_key and security_token (default: ~/.oci/config)",
    )
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
      "--metrics-file <file>",
      "write Prometheus metrics here after the run (node_exporter textfile), atomically",
    )
    .option(
      "--allow-expired",
      "write certificates that are expired or not yet valid (they are refused by default)",
      false,
    )
    .option("--warn-expiry <duration>", "warn about certificates expiring within this", "14d")
    .option(
      "--rate <n>",
      "vault requests per second at most (a 429 from the vault slows the run down further)",
    )
    .option(
      "--allow-stop-signals",
      "let a reload send KILL, STOP, TERM, INT or QUIT (refused otherwise)",
      false,
    )
    .option("--dry-run", "fetch and compare, but write and reload nothing", false)
    .option("--json", "one JSON object per line", false);
}

/** Parses `sync` arguments into options; throws UsageError on bad input. */
export function parseSyncArgs(args: string[]): SyncOptions {
  const command = syncCommand().exitOverride().configureOutput(COMMANDER_ERROR_OUTPUT);
  command.parse(args, { from: "user" });
  const raw = command.opts();
  return validateOptions(syncSchema, { ...raw, roots: raw.root });
}

/** Runs `sync`; returns the exit code (0, 1, 2 or 3; see the README). */
export async function runSync(options: SyncOptions): Promise<number> {
  // The session key pair is generated off the main thread (usually main.ts started it already;
  // this covers any other caller), and the SDK (for the modes that read an OCI config file)
  // starts loading, while the run's modules and the map load: the run layer is imported only
  // after both have started. Instance and resource principals need no SDK.
  // Not the authentication itself: a run with nothing to fetch, refused, or waiting for the lock
  // contacts no one (only this process's key pair is made ahead).
  if (options.auth.mode === "instance_principal") startSessionKeyPair();
  if (options.auth.mode === "api_key" || options.auth.mode === "security_token") {
    loadSdk().catch(() => {
      // Deliberately ignored here: openVault loads it again and reports the failure.
    });
  }
  try {
    const { run } = await import("../run.ts");
    const log = createLogger({ json: options.json });
    const metricsFile = options.dryRun ? undefined : options.metricsFile;
    if (metricsFile) {
      const denied = accessProblems({ write: [metricsFile] });
      for (const message of denied) {
        log.log("error", "metrics", message, { event: "not_permitted" });
      }
      if (denied.length > 0) return 2;
    }
    const startedAtMs = Date.now();
    const result = await run(options, { log });
    if (metricsFile) {
      await writeRunMetricsLogged(metricsFile, log, {
        ...result,
        startedAtMs,
        endedAtMs: Date.now(),
        stateDir: options.stateDir,
      });
    }
    return result.code;
  } finally {
    // A pair that no vault took (nothing to fetch, a refused run) is let go: its worker would
    // keep a process that does not call Deno.exit alive.
    dropSessionKeyPair();
  }
}
