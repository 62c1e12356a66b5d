/**
 * The permissions secretsync runs with, and clear messages when a path or host falls outside
 * them.
 *
 * {@linkcode PERMISSIONS} is the one definition of the set: `scripts/permissions.ts` turns it
 * into the `deno compile` flags baked into the release binary, and the end-to-end tests run
 * `deno run` with exactly those flags. The binary itself reads it only to say, in a message,
 * what it may touch.
 *
 * A compiled binary cannot be given more permissions when it runs; a path or host outside the
 * set fails with `Deno.errors.NotCapable`. {@linkcode accessProblems} finds such paths before
 * a run starts, and {@linkcode explainNotCapable} rewrites a `NotCapable` caught later.
 *
 * @module
 */
import { ENV_ALLOWLIST } from "./reload/runtime.ts";
import { errorMessage } from "./text.ts";

/** The permission set: each list is exactly what one `--allow-*`/`--ignore-*` flag receives. */
export interface PermissionSet {
  /** `--allow-read`: paths (and everything below them). */
  read: readonly string[];
  /** `--allow-write`: paths (and everything below them). */
  write: readonly string[];
  /** `--allow-run`: programs, resolved on `PATH` when the process starts. */
  run: readonly string[];
  /** `--allow-env`: variables the code reads. */
  env: readonly string[];
  /** `--ignore-env`: variables libraries ask for that read as unset instead of failing. */
  ignoreEnv: readonly string[];
  /** `--allow-net`: hosts, `*.` for any subdomain, `:port` to pin a port. */
  net: readonly string[];
  /** `--allow-sys`: operating-system queries. */
  sys: readonly string[];
}

/** Where the release binary is installed by `secretsync install`. */
export const INSTALLED_BINARY = "/usr/local/bin/secretsync";
/** The temp file `secretsync install` writes before renaming it over {@linkcode INSTALLED_BINARY}. */
export const INSTALLED_BINARY_TEMP = "/usr/local/bin/.secretsync.new";

/**
 * Second-level domains of the OCI realms the SDK (`oci-common` 2.139.1, `Realm`) knows.
 * Service endpoints are `<service>.<region>.oci.<domain>` and the federation endpoint is
 * `auth.<region>.<domain>`, so `*.<domain>:443` covers both for every region of a realm.
 */
export const OCI_REALM_DOMAINS: readonly string[] = [
  "oraclecloud.com", // oc1
  "oraclegovcloud.com", // oc2, oc3
  "oraclegovcloud.uk", // oc4
  "oraclecloud8.com",
  "oraclecloud9.com",
  "oraclecloud10.com",
  "oraclecloud14.com",
  "oraclecloud15.com",
  "oraclecloud.eu", // oc19
  "oraclecloud20.com",
  "oraclecloud21.com",
  "oraclecloud23.com",
  "oraclecloud24.com",
  "oraclecloud26.com",
  "oraclecloud29.com",
  "oraclecloud35.com",
  "oraclecloud42.com",
  "oraclecloud51.com",
  "oraclecloud52.com",
];

/**
 * The permissions secretsync needs, and nothing more. Each entry says who needs it.
 *
 * Paths are fixed at build time: a map, root or OCI config elsewhere needs a build with that
 * path added here (README, "Permissions").
 */
