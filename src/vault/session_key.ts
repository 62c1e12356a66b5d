/**
 * The session key pair for instance-principal federation, generated off the main thread.
 *
 * `oci-common`'s own supplier generates an RSA-2048 key pair with `generateKeyPairSync` when the
 * provider is built and then a second one on the first token request (its `refreshKeys`), so a
 * run paid for two, each blocking the event loop (under Deno 50–700 ms each; prime search time
 * varies). Here one pair is generated with WebCrypto (on a worker thread) as soon as a run
 * starts, in parallel with loading the SDK and reading instance metadata, and the first token
 * request uses it: a key that no token was ever issued for is as fresh as a new one. Later
 * refreshes (a token expiring in a long run) make a new pair each time, as the SDK does.
 *
 * @module
 */
import { generateKeyPairSync } from "node:crypto";

/** A key pair as `oci-common` reads it: PEM strings (SPKI public, PKCS#8 private). */
export interface PemKeyPair {
  getPublic(): string;
  getPrivate(): string;
}

/** The shape of `oci-common`'s `SessionKeySupplier`. */
export interface SessionKeySupplier {
  getKeyPair(): PemKeyPair;
  refreshKeys(): void;
}

const RSA = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
} as const;

/** Starts generating a key pair on a worker thread. */
export async function generateSessionKeyPair(): Promise<PemKeyPair> {
  const { publicKey, privateKey } = await crypto.subtle.generateKey(RSA, true, ["sign"]);
  const [spki, pkcs8] = await Promise.all([
    crypto.subtle.exportKey("spki", publicKey),
    crypto.subtle.exportKey("pkcs8", privateKey),
  ]);
  const pub = pem("PUBLIC KEY", new Uint8Array(spki));
  const priv = pem("PRIVATE KEY", new Uint8Array(pkcs8));
  return { getPublic: () => pub, getPrivate: () => priv };
}

/** A supplier and the moment its first key pair is there. */
export interface PendingSessionKeySupplier extends SessionKeySupplier {
  /** Settles when the first pair is generated (rejects if that failed). */
  ready: Promise<void>;
}

/**
 * A supplier whose first key pair is `first` (being generated); its first `refreshKeys()` keeps
 * that pair, every later one generates a new pair. Await `ready` before the first token request.
 */
export function sessionKeySupplier(first: Promise<PemKeyPair>): PendingSessionKeySupplier {
  let current: PemKeyPair | undefined;
  let unused = true;
  return {
    ready: first.then((pair) => {
      current ??= pair;
    }),
    getKeyPair() {
      if (!current) throw new Error("The session key pair is not generated yet");
      return current;
    },
    refreshKeys() {
      if (unused && current) {
        unused = false;
        return;
      }
      const { publicKey, privateKey } = generateKeyPairSync("rsa", {
        modulusLength: 2048,
        publicExponent: 65537,
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
      });
      current = { getPublic: () => publicKey, getPrivate: () => privateKey };
    },
  };
}

function pem(label: string, der: Uint8Array): string {
  const lines = der.toBase64().match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
