/**
 * The session key pair for instance-principal federation, generated off the main thread.
 *
 * `oci-common`'s own supplier generates an RSA-2048 key pair with `generateKeyPairSync` when the
 * provider is built and then a second one on the first token request (its `refreshKeys`), so a
 * run paid for two, each blocking the event loop (under Deno 50–700 ms each; prime search time
 * varies). Here one pair is generated with WebCrypto (off the main thread) as soon as a run
 * starts, in parallel with loading the program and reading instance metadata, and the first
 * token request uses it: a key that no token was ever issued for is as fresh as a new one. Later
 * refreshes (a token expiring in a long run) make a new pair each time, as the SDK does (see
 * instance_principal.ts).
 *
 * @module
 */
/** A key pair as `oci-common` reads it: PEM strings (SPKI public, PKCS#8 private). */
export interface PemKeyPair {
  getPublic(): string;
  getPrivate(): string;
}

const RSA = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
} as const;

/** Generates a key pair with WebCrypto, off the main thread. */
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

// The pair started ahead of `openVault` by `startSessionKeyPair`, not yet handed out.
let early: Promise<PemKeyPair> | undefined;

/**
 * Starts generating the session key pair now, at the start of a run that will authenticate with
 * an instance principal, so that the generation (a random prime search, 50–700 ms here) overlaps
 * loading the rest of the program and the map. The next {@linkcode takeSessionKeyPair}
 * gets it; the pair lives only in this process's memory, like the one it replaces.
 */
export function startSessionKeyPair(): void {
  early ??= generateSessionKeyPair();
  early.catch(() => {
    // Deliberately ignored here: the authentication that takes the pair reports the failure.
  });
}

/** The pair {@linkcode startSessionKeyPair} started (each is handed out once), else a new one. */
export function takeSessionKeyPair(): Promise<PemKeyPair> {
  const pair = early ?? generateSessionKeyPair();
  early = undefined;
  return pair;
}

function pem(label: string, der: Uint8Array): string {
  const lines = der.toBase64().match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
