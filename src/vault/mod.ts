/**
 * The OCI Vault client: fetches secret bundles with secretsync's own signed requests, retry
 * policy, per-request timeouts and run deadline; OCI's TypeScript SDK only where a mode needs it
 * (OCI config files, region tables), and without its console output.
 *
 * ```ts
 * import { openVault, VaultError } from "./mod.ts";
 *
 * const vault = await openVault({ auth: { mode: "instance_principal" }, stage: "CURRENT" });
 * // `bytes` is the secret: write it, never log it.
 * try {
 *   const { bytes, version } = await vault.fetch("ocid1.vaultsecret.oc1.iad.example");
 * } catch (e) {
 *   if (e instanceof VaultError) console.error(e.message); // names the OCID, never the content
 *   else throw e;
 * } finally {
 *   vault.close();
 * }
 * ```
 *
 * @module
 */
export type {
  SecretBundle,
  SecretLocator,
  SecretQuery,
  SecretSource,
  Selector,
  UpcomingFetch,
  VaultAuth,
  VaultOptions,
} from "./types.ts";
export { AUTH_MODES } from "./types.ts";
export { credentialFiles, credentialProblems } from "./auth.ts";
export { VaultError, type VaultErrorDetails } from "./error.ts";
export { openVault, parseStage } from "./open.ts";
export {
  backoffDelayMs,
  type BackoffOptions,
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  isRetryableStatus,
} from "./retry.ts";