export const PERMISSIONS: PermissionSet = {
  read: [
    "/etc/oci-secretsync", // the map (sync, check); install creates it with an example map
    "/run/secrets", // the default root: compare before writing
    "/run/oci-secretsync", // run state (lock, pending reloads)
    "/etc/systemd/system", // install compares the units it would write
    INSTALLED_BINARY, // install compares the binary it would copy
    INSTALLED_BINARY_TEMP,
    // oci-common reads ~/.oci/developer-tool-configuration.json when it loads and
    // ~/.oci/regions-config.json for unknown regions; api_key reads ~/.oci/config and its key.
    // The service runs as root, so ~ is /root.
    "/root/.oci",
    "/run", // pidfile: targets (reload/pidfile.ts); daemons keep their pidfiles here
  ],
  write: [
    "/etc/oci-secretsync", // install: the directory and an example map.csv, never overwritten
    "/run/secrets", // the default root: atomic writes
    "/run/oci-secretsync", // run state
    "/etc/systemd/system", // install: the three units
    INSTALLED_BINARY, // install: the binary itself, via its temp file
    INSTALLED_BINARY_TEMP,
  ],
  run: [
    "docker", // reload containers (reload/runtime.ts)
    "podman",
    "systemctl", // install: daemon-reload, enable --now; unit: targets
    "kill", // pidfile: targets: `kill -0` and `kill -s SIG` (Deno.kill needs unrestricted run)
  ],
  env: [
    "HOME", // sync: default --oci-config; passed to docker/podman
    "PATH", // docker/podman find their helpers on it
    // Passed to the container CLIs when set: the runtime's own list, so the two cannot drift.
    ...new Set(Object.values(ENV_ALLOWLIST).flat().filter((name) => name !== "HOME")),
    // --auth resource_principal (vault/session.ts): the token, key and region.
    "OCI_RESOURCE_PRINCIPAL_VERSION",
    "OCI_RESOURCE_PRINCIPAL_RPST",
    "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
    "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE",
    "OCI_RESOURCE_PRINCIPAL_REGION",
    // log.ts: syslog priority prefixes under journald; commander and log.ts: colour.
    "JOURNAL_STREAM",
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR_FORCE",
  ],
  // Read by oci-common and its dependencies (some when they load). secretsync sets the SDK's
  // retries, circuit breaker, region and endpoints itself, so these read as unset: an
  // environment variable cannot change how a run behaves. To honour one, move it to `env`.
  ignoreEnv: [
    "OCI_SDK_DEFAULT_RETRY_ENABLED",
    "OCI_SDK_DEFAULT_CIRCUITBREAKER_ENABLED",
    "OCI_SDK_APPEND_USER_AGENT",
    "OCI_SDK_ESCAPE_JSON_ASCII",
    "OCI_REALM_SPECIFIC_SERVICE_ENDPOINT_TEMPLATE_ENABLED",
    "OCI_DUAL_STACK_ENDPOINT_ENABLED",
    "OCI_DEVELOPER_TOOL_CONFIGURATION_FILE_PATH",
    "OCI_ALLOW_ONLY_DEVELOPER_TOOL_CONFIGURATION_REGIONS",
    "OCI_REGION",
    "OCI_REGION_METADATA",
    "OCI_DEFAULT_REALM",
    "OCI_CONFIG_FILE",
    "KUBERNETES_SERVICE_HOST",
    "NODE_DEBUG",
    "NODE_NDEBUG", // assert-plus
  ],
  net: [
    // Secrets and federation endpoints of every realm, HTTPS only.
    ...OCI_REALM_DOMAINS.map((domain) => `*.${domain}:443`),
    "169.254.169.254:80", // instance metadata (instance principals)
    // Loopback: a local tunnel or proxy to a private endpoint (--endpoint, --auth-endpoint,
    // --imds-url), and the OCI stand-in of the tests. Reaches nothing beyond this host.
    "127.0.0.1",
    "localhost",
    "[::1]",
  ],
  sys: [
    "homedir", // oci-common: os.homedir() when it loads
    "osRelease", // oci-common: the User-Agent header
    "uid", // roots.ts: a root must belong to the user running secretsync
  ],
};

/** Options for {@linkcode accessProblems}: what a run is about to touch. */
export interface AccessNeeds {
  /** Files or directories it reads. @default [] */
  read?: readonly string[];
  /** Files or directories it writes. @default [] */
  write?: readonly string[];
  /** URLs it connects to. @default [] */
  net?: readonly string[];
}

