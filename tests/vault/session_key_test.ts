import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { startSessionKeyPair, takeSessionKeyPair } from "../../src/vault/session_key.ts";

Deno.test("takeSessionKeyPair() hands the pair started early out once, then new pairs", async () => {
  startSessionKeyPair();
  startSessionKeyPair(); // a second start does not start (or hand out) another pair
  const first = await takeSessionKeyPair();
  const second = await takeSessionKeyPair();
  // A session key is never shared by two authentications in one process.
  assert.notEqual(first.getPrivate(), second.getPrivate());
  for (const pair of [first, second]) {
    const priv = createPrivateKey(pair.getPrivate());
    assert(priv.asymmetricKeyType === "rsa" && priv.asymmetricKeyDetails?.modulusLength === 2048);
    const pub = createPublicKey(pair.getPublic()).export({ format: "der", type: "spki" });
    assert(pub.equals(createPublicKey(priv).export({ format: "der", type: "spki" })));
  }
});
