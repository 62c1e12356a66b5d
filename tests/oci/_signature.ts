/**
 * OCI request signatures (draft-cavage HTTP signatures, rsa-sha256), both sides.
 *
 * The stand-in verifies with these; tests sign hand-made requests with `signRequest` to prove
 * that the stand-in rejects what OCI would reject.
 *
 * @module
 */
import { createHash, createSign, createVerify, type KeyObject } from "node:crypto";

/** The parameters of an `Authorization: Signature …` header. */
export interface SignatureParams {
  version?: string;
  keyId: string;
  algorithm: string;
  headers: string[];
  signature: string;
}

/** Parses an Authorization header; null when it is not a well-formed Signature header. */
export function parseAuthorization(value: string | null): SignatureParams | null {
  if (!value || !value.startsWith("Signature ")) return null;
  const params = new Map<string, string>();
  // Values are quoted and never contain a double quote (keyIds, base64, header lists).
  for (const m of value.slice("Signature ".length).matchAll(/\s*([a-zA-Z]+)="([^"]*)"\s*,?/g)) {
    params.set(m[1], m[2]);
  }
  const keyId = params.get("keyId");
  const signature = params.get("signature");
  const headers = params.get("headers");
  if (!keyId || !signature || !headers) return null;
  return {
    version: params.get("version"),
    keyId,
    algorithm: params.get("algorithm") ?? "",
    headers: headers.toLowerCase().split(/\s+/).filter(Boolean),
    signature,
  };
}

/**
 * Builds the string that is signed. Throws when a listed header is missing from the request.
 */
export function signingString(
  method: string,
  target: string,
  headers: Headers,
  names: string[],
): string {
  return names.map((name) => {
    if (name === "(request-target)") return `(request-target): ${method.toLowerCase()} ${target}`;
    const v = headers.get(name);
    if (v === null || v === "") throw new Error(`Signed header "${name}" is missing`);
    return `${name}: ${v}`;
  }).join("\n");
}

/** Verifies an rsa-sha256 signature over `data`. */
export function verifyRsaSha256(data: string, signatureB64: string, key: KeyObject): boolean {
  const v = createVerify("RSA-SHA256");
  v.update(data);
  return v.verify(key, signatureB64, "base64");
}

/** base64(sha256(bytes)), the value of `x-content-sha256`. */
export function contentSha256(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("base64");
}

/** Options for `signRequest`. */
export interface SignOptions {
  keyId: string;
  /** PEM private key (PKCS#1 or PKCS#8). */
  privateKey: string;
  /** Default: now. */
  date?: Date;
  /** Default: the OCI set for the method. */
  headers?: string[];
}

/**
 * Signs a request the way the OCI SDKs do and returns the headers to send (including
 * `authorization`). For tests: the stand-in must accept this, and reject tampered variants.
 */
export function signRequest(
  method: string,
  url: string,
  body: Uint8Array | null,
  opts: SignOptions,
): Headers {
  const u = new URL(url);
  const h = new Headers();
  h.set("x-date", (opts.date ?? new Date()).toUTCString());
  h.set("host", u.host);
  let names = ["x-date", "(request-target)", "host"];
  if (["POST", "PUT", "PATCH"].includes(method)) {
    const b = body ?? new Uint8Array();
    h.set("content-type", "application/json");
    h.set("content-length", String(b.length));
    h.set("x-content-sha256", contentSha256(b));
    names = [...names, "content-type", "content-length", "x-content-sha256"];
  }
  names = opts.headers ?? names;
  const data = signingString(method, u.pathname + u.search, h, names);
  const s = createSign("RSA-SHA256");
  s.update(data);
  const sig = s.sign(opts.privateKey, "base64");
  h.set(
    "authorization",
    `Signature version="1",keyId="${opts.keyId}",algorithm="rsa-sha256",` +
      `headers="${names.join(" ")}",signature="${sig}"`,
  );
  return h;
}
