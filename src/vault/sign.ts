/**
 * Request signing with one imported key, instead of the SDK's `DefaultRequestSigner`.
 *
 * The SDK's signer hands a PEM to `http-signature`, which re-parses it with `sshpk` and builds a
 * new key object for every request; that parse costs about as much as the signature itself, and
 * each parsed key holds native memory until the garbage collector runs. Here the key is loaded
 * once (again only when the provider's key changes, e.g. after a session token refresh) and
 * every request is signed with it, off the main thread: a key the user gave (API key, resource
 * principal) with WebCrypto, as one imported `CryptoKey` (under Deno 2.9 less CPU than
 * `node:crypto`), and the instance principal's session key, three primes, on its own worker
 * (key_worker.ts: about half the CPU of a WebCrypto signature).
 *
 * What is signed is exactly what the SDK signs (OCI's request-signing scheme): `x-date
 * (request-target) host`, plus `content-type content-length x-content-sha256` for requests with
 * a body, keyId from the provider, `Signature version="1",…`.
 *
 * @module
 */
import { createHash, createPrivateKey } from "node:crypto";
import type { AuthenticationDetailsProvider, RequestSigner } from "oci-common";
import { type SignableRequest, SigningHeaders } from "./http.ts";
import { signsWith, signWith } from "./key_worker.ts";

/**
 * What a signer needs from an authentication mode: a key id and the private key it names.
 * A new auth provider only has to supply these two (see `signingKeyOf` for the SDK's providers).
 */
export interface SigningKey {
  /**
   * The `keyId` of the Authorization header: `tenancy/user/fingerprint` for an API key,
   * `ST$<token>` for a session token. May refresh the token, so it is asked per request.
   */
  keyId(): Promise<string>;
  /** The private key (PEM) that goes with the last `keyId()`; may change after a refresh. */
  privateKeyPem(): string;
  /** Passphrase of an encrypted PEM. */
  passphrase?: string;
}

/** The signing key of any of the SDK's authentication providers. */
export function signingKeyOf(provider: AuthenticationDetailsProvider): SigningKey {
  return {
    keyId: () => Promise.resolve(provider.getKeyId()),
    privateKeyPem: () => provider.getPrivateKey(),
    passphrase: provider.getPassphrase() ?? undefined,
  };
}

const ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
const EMPTY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/**
 * A private key ready to sign with: the session key (three primes, which WebCrypto cannot
 * import) is signed with on its own thread (key_worker.ts), any other key by WebCrypto.
 */
type LoadedKey = { webCrypto: CryptoKey } | { sessionKeyPem: string };

async function loadKey(pem: string, passphrase?: string): Promise<LoadedKey> {
  if (!passphrase && await signsWith(pem)) return { sessionKeyPem: pem };
  return { webCrypto: await importSigningKey(pem, passphrase) };
}

/** Imports a PEM (PKCS#1 or PKCS#8, optionally encrypted) as a WebCrypto signing key. */
export async function importSigningKey(pem: string, passphrase?: string): Promise<CryptoKey> {
  const der = createPrivateKey({ key: pem, format: "pem", passphrase })
    .export({ format: "der", type: "pkcs8" });
  return await crypto.subtle.importKey("pkcs8", new Uint8Array(der), ALGORITHM, false, ["sign"]);
}

/** A request a signer can sign ahead: one without a body (see `CachedKeySigner.signAhead`). */
export interface PlannedRequest {
  method: string;
  uri: string;
}

/** A signature made before its request was sent, and the headers it covers. */
interface Presigned {
  /** The headers the signature covers (x-date, host, body headers), set as they were signed. */
  headers: SigningHeaders;
  names: string[];
  /** The private key it was made with; a key refreshed since makes it useless. */
  pem: string;
  madeAt: number;
  signature: Promise<string>;
}

/**
 * How old a signature made ahead may be when its request is sent. OCI accepts a request whose
 * date is within 5 minutes of its clock; an older one is signed again.
 */
const MAX_PRESIGNED_AGE_MS = 30_000;

