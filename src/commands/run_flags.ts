/**
 * The flags of a run, shared by the commands that do runs (`sync`, `watch`): declared once,
 * validated once, turned into {@linkcode RunOptions} once.
 *
 * @module
 */
import type { Command } from "commander";
import { z } from "zod";
import { DEFAULT_MAP } from "../inputs.ts";
import { isNormalizedAbsolute } from "../paths.ts";
import type { RunOptions } from "../run.ts";
import { collect, rootsSchema } from "./usage.ts";

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

/** The run flags as commander gives them, checked; extend it with a command's own flags. */
export const runFlagsShape = {
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
      error: (issue) => `--stage "${issue.input}" must be ${STAGES.join(", ")} or a version number`,
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
};

/** The run options from checked run flags (`json` stays with the command). */
export function toRunOptions(o: z.output<z.ZodObject<typeof runFlagsShape>>): RunOptions {
  return {
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
    timeoutMs: o.timeout * 1000,
    requestTimeoutMs: o.requestTimeout * 1000,
    maxBytes: o.maxSize,
    stateDir: o.stateDir,
    lockTimeoutMs: o.lockTimeout * 1000,
    recipesDir: o.recipesDir,
  };
}

function defaultOciConfig(): string {
  return `${Deno.env.get("HOME") ?? ""}/.oci/config`;
}

/** Adds the run flags to a command. */
export function addRunFlags(command: Command): Command {
  return command
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
    .option("--dry-run", "fetch and compare, but write and reload nothing", false)
    .option("--json", "one JSON object per line", false);
}
