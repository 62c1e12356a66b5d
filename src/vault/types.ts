/**
 * The public shapes of the vault client.
 *
 * @module
 */

/** One secret version's decoded content. */
export interface SecretBundle {
  /** The decoded secret, byte for byte (NUL, 0xff and trailing newlines survive). */
  bytes: Uint8Array;
  /** The secret version number (OCI `versionNumber`). */
  version: number;
}

/** A stage name or a version number, as the service takes them. */
export type Selector = { stage: string } | { versionNumber: number };

/** Which secret: by OCID, or by name within a vault (GetSecretBundleByName). */
export type SecretLocator = { ocid: string } | { name: string; vaultId: string };

/** One secret, and optionally the version to fetch instead of the configured stage. */
export interface SecretQuery {
  secret: SecretLocator;
  /** @default the `stage` given to `openVault` */
  version?: Selector;
}

/** One fetch announced to `SecretSource.upcoming`. */
export interface UpcomingFetch {
  secretId: string;
  query?: SecretQuery;
}

/** Where secrets come from. `fetch` may be called concurrently. */
export interface SecretSource {
  /**
   * Fetches one secret: the configured stage of the secret OCID `secretId`; or, with `query`,
   * the secret the query names (by OCID or by name) at its own stage or version, with
   * `secretId` naming it in messages (e.g. the map reference `name:db@ocid1.vault…`).
   * Rejects with a `VaultError` naming the secret and the reason, never the content.
   */
  fetch(secretId: string, query?: SecretQuery): Promise<SecretBundle>;
  /**
   * A hint: these fetches (`fetch`'s own arguments) come next, in this order, `inFlight` at a
   * time, so the source may prepare them (the vault signs requests ahead). Optional.
   */
  upcoming?(fetches: readonly UpcomingFetch[], inFlight: number): void;
  /** Abandons in-flight requests. Idempotent. */
  close(): void;
}

/** How to authenticate to OCI. */
export type VaultAuth =
  | {
    mode: "instance_principal";
    /** Instance metadata service base URL. @default "http://169.254.169.254/opc/v2/" */
    imdsUrl?: string;
    /** Federation endpoint (`/v1/x509` is appended). @default derived from the IMDS region */
    authEndpoint?: string;
  }
  | {
    mode: "api_key";
    /** OCI config file. @default "~/.oci/config" */
    configFile?: string;
    /** Profile in the config file. @default "DEFAULT" */
    profile?: string;
  }
  | {
    /** A profile with `security_token_file` and `key_file` (`oci session authenticate`). */
    mode: "security_token";
    /** OCI config file. @default "~/.oci/config" */
    configFile?: string;
    /** Profile in the config file. @default "DEFAULT" */
    profile?: string;
  }
  | {
    /** The `OCI_RESOURCE_PRINCIPAL_*` environment, version 2.2. */
    mode: "resource_principal";
    /** Where the variables come from. @default Deno.env.get */
    env?: (name: string) => string | undefined;
  };

/** Every auth mode, for validation and help text. */
export const AUTH_MODES = [
  "instance_principal",
  "api_key",
  "security_token",
  "resource_principal",
] as const;

/** Options for `openVault`. */
export interface VaultOptions {
  auth: VaultAuth;
  /** Region ID or short code. @default from IMDS (instance principal) or the config file */
  region?: string;
  /** Overrides the Secrets service endpoint (the SDK appends `/20190301`). */
  endpoint?: string;
  /** CURRENT, PENDING, LATEST, PREVIOUS, DEPRECATED (any case), or a version number like "4". */
  stage: string;
  /** Total tries per secret, including the first. @default 3 */
  attempts?: number;
  /** Per-request timeout in milliseconds. @default 10_000 */
  timeoutMs?: number;
  /**
   * Whole-run deadline (e.g. `AbortSignal.timeout(…)`): no new attempt starts after it fires and
   * in-flight ones are abandoned.
   */
  signal?: AbortSignal;
  /** Largest accepted decoded secret size in bytes. @default 65536 */
  maxBytes?: number;
  /**
   * Requests per second at most, over the whole run; a 429 slows every request down further
   * (see rate.ts). @default no limit (429s still slow the run down)
   */
  rate?: number;
}
