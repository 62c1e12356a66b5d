/**
 * The session key's thread (src/vault/key_worker.ts): keys made and used in a real worker,
 * checked by WebCrypto and OpenSSL; its lifetime checked in a child process. Requires `openssl`.
 */
import assert from "node:assert/strict";
import {
  forgetKey,
  generateKeyPair,
  holdKeyWorker,
  keysHeld,
  setNextRequestId,
  signsWith,
  signWith,
  stopKeyWorker,
} from "../../src/vault/key_worker.ts";
import { generateRsaKey, pkcs8Der, spkiDer } from "../../src/vault/rsa.ts";

const ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
const pem = (label: string, der: Uint8Array) =>
  `-----BEGIN ${label}-----\n${
    der.toBase64().match(/.{1,64}/g)!.join("\n")
  }\n-----END ${label}-----\n`;
const derOf = (text: string) =>
  Uint8Array.fromBase64(text.replace(/-----[A-Z ]+-----|\n/g, "")) as Uint8Array<ArrayBuffer>;

async function verifier(publicPem: string) {
  const key = await crypto.subtle.importKey("spki", derOf(publicPem), ALGORITHM, false, ["verify"]);
  return (signature: string, text: string) =>
    crypto.subtle.verify(
      ALGORITHM,
      key,
      Uint8Array.fromBase64(signature) as Uint8Array<ArrayBuffer>,
      new TextEncoder().encode(text),
    );
}

