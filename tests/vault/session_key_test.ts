import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { stopKeyWorker } from "../../src/vault/key_worker.ts";
import { multiPrimeKeyOf, spkiDer } from "../../src/vault/rsa.ts";
import { startSessionKeyPair, takeSessionKeyPair } from "../../src/vault/session_key.ts";

const derOf = (pem: string) => Uint8Array.fromBase64(pem.replace(/-----[A-Z ]+-----|\n/g, ""));

Deno.test("takeSessionKeyPair() hands the pair started early out once, then new pairs", async () => {
  try {
    startSessionKeyPair();
    startSessionKeyPair(); // a second start does not start (or hand out) another pair
    const first = await takeSessionKeyPair();
    const second = await takeSessionKeyPair();
    // A session key is never shared by two authentications in one process.
    assert.notEqual(first.getPrivate(), second.getPrivate());
    for (const pair of [first, second]) {
      // RSA-2048 of three primes, and the public key is that key's.
      const key = multiPrimeKeyOf(derOf(pair.getPrivate()));
      assert(key, "the private key is a PKCS#8 RSA key of more than two primes");
      assert.equal(key.primes.length, 3);
      assert.equal(key.n.toString(2).length, 2048);
      assert.equal(key.e, 65537n);
      assert.deepEqual(derOf(pair.getPublic()), spkiDer(key));
      // An ordinary RSA-2048 public key to anyone else (here node:crypto's parser).
      const pub = createPublicKey(pair.getPublic());
      assert.equal(pub.asymmetricKeyDetails?.modulusLength, 2048);
    }
  } finally {
    stopKeyWorker();
  }
});
