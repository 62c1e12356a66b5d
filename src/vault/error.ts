/**
 * The one error callers of the vault client are meant to catch.
 *
 * @module
 */

/** Details of a `VaultError`. */
export interface VaultErrorDetails {
  /** The secret OCID; "" when the failure is not about one secret (authentication). */
  secretId: string;
  /** HTTP status, when the service answered. */
  status?: number;
  /** OCI error code (`NotAuthorizedOrNotFound`, …), when the service sent one. */
  code?: string;
  /** Whether trying again later could succeed (429, 5xx, network, timeouts). */
  retryable: boolean;
  /** The cause alone, for callers that name the secret themselves. @default the message */
  reason?: string;
}

/**
 * A failure to authenticate or to fetch a secret. The message names the secret OCID and the
 * reason (HTTP status and OCI code, "timed out after 10000 ms", "connection reset", …) and never
 * contains secret content.
 */
export class VaultError extends Error {
  override name = "VaultError";
  /** The secret OCID; "" for authentication failures. */
  secretId: string;
  /** HTTP status, when the service answered. */
  status?: number;
  /** OCI error code, when the service sent one. */
  code?: string;
  /** Whether trying again later could succeed. */
  retryable: boolean;
  /** The cause alone, without the secret's name: "HTTP 404 NotAuthorizedOrNotFound: …". */
  reason: string;

  constructor(message: string, details: VaultErrorDetails) {
    super(message);
    this.secretId = details.secretId;
    this.status = details.status;
    this.code = details.code;
    this.retryable = details.retryable;
    this.reason = details.reason ?? message;
  }
}
