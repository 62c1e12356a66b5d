/**
 * What `secretsync install` puts on a host and `secretsync uninstall` takes away: the
 * installed unit names, the default directories, and the units rendered for one install
 * (paths and the service's runtime variant). Pure; no file is touched here.
 *
 * @module
 */
import { UNITS } from "./assets.ts";
import { dirname } from "./paths.ts";
import { INSTALLED_BINARY, INSTALLED_BINARY_TEMP } from "./permissions.ts";
import type { RuntimeName } from "./reload/runtime.ts";

/** A unit as it is named on the host. */
export type InstalledUnit = "run-secrets.mount" | "oci-secretsync.service" | "oci-secretsync.timer";

/** The units install writes, in the order it writes them. */
export const INSTALLED_UNITS: readonly InstalledUnit[] = [
  "run-secrets.mount",
  "oci-secretsync.service",
  "oci-secretsync.timer",
];

/** What install enables (`systemctl enable --now`) and uninstall disables. */
export const UNITS_TO_ENABLE: readonly InstalledUnit[] = [
  "run-secrets.mount",
  "oci-secretsync.timer",
];

/** Where install puts the binary, as `secretsync`. */
export const DEFAULT_PREFIX_BIN: string = dirname(INSTALLED_BINARY);
/** Where install writes the units. */
export const DEFAULT_SYSTEMD_DIR = "/etc/systemd/system";
/** Where the map and the service's environment file live. */
export const DEFAULT_CONFIG_DIR = "/etc/oci-secretsync";
/** The service's optional environment file (`SECRETSYNC_ARGS=…`), inside the config directory. */
export const ENV_FILE_NAME = "secretsync.env";
/** The run state directory the service keeps between runs (its RuntimeDirectory=). */
export const STATE_DIR = "/run/oci-secretsync";
/** The tmpfs the mount unit mounts. */
export const SECRETS_MOUNT = "/run/secrets";

/** Where one install puts things. */
export interface UnitPaths {
  /** Directory of the `secretsync` binary. */
  prefixBin: string;
  /** Directory of map.csv and secretsync.env. */
  configDir: string;
}

/**
 * The service file for a runtime: the docker variant is the tightly sandboxed one (the docker
 * CLI only needs a socket); the podman variant allows what `podman exec` through runc needs.
 */
export function serviceVariant(runtime: RuntimeName): keyof typeof UNITS {
  return runtime === "podman" ? "oci-secretsync.podman.service" : "oci-secretsync.service";
}

/**
 * The units for an install: exactly the files of `systemd/` for the default paths; otherwise
 * the service's `ExecStart=` and `EnvironmentFile=` name the binary and config directory where
 * this install puts them.
 *
 * @example
 * ```ts
 * const units = renderUnits({ prefixBin: "/usr/local/bin", configDir: "/etc/oci-secretsync" }, "docker");
 * units["oci-secretsync.service"]; // the docker variant, as in systemd/
 * ```
 */
export function renderUnits(
  paths: UnitPaths,
  runtime: RuntimeName,
): Record<InstalledUnit, string> {
  const binary = `${paths.prefixBin}/secretsync`;
  const source: Record<InstalledUnit, string> = {
    "run-secrets.mount": UNITS["run-secrets.mount"],
    "oci-secretsync.service": UNITS[serviceVariant(runtime)],
    "oci-secretsync.timer": UNITS["oci-secretsync.timer"],
  };
  const units = { ...source };
  for (const name of INSTALLED_UNITS) {
    units[name] = source[name].replace(/^(ExecStart|EnvironmentFile)=.*$/gm, (line) =>
      line
        .replaceAll(INSTALLED_BINARY, binary)
        .replaceAll(`${DEFAULT_CONFIG_DIR}/`, `${paths.configDir}/`));
  }
  return units;
}

/**
 * The temp file install writes the binary to before renaming it into `prefixBin`: the one the
 * release build may write for the default directory, a dot file beside it otherwise.
 */
export function binaryTempOf(prefixBin: string): string {
  return prefixBin === DEFAULT_PREFIX_BIN ? INSTALLED_BINARY_TEMP : `${prefixBin}/.secretsync.new`;
}

/**
 * Characters allowed in the directories install and uninstall take: they end up in the unit's
 * ExecStart line, where a space or `%` would change its meaning.
 */
export const SAFE_DIR = /^\/[A-Za-z0-9._/+@-]*$/;
