import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { stopKeyWorker } from "../../src/vault/key_worker.ts";
import { multiPrimeKeyOf, spkiDer } from "../../src/vault/rsa.ts";
import { startSessionKeyPair, takeSessionKeyPair } from "../../src/vault/session_key.ts";
import { instancePrincipalArgs, makeWorkspace } from "../e2e/harness.ts";
import { startOciStandIn } from "../oci/standin.ts";

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

Deno.test("a sync run that takes no pair lets it go: the process ends by itself, no one contacted", async () => {
  // In a child that runs `sync` without Deno.exit (as a caller other than main.ts would): a map
  // with nothing to fetch. The pair started for it must not keep its worker, and so the
  // process, alive; and a run with nothing to fetch authenticates with no one.
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    await ws.writeMap(["# nothing to fetch yet"]);
    const started = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        new URL("./_sdk_free_child.ts", import.meta.url).pathname,
        ...ws.args(),
        ...instancePrincipalArgs(oci),
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assert.equal(out.signal, null, "ended by itself, not by the timeout");
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(new TextDecoder().decode(out.stdout), /^RESULT \{"code":0,/m);
    assert(performance.now() - started < 15_000);
    assert.equal(oci.calls.imds + oci.calls.federation, 0, oci.calls.log.join(", "));
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
