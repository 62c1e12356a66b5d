/**
 * The HTTP client handed to `SecretsClient`: signs with the SDK's signer, sends with `fetch`
 * and a per-attempt AbortSignal, and records what happened so failures can be classified.
 *
 * The SDK offers no per-request signal (its `httpOptions` are per client), so each attempt is
 * registered under its `opc-request-id`, which we choose and the SDK sends as a header; `send`
 * finds the attempt's signal by that header. The body is read here, under the same signal and
 * with a size cap, so a slow or huge body is bounded like the rest of the request.
 *
 * @module
 */
import type { HttpClient, HttpRequest, RequestSigner } from "oci-common";

/** What one attempt's request did; filled in by `send`. */
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

/** An HttpClient whose requests are bound to registered attempts. */
export class AttemptHttpClient implements HttpClient {
  #attempts = new Map<string, Attempt>();
  #signer: RequestSigner;
  #maxResponseBytes: number;

  constructor(signer: RequestSigner, maxResponseBytes: number) {
    this.#signer = signer;
    this.#maxResponseBytes = maxResponseBytes;
  }

  /** Registers an attempt; its requests must carry `opc-request-id: id`. */
  begin(id: string, signal: AbortSignal): Attempt {
    const attempt: Attempt = { signal };
    this.#attempts.set(id, attempt);
    return attempt;
  }

  /** Forgets an attempt. */
  end(id: string): void {
    this.#attempts.delete(id);
  }

  /** Called by the SDK's retrier. */
  async send(req: HttpRequest, forceExcludeBody = false): Promise<Response> {
    const id = req.headers.get("opc-request-id") ?? "";
    const attempt = this.#attempts.get(id);
    if (!attempt) throw new Error(`No attempt registered for opc-request-id "${id}"`);
    if (req.body !== undefined && typeof req.body !== "string") {
      // The two operations used here have no body; refuse streams rather than mis-sign them.
      throw new Error("Request bodies other than strings are not supported");
    }
    try {
      await this.#signer.signHttpRequest(
        { method: req.method, headers: req.headers, uri: req.uri, body: req.body },
        forceExcludeBody,
      );
    } catch (e) {
      attempt.signError = e;
      throw e;
    }
    let res: Response;
    let body: Uint8Array;
    try {
      res = await fetch(req.uri, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: attempt.signal,
      });
      attempt.status = res.status;
      attempt.requestId = res.headers.get("opc-request-id") ?? undefined;
      body = await readCapped(res, this.#maxResponseBytes);
    } catch (e) {
      if (e instanceof TooLarge) attempt.tooLarge = true;
      else attempt.transportError = e;
      throw e;
    }
    return bufferedResponse(res, body);
  }
}

/**
 * The response as the SDK reads it (`status`, `statusText`, `ok`, `headers`, `json()`,
 * `text()`), over the body already read. Building a new `Response` instead re-validated the
 * body and every header for each request, only for the SDK to parse it again.
 */
function bufferedResponse(res: Response, body: Uint8Array): Response {
  const text = () => new TextDecoder().decode(body);
  const buffered = {
    status: res.status,
    statusText: res.statusText,
    ok: res.ok,
    headers: res.headers,
    text: () => Promise.resolve(text()),
    // A parse error stays a SyntaxError (fetch.ts classifies it without quoting it).
    json: () => Promise.resolve().then(() => JSON.parse(text())),
  };
  return buffered as unknown as Response;
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