/**
 * A `RequestSigner` for `oci-common`'s clients that signs with one cached `CryptoKey`.
 *
 * @example
 * ```ts
 * import { CachedKeySigner } from "./sign.ts";
 * const signer = new CachedKeySigner({
 *   keyId: () => Promise.resolve("tenancy/user/fingerprint"),
 *   privateKeyPem: () => Deno.readTextFileSync("key.pem"),
 * });
 * ```
 */
export class CachedKeySigner implements RequestSigner {
  #key: SigningKey;
  #pem?: string;
  #imported?: Promise<LoadedKey>;
  #plan: readonly PlannedRequest[] = [];
  #planIndex = new Map<string, number>();
  #window = 0;
  /** Plan entries signed ahead so far, and one past the furthest one sent. */
  #signedUpTo = 0;
  #sentUpTo = 0;
  #ahead = new Map<string, Presigned>();
  #maxPresignedAgeMs: number;

  /** `maxPresignedAgeMs`: how old a signature made ahead may be when used. @default 30 s */
  constructor(key: SigningKey, options: { maxPresignedAgeMs?: number } = {}) {
    this.#key = key;
    this.#maxPresignedAgeMs = options.maxPresignedAgeMs ?? MAX_PRESIGNED_AGE_MS;
  }

  /** Imports the current key now, so that a bad key fails before the first request. */
  async prepare(): Promise<void> {
    await this.#loadedKey();
  }

  /**
   * Signs `requests` (to be sent in this order, none with a body) ahead of time, keeping
   * `window` of them signed beyond the furthest one sent. An RSA signature takes over a
   * millisecond of CPU (off the main thread); made while earlier requests wait for their
   * answers, it is no longer part of any request's latency. Each signature is still made once
   * per request, only earlier: the CPU is the same. A request sent without one (a retry, a
   * request outside the plan, a signature too old or made with a key since refreshed) is
   * signed as it goes. Replaces any earlier plan.
   */
  signAhead(requests: readonly PlannedRequest[], window: number): void {
    this.#plan = requests;
    this.#planIndex = new Map(requests.map((r, i) => [requestKey(r.method, r.uri), i]));
    this.#window = Math.max(0, Math.floor(window));
    this.#signedUpTo = 0;
    this.#sentUpTo = 0;
    this.#ahead.clear();
    this.#fillWindow();
  }

  /** Adds `host`, `x-date` (and body headers) and the Authorization header to `request`. */
  async signHttpRequest(request: SignableRequest, forceExcludeBody = false): Promise<void> {
    const presigned = this.#takePresigned(request, forceExcludeBody);
    // keyId first: for a session token it may refresh the token and with it the private key.
    const keyId = await this.#key.keyId();
    if (presigned && presigned.pem === this.#key.privateKeyPem()) {
      const signature = await presigned.signature.catch(() => undefined);
      if (signature !== undefined) {
        presigned.headers.forEach((value, name) => request.headers.set(name, value));
        request.headers.set("authorization", authorization(keyId, presigned.names, signature));
        return;
      }
    }
    const { names, text } = signingInput(request, forceExcludeBody);
    const key = await this.#loadedKey();
    request.headers.set("authorization", authorization(keyId, names, await sign(key, text)));
  }

