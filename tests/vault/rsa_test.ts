/**
 * The session key's RSA (src/vault/rsa.ts) against independent implementations: OpenSSL checks
 * the keys and makes the same signatures, WebCrypto verifies them. Requires `openssl`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  bigintOf,
  bytesOf,
  generateRsaKey,
  isProbablePrime,
  keyOf,
  modInverse,
  modPow,
  multiPrimeKeyOf,
  pkcs8Der,
  rsaFunctions,
  type RsaKey,
  signPkcs1Sha256,
  spkiDer,
} from "../../src/vault/rsa.ts";

const ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
const sha256 = (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest());
const pem = (label: string, der: Uint8Array) =>
  `-----BEGIN ${label}-----\n${
    der.toBase64().match(/.{1,64}/g)!.join("\n")
  }\n-----END ${label}-----\n`;

async function openssl(args: string[], stdin?: Uint8Array) {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  return await child.output();
}

// One key for the tests that only need a key (each generation is ~40 ms).
const key = generateRsaKey();

Deno.test("generateRsaKey() makes a 2048-bit key of three distinct primes with valid CRT values", () => {
  assert.equal(key.n.toString(2).length, 2048);
  assert.equal(key.e, 65537n);
  assert.equal(key.primes.length, 3);
  const primes = key.primes.map((p) => p.prime);
  assert.equal(new Set(primes).size, 3);
  assert.equal(primes.reduce((a, b) => a * b, 1n), key.n);
  for (const [i, p] of key.primes.entries()) {
    assert(isProbablePrime(p.prime, 40), `prime ${i + 1} is prime`);
    // e·d ≡ 1 (mod p − 1): the exponent inverts e for this prime (so gcd(e, p − 1) = 1).
    assert.equal((key.e * p.exponent) % (p.prime - 1n), 1n);
    assert.equal(p.exponent, key.d % (p.prime - 1n));
  }
  const [p, q, r] = key.primes;
  assert.equal((q.coefficient * q.prime) % p.prime, 1n, "qInv = q⁻¹ mod p");
  assert.equal((r.coefficient * p.prime * q.prime) % r.prime, 1n, "t = (pq)⁻¹ mod r");
  assert(key.d.toString(2).length > 1024, "d > 2^(nlen/2)");
  // Sizes 683, 683, 682 bits.
  assert.deepEqual(primes.map((x) => x.toString(2).length), [683, 683, 682]);
});

Deno.test("OpenSSL accepts the key as valid and makes the very same signatures", async () => {
  const privatePem = new TextEncoder().encode(pem("PRIVATE KEY", pkcs8Der(key)));
  const dir = await Deno.makeTempDir();
  try {
    const keyFile = `${dir}/key.pem`;
    await Deno.writeFile(keyFile, privatePem, { mode: 0o600 });
    const check = await openssl(["pkey", "-in", keyFile, "-check", "-noout"]);
    assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
    const text = await openssl(["pkey", "-in", keyFile, "-text", "-noout"]);
    assert.match(new TextDecoder().decode(text.stdout), /2048 bit, 3 primes/);
    for (const message of ["", "x-date: Wed, 02 Dec 2026 12:00:00 GMT\n(request-target): get /"]) {
      const data = new TextEncoder().encode(message);
      const theirs = await openssl(["dgst", "-sha256", "-sign", keyFile], data);
      assert.equal(theirs.code, 0);
      assert.deepEqual(signPkcs1Sha256(key, sha256(data)), new Uint8Array(theirs.stdout));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WebCrypto verifies every signature, across blinding renewals, and only for its data", async () => {
  const publicKey = await crypto.subtle.importKey("spki", spkiDer(key), ALGORITHM, false, [
    "verify",
  ]);
  // 70 signatures: the blinding pair is renewed every 32.
  for (let i = 0; i < 70; i++) {
    const data = new TextEncoder().encode(`request ${i}`);
    const signature = signPkcs1Sha256(key, sha256(data));
    assert.equal(signature.length, 256);
    assert(await crypto.subtle.verify(ALGORITHM, publicKey, signature, data), `signature ${i}`);
    const other = new TextEncoder().encode(`request ${i}!`);
    assert(!await crypto.subtle.verify(ALGORITHM, publicKey, signature, other));
  }
});

Deno.test("signPkcs1Sha256() refuses a digest that is not 32 bytes", () => {
  assert.throws(() => signPkcs1Sha256(key, new Uint8Array(31)), /32 bytes/);
});

Deno.test("a key whose numbers do not agree never yields a signature", () => {
  // A fault in the CRT (here: a wrong exponent for the third prime) would make a signature that
  // reveals a prime to whoever has the public key; the self-check refuses to return it.
  const broken: RsaKey = {
    ...key,
    primes: key.primes.map((p, i) => i === 2 ? { ...p, exponent: p.exponent + 2n } : p),
    blinding: { ...key.blinding },
  };
  assert.throws(() => signPkcs1Sha256(broken, sha256(new Uint8Array(1))), /its own check/);
});

Deno.test("pkcs8Der() and multiPrimeKeyOf() round-trip; anything else is not a multi-prime key", async () => {
  const back = multiPrimeKeyOf(pkcs8Der(key))!;
  assert.equal(back.n, key.n);
  assert.equal(back.d, key.d);
  assert.deepEqual(back.primes.map((p) => p.prime), key.primes.map((p) => p.prime));
  const digest = sha256(new Uint8Array([1, 2, 3]));
  assert.deepEqual(signPkcs1Sha256(back, digest), signPkcs1Sha256(key, digest));

  // A two-prime key (WebCrypto's), an EC key, garbage, truncations, a tampered prime.
  const rsa2 = await crypto.subtle.generateKey(
    { ...ALGORITHM, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ["sign"],
  );
  const ec = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
  ]);
  const der = pkcs8Der(key);
  // The third prime's bytes changed: the primes' product is no longer the modulus.
  const tampered = der.slice();
  const third = bytesOf(key.primes[2].prime, 86);
  const at = der.findIndex((_, i) => third.every((b, j) => der[i + j] === b));
  assert(at > 0);
  tampered[at + 40] ^= 0x01;
  for (
    const [what, bytes] of [
      ["two primes", new Uint8Array(await crypto.subtle.exportKey("pkcs8", rsa2.privateKey))],
      ["EC", new Uint8Array(await crypto.subtle.exportKey("pkcs8", ec.privateKey))],
      ["empty", new Uint8Array(0)],
      ["garbage", crypto.getRandomValues(new Uint8Array(1200))],
      ["truncated", der.subarray(0, der.length - 1)],
      ["trailing byte", new Uint8Array([...der, 0])],
      ["tampered", tampered],
    ] as const
  ) assert.equal(multiPrimeKeyOf(bytes), undefined, what);
});

Deno.test("the arithmetic agrees with known values", () => {
  assert.equal(modPow(4n, 13n, 497n), 445n);
  assert.equal(modPow(2n, 0n, 7n), 1n);
  assert.equal(modPow(5n, 3n, 1n), 0n);
  assert.equal(modInverse(3n, 11n), 4n);
  assert.throws(() => modInverse(6n, 9n), /Not invertible/);
  assert.equal(bigintOf(bytesOf(0x1234n, 4)), 0x1234n);
  assert.deepEqual(bytesOf(1n, 2), new Uint8Array([0, 1]));
  assert.throws(() => bytesOf(0x10000n, 2), RangeError);
  // Primes, composites, Carmichael numbers, a strong pseudoprime to base 2 (2047 = 23·89).
  for (const p of [2n, 3n, 65537n, 2n ** 127n - 1n]) assert(isProbablePrime(p, 20), String(p));
  for (const c of [0n, 1n, 561n, 41041n, 2047n, 3215031751n, (2n ** 61n - 1n) * (2n ** 31n - 1n)]) {
    assert(!isProbablePrime(c, 20), String(c));
  }
  assert.throws(() => keyOf(15n, 3n, 3n, [3n, 7n]), /not the modulus/);
});

Deno.test("modPow agrees with a one-bit-at-a-time reference: short and long exponents, every window shape", () => {
  // The reference: right to left, one bit at a time.
  const reference = (base: bigint, exponent: bigint, modulus: bigint) => {
    let result = 1n % modulus;
    let b = ((base % modulus) + modulus) % modulus;
    for (let e = exponent; e > 0n; e >>= 1n) {
      if (e & 1n) result = (result * b) % modulus;
      b = (b * b) % modulus;
    }
    return result;
  };
  const random = (bits: number) =>
    BigInt("0x" + crypto.getRandomValues(new Uint8Array(bits / 8)).toHex());
  const modulus = random(512) | 1n;
  const exponents = [
    0n,
    1n,
    2n,
    3n,
    65537n,
    2n ** 32n - 1n,
    2n ** 32n,
    2n ** 33n + 1n,
    // Runs of zeros and ones longer than a window, all-zero windows, a short first window.
    (2n ** 200n - 1n) << 7n,
    2n ** 300n + 1n,
    BigInt("0b" + "100001".repeat(40)),
    BigInt("0b" + "1".repeat(33) + "0".repeat(40) + "10000"),
  ];
  for (let i = 0; i < 40; i++) exponents.push(random(8 * (5 + i)));
  for (const exponent of exponents) {
    const base = random(512);
    assert.equal(
      modPow(base, exponent, modulus),
      reference(base, exponent, modulus),
      String(exponent),
    );
  }
  assert.equal(modPow(-3n, 3n, 7n), reference(4n, 3n, 7n)); // a negative base, reduced first
  // A negative exponent is refused, short or long, not taken for its absolute value.
  assert.throws(() => modPow(3n, -3n, 7n), RangeError);
  assert.throws(() => modPow(3n, -(2n ** 40n), 7n), RangeError);
});

Deno.test("rsaFunctions() is self-contained: its source text alone makes the same signatures", () => {
  // What the session key's worker runs (key_worker.ts): evaluated here with no module scope.
  const fresh = new Function(`"use strict"; return (${rsaFunctions})();`)() as ReturnType<
    typeof rsaFunctions
  >;
  const other = fresh.generateRsaKey();
  assert.equal(other.n.toString(2).length, 2048);
  const digest = sha256(new Uint8Array([9]));
  assert.deepEqual(fresh.signPkcs1Sha256(key, digest), signPkcs1Sha256(key, digest));
  assert.deepEqual(fresh.pkcs8Der(key), pkcs8Der(key));
  assert.equal(fresh.multiPrimeKeyOf(pkcs8Der(other))?.n, other.n);
});

Deno.test("generateRsaKey() makes keys of two and of four primes too, of exactly the size asked", async () => {
  // In a worker (from the source text, as key_worker.ts runs it), so that a search that never
  // ends fails the test instead of hanging it.
  const source = `const rsa = (${rsaFunctions})();
    onmessage = ({ data: [bits, count, digest] }) => {
      const key = rsa.generateRsaKey(bits, count);
      postMessage({ pkcs8: rsa.pkcs8Der(key), bits: key.n.toString(2).length,
        primes: key.primes.length, signature: rsa.signPkcs1Sha256(key, digest) });
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  type Made = {
    pkcs8: Uint8Array<ArrayBuffer>;
    bits: number;
    primes: number;
    signature: Uint8Array;
  };
  const make = (bits: number, count: number, data: Uint8Array) =>
    new Promise<Made>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${bits}-bit key in 20 s`)), 20_000);
      worker.onmessage = ({ data }) => {
        clearTimeout(timer);
        resolve(data);
      };
      worker.postMessage([bits, count, sha256(data)]);
    });
  try {
    const data = new TextEncoder().encode("two primes");
    const two = await make(1024, 2, data);
    assert.deepEqual([two.bits, two.primes], [1024, 2]);
    // A two-prime key is WebCrypto's own kind: it imports it and makes the same signature.
    const theirs = await crypto.subtle.importKey("pkcs8", two.pkcs8, ALGORITHM, false, ["sign"]);
    assert.deepEqual(
      two.signature,
      new Uint8Array(await crypto.subtle.sign(ALGORITHM, theirs, data)),
    );
    const four = await make(2048, 4, data);
    assert.deepEqual([four.bits, four.primes], [2048, 4]);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});
