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

/** Where secrets come from. `fetch` may be called concurrently. */
export interface SecretSource {
  /**
   * Fetches the configured stage (or version) of one secret.
   * Rejects with a `VaultError` naming the secret and the reason, never the content.
   */
  fetch(secretId: string): Promise<SecretBundle>;
  /** Abandons in-flight requests and releases the SDK's timers. Idempotent. */
  close(): void;
}

/** How to authenticate to OCI. */
export type VaultAuth =
  | {
    mode: "instance_principal";
    /** Instance metadata service base URL. @default "http://169.254.169.254/opc/v2/" */
    imdsUrl?: string;
    /** Federation endpoint; the SDK appends `/v1/x509`. @default derived from the IMDS region */
    authEndpoint?: string;
  }
  | {
    mode: "api_key";
    /** OCI config file. @default "~/.oci/config" */
    configFile?: string;
    /** Profile in the config file. @default "DEFAULT" */
    profile?: string;
  };

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