  /** The signature made ahead for this request, if it is still good to use. */
  #takePresigned(request: SignableRequest, forceExcludeBody: boolean): Presigned | undefined {
    const key = requestKey(request.method, request.uri);
    const index = this.#planIndex.get(key);
    if (index === undefined) return undefined;
    const presigned = this.#ahead.get(key);
    this.#ahead.delete(key);
    this.#sentUpTo = Math.max(this.#sentUpTo, index + 1);
    this.#fillWindow();
    if (
      !presigned || forceExcludeBody || (request.body !== undefined && request.body !== "") ||
      request.headers.has("x-date") || Date.now() - presigned.madeAt > this.#maxPresignedAgeMs
    ) return undefined;
    return presigned;
  }

  #fillWindow(): void {
    this.#signedUpTo = Math.max(this.#signedUpTo, this.#sentUpTo);
    while (
      this.#signedUpTo < this.#plan.length && this.#signedUpTo < this.#sentUpTo + this.#window
    ) {
      const { method, uri } = this.#plan[this.#signedUpTo++];
      const headers = new SigningHeaders();
      const { names, text } = signingInput({ method, uri, headers }, false);
      const signature = this.#loadedKey().then((key) => sign(key, text));
      // A failed signature is made again when its request is sent (and fails there, reported).
      signature.catch(() => {});
      this.#ahead.set(requestKey(method, uri), {
        headers,
        names,
        pem: this.#key.privateKeyPem(),
        madeAt: Date.now(),
        signature,
      });
    }
  }

  #loadedKey(): Promise<LoadedKey> {
    const pem = this.#key.privateKeyPem();
    if (pem !== this.#pem || !this.#imported) {
      this.#pem = pem;
      this.#imported = loadKey(pem, this.#key.passphrase);
      // A failed import is retried on the next request rather than cached.
      this.#imported.catch(() => {
        if (this.#pem === pem) this.#imported = undefined;
      });
    }
    return this.#imported;
  }
}

function requestKey(method: string, uri: string): string {
  return `${method.toUpperCase()} ${uri}`;
}

/**
 * Sets the headers the signature covers that are missing (`host`, `x-date`, and for a request
 * with a body its type, length and SHA-256) and returns their names and the signing string.
 */
function signingInput(
  request: SignableRequest,
  forceExcludeBody: boolean,
): { names: string[]; text: string } {
  const url = new URL(request.uri);
  const headers = request.headers;
  if (!headers.has("host")) headers.set("host", url.host);
  if (!headers.has("x-date")) headers.set("x-date", new Date().toUTCString());
  const names = ["x-date", "(request-target)", "host"];
  if (!forceExcludeBody && BODY_METHODS.has(request.method.toUpperCase())) {
    const body = typeof request.body === "string" ? request.body : "";
    if (request.body !== undefined && typeof request.body !== "string") {
      throw new Error("Request bodies other than strings are not supported");
    }
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    headers.set(
      "x-content-sha256",
      body ? createHash("sha256").update(body).digest("base64") : EMPTY_SHA256,
    );
    if (!headers.has("content-length")) {
      headers.set("content-length", String(new TextEncoder().encode(body).length));
    }
    names.push("content-type", "content-length", "x-content-sha256");
  }
  const target = `${request.method.toLowerCase()} ${url.pathname}${url.search}`;
  const text = names.map((n) =>
    n === "(request-target)" ? `${n}: ${target}` : `${n}: ${headers.get(n)}`
  ).join("\n");
  return { names, text };
}

/**
 * Signatures made at once, at most: one per core. Sixteen requests signed together would all
 * wait for the last (the threads share the cores); one after another, the first goes out after
 * one signature's time.
 */
const SIGNING_AT_ONCE = Math.max(1, navigator.hardwareConcurrency || 1);
let signing = 0;
const waiting: (() => void)[] = [];

async function sign(key: LoadedKey, text: string): Promise<string> {
  // The worker signs one at a time, in order: the first of a window goes out after one signature.
  if ("sessionKeyPem" in key) return await signWith(key.sessionKeyPem, text);
  if (signing < SIGNING_AT_ONCE) signing++;
  else await new Promise<void>((resolve) => waiting.push(resolve)); // handed a finished one's slot
  try {
    const bytes = await crypto.subtle.sign(
      ALGORITHM,
      key.webCrypto,
      new TextEncoder().encode(text),
    );
    return new Uint8Array(bytes).toBase64();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else signing--;
  }
}

/** A key id as a quoted header parameter takes it: visible ASCII but `"` and `\`. */
const KEY_ID = /^[!#-[\]-~]+$/;

function authorization(keyId: string, names: string[], signature: string): string {
  // Checked here so the error does not quote it: fetch's own check would, and a session
  // token's key id is a credential.
  if (!KEY_ID.test(keyId)) {
    throw new Error("the key id has characters an Authorization header cannot carry");
  }
  return `Signature version="1",keyId="${keyId}",algorithm="rsa-sha256",` +
    `headers="${names.join(" ")}",signature="${signature}"`;
}
