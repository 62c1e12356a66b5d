/**
 * One signed request to the Secrets service: signs with the run's signer, sends with `fetch` under
 * the attempt's AbortSignal, reads the body (bounded by a size cap) and records what happened so
 * a failure can be classified.
 *
 * This replaces the SDK's `SecretsClient.getSecretBundle` on the per-secret path. The SDK's
 * request and response plumbing (request composition, a retrier per call, a rebuilt Response,
 * model deserialisation) cost little CPU but produced so much short-lived garbage that the heap
 * grew by ~25 MB at a thousand secrets; the request itself is one URL and four headers. The SDK
 * still provides authentication, federation, region endpoints and the response model.
 *
 * @module
 */
import type { HttpRequest } from "oci-common";

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

/** Signs a request in place (see sign.ts). */
export interface Signer {
  signHttpRequest(request: HttpRequest): Promise<void>;
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
  const headers = new Headers({ "opc-request-id": opts.requestId, accept: "application/json" });
  try {
    await opts.signer.signHttpRequest({ method, uri, headers } as HttpRequest);
  } catch (e) {
    attempt.signError = e;
    throw e;
  }
  try {
    const res = await fetch(uri, { method, headers, signal: attempt.signal });
    attempt.status = res.status;
    attempt.requestId = res.headers.get("opc-request-id") ?? undefined;
    const body = await readCapped(res, opts.maxResponseBytes);
    return {
      status: res.status,
      statusText: res.statusText,
      requestId: attempt.requestId ?? opts.requestId,
      body,
    };
  } catch (e) {
    if (e instanceof TooLarge) attempt.tooLarge = true;
    else attempt.transportError = e;
    throw e;
  }
}

class TooLarge extends Error {}

async function readCapped(res: Response, cap: number): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array();
  // With a length (OCI always sends one) the body is read in one go: reading it through a
  // stream reader left ~13 KB of buffers per response to the garbage collector, which at a
  // thousand secrets was most of the process's memory growth.
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isSafeInteger(length) && length >= 0) {
    if (length > cap) {
      await res.body.cancel().catch(() => {
        // Deliberately ignored: the response is refused either way.
      });
      throw new TooLarge(`Response is larger than ${cap} bytes`);
    }
    return await res.bytes();
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > cap) {
      await reader.cancel().catch(() => {
        // Deliberately ignored: the response is refused either way.
      });
      throw new TooLarge(`Response is larger than ${cap} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
