/**
 * The session key pair for instance-principal federation.
 *
 * `oci-common`'s own supplier generates an RSA-2048 key pair with `generateKeyPairSync` when the
 * provider is built and then a second one on the first token request (its `refreshKeys`), so a
 * run paid for two, each blocking the event loop (under Deno 50–700 ms each; prime search time
 * varies). Here one pair is generated as soon as a run starts, in parallel with loading the
 * program and reading instance metadata, and the first token request uses it: a key that no token
 * was ever issued for is as fresh as a new one. Later refreshes (a token expiring in a long run)
 * make a new pair each time, as the SDK does (see instance_principal.ts).
 *
 * The pair is RSA-2048 of three primes (`rsa.ts`): found in ~40 ms instead of ~165 ms, and
 * each signature with it costs half the CPU of a two-prime key's in WebCrypto.
 *
 * @module
 */
import { generateKeyPair, holdKeyWorker } from "./key_worker.ts";

/** A key pair as `oci-common` reads it: PEM strings (SPKI public, PKCS#8 private). */
export interface PemKeyPair {
  getPublic(): string;
  getPrivate(): string;
}

/** Generates a key pair: RSA-2048 of three primes, e = 65537, on the key's own thread. */
export async function generateSessionKeyPair(): Promise<PemKeyPair> {
  const { publicPem, privatePem } = await generateKeyPair();
  return { getPublic: () => publicPem, getPrivate: () => privatePem };
}

// The pair started ahead of `openVault` by `startSessionKeyPair`, not yet handed out, and the
// hold that keeps its worker (where the key is) running until then.
let early: { pair: Promise<PemKeyPair>; release(): void } | undefined;

/**
 * Starts generating the session key pair now, first thing in a run that will authenticate with
 * an instance principal, so that the generation (~40 ms on the key's own thread) overlaps
 * loading the rest of the program and the map. The next {@linkcode takeSessionKeyPair} gets it;
 * the pair lives only in this process's memory.
 */
export function startSessionKeyPair(): void {
  if (early) return;
  early = { release: holdKeyWorker(), pair: generateSessionKeyPair() };
  early.pair.catch(() => {
    // Deliberately ignored here: the authentication that takes the pair reports the failure.
  });
}

/**
 * Lets go of the pair {@linkcode startSessionKeyPair} started if nobody took it (the run needed
 * no vault), so that its worker ends.
 */
export function dropSessionKeyPair(): void {
  const dropped = early;
  early = undefined;
  dropped?.release();
}

/**
 * The pair {@linkcode startSessionKeyPair} started (each is handed out once), else a new one.
 * The taker holds the key's worker itself (as an instance principal does, before taking):
 * the start's hold is let go once the taker's synchronous part has run.
 */
export function takeSessionKeyPair(): Promise<PemKeyPair> {
  const taken = early;
  early = undefined;
  if (!taken) return generateSessionKeyPair();
  queueMicrotask(taken.release);
  return taken.pair;
}