/**
 * Returns what this process may not touch, one message per kind (read, write, net) naming
 * every such path or host and what to do; empty when everything is allowed (always, under
 * `-A`). Call it before a run touches anything, so a map or root outside the built-in paths
 * stops the run with a clear reason instead of failing half-way.
 *
 * @example
 * ```ts
 * import { accessProblems } from "./permissions.ts";
 * const problems = accessProblems({ read: ["/etc/oci-secretsync/map.csv"], write: ["/run/secrets"] });
 * for (const message of problems) console.error(message);
 * if (problems.length > 0) Deno.exit(2);
 * ```
 */
export function accessProblems(needs: AccessNeeds): string[] {
  const problems: string[] = [];
  const read = unique(needs.read ?? []).filter((path) => !granted({ name: "read", path }));
  if (read.length > 0) problems.push(pathMessage("read", read));
  const write = unique(needs.write ?? []).filter((path) => !granted({ name: "write", path }));
  if (write.length > 0) problems.push(pathMessage("write", write));
  const hosts = unique((needs.net ?? []).map(hostOf)).filter((host) =>
    !granted({ name: "net", host })
  );
  if (hosts.length > 0) problems.push(netMessage(hosts));
  return problems;
}

/**
 * Turns a `NotCapable` error into a message that says which permission is missing and what to
 * do; any other error comes back as its own message. Deno's text ("run again with the
 * --allow-read flag") is wrong for a compiled binary, which takes no permission flags.
 *
 * @example
 * ```ts
 * try {
 *   await Deno.readTextFile("/srv/map.csv");
 * } catch (error) {
 *   console.error(`secretsync: ${explainNotCapable(error)}`);
 * }
 * ```
 */
export function explainNotCapable(error: unknown): string {
  const message = errorMessage(error);
  if (!(error instanceof Deno.errors.NotCapable)) return message;
  const match = /Requires (\w+) access(?: to "([^"]*)")?/.exec(message);
  const kind = match?.[1] ?? "";
  const target = match?.[2];
  if ((kind === "read" || kind === "write") && target) return pathMessage(kind, [target]);
  if (kind === "net" && target) return netMessage([target]);
  const what = target ? `${kind} access to "${target}"` : `${kind || "an"} access`;
  return `This secretsync build has no ${what}. ${rebuildHint()}`;
}

function pathMessage(kind: "read" | "write", paths: readonly string[]): string {
  const allowed = (kind === "read" ? PERMISSIONS.read : PERMISSIONS.write)
    .filter((path) => path !== INSTALLED_BINARY_TEMP);
  return `Cannot ${kind} ${quoteList(paths)}: this secretsync build may only ${kind} in ${
    allowed.join(", ")
  }. Use a path there, or ${rebuildHint(true)}`;
}

function netMessage(hosts: readonly string[]): string {
  return `Cannot connect to ${hosts.join(", ")}: this secretsync build may only connect to ` +
    "OCI endpoints (*.oraclecloud.com and the other realms' domains, port 443), the instance " +
    "metadata service and loopback. Reach a private endpoint through a loopback tunnel or " +
    `HTTPS_PROXY, or ${rebuildHint(true)}`;
}

function rebuildHint(lower = false): string {
  const action = Deno.build.standalone
    ? "build secretsync with it added"
    : "add it to src/permissions.ts (deno run uses the flags from scripts/permissions.ts)";
  const sentence = `${action}: see README, "Permissions".`;
  return lower ? sentence : sentence[0].toUpperCase() + sentence.slice(1);
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    // Not a valid path or host to ask about: it cannot be allowed either.
    return false;
  }
}

function quoteList(paths: readonly string[]): string {
  return paths.map((path) => `"${path}"`).join(", ");
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** `host:port` of a URL, as `--allow-net` matches it; the text itself when it is no URL. */
function hostOf(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
  return `${parsed.hostname}:${port}`;
}
