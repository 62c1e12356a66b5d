/**
 * One signed request to the Secrets service: signs with the run's signer, sends with `fetch` under
 * the attempt's AbortSignal, reads the body (bounded by a size cap) and records what happened so
 * a failure can be classified.
 *
 * This replaces the SDK's `SecretsClient.getSecretBundle` on the per-secret path. The SDK's
 * request and response plumbing (request composition, a retrier per call, a rebuilt Response,
 * model deserialisation) cost little CPU but produced so much short-lived garbage that the heap
 * grew by ~25 MB at a thousand secrets; the request itself is one URL and four headers. The SDK
 * still reads OCI config files (api_key, security_token) and knows the region tables.
 *
 * @module
 */
import { BodyTooLarge, readCappedBody } from "../http_body.ts";

/** What one attempt's request did; filled in by `signedRequest`. */
export interface Attempt {
  signal: AbortSignal;
  /** Signing failed (for instance principals this includes a token refresh). */
  signError?: unknown;
  /** The request or the response body failed on the wire. */
  transportError?: unknown;
  /** The response body was larger than the cap. */
  tooLarge?: boolean;
  status?: number;
  requestId?: string;
}

/** The part of `Headers` a signer reads and writes: a `Headers` or a {@linkcode SigningHeaders}. */
export interface HeaderAccess {
  has(name: string): boolean;
  get(name: string): string | null;
  set(name: string, value: string): void;
  forEach(callback: (value: string, name: string) => void): void;
}

/** A request to sign: what a signer needs of `oci-common`'s `HttpRequest`. */
export interface SignableRequest {
  method: string;
  uri: string;
  headers: HeaderAccess;
  body?: unknown;
}

/** Signs a request in place (see sign.ts). */
export interface Signer {
  signHttpRequest(request: SignableRequest): Promise<void>;
}

/**
 * A request's headers while they are being signed: the part of `Headers` a signer uses, without
 * its checks. `fetch` checks every name and value when it builds the request; a `Headers` filled
 * first checked them twice, and the longest value, the Authorization header with its session
 * token (over a kilobyte), is checked character by character each time.
 */
export class SigningHeaders implements HeaderAccess {
  #map = new Map<string, string>();
  has(name: string): boolean {
    return this.#map.has(name.toLowerCase());
  }
  get(name: string): string | null {
    return this.#map.get(name.toLowerCase()) ?? null;
  }
  set(name: string, value: string): void {
    this.#map.set(name.toLowerCase(), String(value));
  }
  forEach(callback: (value: string, name: string) => void): void {
    this.#map.forEach(callback);
  }
  /** The name and value pairs, for `fetch`. */
  pairs(): [string, string][] {
    return [...this.#map];
  }
}

/** A response, body read. */
export interface BufferedResponse {
  status: number;
  statusText: string;
  /** The service's opc-request-id, else ours. */
  requestId: string;
  body: Uint8Array;
}

/** Options for `signedRequest`. */
export interface SignedRequestOptions {
  /** GET, or POST without a body (getByName). */
  method: "GET" | "POST";
  signer: Signer;
  /** Our opc-request-id for this attempt (what OCI support asks for). */
  requestId: string;
  /** Largest body read; a bigger one is refused unread. */
  maxResponseBytes: number;
}

/** Sends `uri`, signed, under `attempt.signal`. Throws on signing, network or size failures. */
export async function signedRequest(
  uri: string,
  attempt: Attempt,
  opts: SignedRequestOptions,
): Promise<BufferedResponse> {
  const { method } = opts;
  const headers = new SigningHeaders();
  headers.set("opc-request-id", opts.requestId);
  headers.set("accept", "application/json");
  try {
    await opts.signer.signHttpRequest({ method, uri, headers });
  } catch (e) {
    attempt.signError = e;
    throw e;
  }
  try {
    const res = await fetch(uri, { method, headers: headers.pairs(), signal: attempt.signal });
    attempt.status = res.status;
    attempt.requestId = res.headers.get("opc-request-id") ?? undefined;
    const body = await readCappedBody(res, opts.maxResponseBytes);
    return {
      status: res.status,
      statusText: res.statusText,
      requestId: attempt.requestId ?? opts.requestId,
      body,
    };
  } catch (e) {
    if (e instanceof BodyTooLarge) attempt.tooLarge = true;
    else attempt.transportError = e;
    throw e;
  }
}