Deno.test("a key made in the worker signs there; WebCrypto verifies and OpenSSL agrees", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pair = await generateKeyPair();
    assert(await signsWith(pair.privatePem));
    const verify = await verifier(pair.publicPem);
    const texts = Array.from({ length: 40 }, (_, i) => `x-date: now\n(request-target): get /${i}`);
    // Many at once, as a signing window asks: each answer is its own request's.
    const signatures = await Promise.all(texts.map((t) => signWith(pair.privatePem, t)));
    for (const [i, signature] of signatures.entries()) {
      assert(await verify(signature, texts[i]), `signature ${i}`);
      assert(!await verify(signature, texts[(i + 1) % texts.length]));
    }
    await Deno.writeTextFile(`${dir}/key.pem`, pair.privatePem, { mode: 0o600 });
    const check = await new Deno.Command("openssl", {
      args: ["pkey", "-in", `${dir}/key.pem`, "-text", "-noout", "-check"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
    assert.match(new TextDecoder().decode(check.stdout), /2048 bit, 3 primes/);
    await Deno.writeTextFile(`${dir}/data`, texts[0]);
    const theirs = await new Deno.Command("openssl", {
      args: ["dgst", "-sha256", "-sign", `${dir}/key.pem`, `${dir}/data`],
      stdout: "piped",
    }).output();
    assert.equal(new Uint8Array(theirs.stdout).toBase64(), signatures[0]);
  } finally {
    stopKeyWorker();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("more requests than the ring holds, with keys loaded and forgotten among them, each get their own answer", async () => {
  // Requests go to the worker through a ring of 64 slots in shared memory; loads and forgets are
  // messages between them. 300 at once overflow the ring (the rest wait on this thread), and the
  // answers arrive in order: a mix-up would show as a signature that verifies the wrong text.
  const release = holdKeyWorker();
  try {
    const pair = await generateKeyPair();
    const foreignKey = generateRsaKey();
    const foreign = pem("PRIVATE KEY", pkcs8Der(foreignKey));
    const verifyOurs = await verifier(pair.publicPem);
    const verifyForeign = await verifier(pem("PUBLIC KEY", spkiDer(foreignKey)));
    const asked: { text: string; foreign: boolean; signature: Promise<string> }[] = [];
    for (let i = 0; i < 300; i++) {
      const text = `date: now\n(request-target): get /secret/${i}`;
      // Every 50th a foreign key: loaded (a message) after signatures queued before it, then
      // forgotten, so the next use loads it again.
      const useForeign = i % 50 === 25;
      asked.push({
        text,
        foreign: useForeign,
        signature: signWith(useForeign ? foreign : pair.privatePem, text),
      });
      if (useForeign) forgetKey(foreign);
    }
    for (const [i, { text, foreign, signature }] of asked.entries()) {
      const verify = foreign ? verifyForeign : verifyOurs;
      assert(await verify(await signature, text), `request ${i}`);
      assert(!await verify(await signature, asked[(i + 1) % asked.length].text), `request ${i}`);
    }
    // The foreign key was let go each time; only the generated one is held.
    assert.equal(keysHeld(), 1);
  } finally {
    release();
    stopKeyWorker();
  }
});

Deno.test("a signature longer than a slot (a key of over 4096 bits) comes back whole", async () => {
  // WebCrypto here stops at 4096 bits: OpenSSL verifies.
  const key = generateRsaKey(4104, 3);
  const dir = await Deno.makeTempDir();
  try {
    const signature = await signWith(pem("PRIVATE KEY", pkcs8Der(key)), "a long one");
    assert.equal(Uint8Array.fromBase64(signature).length, 513);
    await Deno.writeTextFile(`${dir}/public.pem`, pem("PUBLIC KEY", spkiDer(key)));
    await Deno.writeFile(`${dir}/signature`, Uint8Array.fromBase64(signature));
    for (const [text, verifies] of [["a long one", true], ["another", false]] as const) {
      await Deno.writeTextFile(`${dir}/data`, text);
      const check = await new Deno.Command("openssl", {
        args: [
          "dgst",
          "-sha256",
          "-verify",
          `${dir}/public.pem`,
          "-signature",
          `${dir}/signature`,
          `${dir}/data`,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(check.code === 0, verifies, new TextDecoder().decode(check.stdout));
    }
  } finally {
    stopKeyWorker();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("signsWith() takes multi-prime PKCS#8 keys only, and a stopped worker reloads them", async () => {
  try {
    // A three-prime key made elsewhere (here on this thread): loaded into the worker.
    const foreign = pem("PRIVATE KEY", pkcs8Der(generateRsaKey()));
    assert(await signsWith(foreign));
    const two = await crypto.subtle.generateKey(
      { ...ALGORITHM, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ["sign"],
    );
    const twoPrime = pem(
      "PRIVATE KEY",
      new Uint8Array(await crypto.subtle.exportKey("pkcs8", two.privateKey)),
    );
    for (
      const [what, text] of [
        ["two primes (WebCrypto's to sign with)", twoPrime],
        ["encrypted", foreign.replaceAll("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")],
        ["PKCS#1", foreign.replaceAll("PRIVATE KEY", "RSA PRIVATE KEY")],
        ["not base64", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"],
        ["empty", ""],
      ] as const
    ) assert.equal(await signsWith(text), false, what);

    // After a stop, the same PEM signs again (loaded into the new worker).
    const pair = await generateKeyPair();
    stopKeyWorker();
    const verify = await verifier(pair.publicPem);
    assert(await verify(await signWith(pair.privatePem, "after a stop"), "after a stop"));
  } finally {
    stopKeyWorker();
  }
});

Deno.test("a key the worker refuses fails with a reason that quotes none of it", async () => {
  try {
    const good = pem("PRIVATE KEY", pkcs8Der(generateRsaKey()));
    const bytes = derOf(good);
    // Inside the modulus: the primes no longer multiply to it.
    bytes[40] ^= 0x01;
    const bad = pem("PRIVATE KEY", bytes);
    assert.equal(await signsWith(bad), false);
    const error = await signWith(bad, "text").then(() => undefined, (e: Error) => e);
    assert(error instanceof Error);
    for (const line of bad.split("\n").filter((l) => l.length > 20)) {
      assert(!error.message.includes(line) && !String(error.stack).includes(line));
    }
  } finally {
    stopKeyWorker();
  }
});

Deno.test("the worker ends with its last holder: a process that used it exits by itself", async () => {
  // In a child: hold, generate, sign, let go, and end without Deno.exit. A worker left running
  // would keep it alive until the timeout kills it.
  const script = `
    import { generateKeyPair, holdKeyWorker, signWith } from ${
    JSON.stringify(new URL("../../src/vault/key_worker.ts", import.meta.url).href)
  };
    const release = holdKeyWorker();
    const pair = await generateKeyPair();
    const signing = signWith(pair.privatePem, "in flight when let go");
    release(); // with a signature still in flight: the worker ends once it is answered
    console.log((await signing).length);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-prompt", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  });
  const started = performance.now();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "344", "a base64 RSA-2048 signature");
  assert(performance.now() - started < 15_000);
  // And holders are counted: a second holder keeps it for the first one's signatures.
  const a = holdKeyWorker();
  const b = holdKeyWorker();
  try {
    const pair = await generateKeyPair();
    a();
    a(); // a second call of the same release does nothing
    const verify = await verifier(pair.publicPem);
    assert(await verify(await signWith(pair.privatePem, "still held"), "still held"));
  } finally {
    b();
    stopKeyWorker();
  }
});

Deno.test("request ids past 2^31 (they wrap in the ring's Int32 slots) still get their answers", async () => {
  // An id travels in an Int32 slot; a reply matched to a pending request by the JS number would
  // miss once the id passes 2^31: the caller would wait forever and the worker never end.
  const release = holdKeyWorker();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    setNextRequestId(2 ** 31 - 3);
    const pair = await generateKeyPair(); // a message and its marker slot
    const verify = await verifier(pair.publicPem);
    const texts = Array.from({ length: 8 }, (_, i) => `date: now\n(request-target): get /${i}`);
    const signed = Promise.all(texts.map((t) => signWith(pair.privatePem, t)));
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer within 10 s")), 10_000);
    });
    const signatures = await Promise.race([signed, late]);
    for (const [i, signature] of signatures.entries()) assert(await verify(signature, texts[i]));
    // A message past the wrap too: a key loaded and forgotten.
    const foreign = pem("PRIVATE KEY", pkcs8Der(generateRsaKey()));
    assert(await Promise.race([signsWith(foreign), late]));
  } finally {
    clearTimeout(timer);
    release();
    stopKeyWorker();
    setNextRequestId(1);
  }
});
