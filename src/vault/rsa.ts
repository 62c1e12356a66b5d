/**
 * The session key's RSA: a 2048-bit key of three primes, generated and used for PKCS#1 v1.5
 * SHA-256 signatures in `BigInt`.
 *
 * Why not WebCrypto: under Deno an RSA-2048 signature costs 2.1–2.5 ms of CPU here (the `rsa`
 * crate behind both WebCrypto and `node:crypto`), more than everything else a fetched secret
 * costs together, and generating the key (a search for two 1024-bit primes) 60–350 ms, on the
 * critical path of every run. The session key is ours to choose (federation only sees its public
 * half), and RSA with three primes (RFC 8017 §3) signs with three exponentiations modulo
 * 683-bit primes instead of two modulo 1024-bit ones: here about 1 ms a signature, and its
 * primes are found in ~40 ms. The public key is an ordinary 2048-bit RSA key, for OCI a key
 * like any other. Three primes is what OpenSSL allows for a 2048-bit modulus
 * (`ossl_rsa_multip_cap`); the best known attack on such a key is still factoring the modulus
 * with the number field sieve, as on two primes. The elliptic-curve method, whose cost grows
 * with the smallest factor, has found factors of under 300 bits, not 683.
 *
 * All of it is made by one self-contained function, {@linkcode rsaFunctions}, so that the session
 * key's worker thread runs the very same code from its source text (see key_worker.ts).
 *
 * `BigInt` arithmetic is not constant-time, so each signature is blinded (a random `r`,
 * renewed by squaring, as OpenSSL does) and checked against the public key before use, so a
 * fault in the CRT can neither leak a prime nor send a bad signature. Keys given by the user
 * (an API key, a resource principal's) are not made here; two-prime ones, the usual kind, are
 * signed with by WebCrypto, and only a multi-prime one (which WebCrypto cannot import) by this.
 *
 * @example
 * ```ts
 * import { generateRsaKey, signPkcs1Sha256, spkiDer } from "./rsa.ts";
 *
 * const key = generateRsaKey();
 * const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("x-date: …")));
 * const signature = signPkcs1Sha256(key, digest);
 * const publicKey = await crypto.subtle.importKey(
 *   "spki", spkiDer(key), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"],
 * );
 * ```
 *
 * @module
 */
/** One prime of a key and what a signature needs of it (RFC 8017 §3.2, second form). */
export interface RsaPrime {
  prime: bigint;
  /** d mod (prime − 1). */
  exponent: bigint;
  /** (product of the primes before this one)⁻¹ mod prime; for the first prime, unused (0). */
  coefficient: bigint;
  /** Product of the primes before this one (1 for the first). */
  before: bigint;
}

/** An RSA private key with its primes, as {@linkcode generateRsaKey} makes it. */
export interface RsaKey {
  n: bigint;
  e: bigint;
  d: bigint;
  /** The primes in the order of RFC 8017's RSAPrivateKey: p, q, then the other primes. */
  primes: RsaPrime[];
  /** Blinding pair (r^e mod n, r⁻¹ mod n), squared after each use. */
  blinding: { forward: bigint; inverse: bigint; uses: number };
}

/** What {@linkcode rsaFunctions} makes. */
export interface Rsa {
  /** Big-endian unsigned bytes as a BigInt. */
  bigintOf(bytes: Uint8Array): bigint;
  /** A BigInt as exactly `length` big-endian bytes (it must fit). */
  bytesOf(value: bigint, length: number): Uint8Array<ArrayBuffer>;
  /** base^exponent mod modulus. */
  modPow(base: bigint, exponent: bigint, modulus: bigint): bigint;
  /** a⁻¹ mod m; throws when they are not coprime. */
  modInverse(a: bigint, m: bigint): bigint;
  /** Miller–Rabin with `rounds` random bases (after trial division by a few small primes). */
  isProbablePrime(candidate: bigint, rounds: number): boolean;
  /** A new key of `bits` bits (2048) and `primeCount` primes (3), e = 65537. */
  generateRsaKey(bits?: number, primeCount?: number): RsaKey;
  /** The key with its CRT values, from n, e, d and its primes in order. */
  keyOf(n: bigint, e: bigint, d: bigint, primes: bigint[]): RsaKey;
  /** RSASSA-PKCS1-v1_5 signature of the data whose SHA-256 is `digest`. */
  signPkcs1Sha256(key: RsaKey, digest: Uint8Array): Uint8Array<ArrayBuffer>;
  /** The public key as DER SubjectPublicKeyInfo. */
  spkiDer(key: Pick<RsaKey, "n" | "e">): Uint8Array<ArrayBuffer>;
  /** The private key as DER PKCS#8 (RSAPrivateKey version 1 for more than two primes). */
  pkcs8Der(key: RsaKey): Uint8Array<ArrayBuffer>;
  /** The multi-prime RSA key in an unencrypted PKCS#8 DER, or `undefined` for anything else. */
  multiPrimeKeyOf(pkcs8: Uint8Array): RsaKey | undefined;
}

/**
 * Makes this module's functions. Self-contained on purpose: it refers to nothing outside its
 * own body but the language and `crypto.getRandomValues`, so that its source text
 * (`rsaFunctions.toString()`) runs as is in a worker. Keep it that way: the worker's test
 * fails on anything it would miss.
 */
export function rsaFunctions(): Rsa {
  const E = 65537n;
  /** Uses of one blinding pair before a new random one (OpenSSL: 32). */
  const BLINDING_USES = 32;

  /** Big-endian unsigned bytes as a BigInt. */
  function bigintOf(bytes: Uint8Array): bigint {
    if (bytes.length === 0) return 0n;
    return BigInt("0x" + bytes.toHex());
  }

  /** A BigInt as exactly `length` big-endian bytes (it must fit). */
  function bytesOf(value: bigint, length: number): Uint8Array<ArrayBuffer> {
    const hex = value.toString(16).padStart(length * 2, "0");
    if (hex.length > length * 2) throw new RangeError(`Integer does not fit in ${length} bytes`);
    return Uint8Array.fromHex(hex);
  }

  function bitLength(value: bigint): number {
    return value === 0n ? 0 : value.toString(2).length;
  }

  /**
   * base^exponent mod modulus. A long exponent (a private one, a Miller–Rabin one) in fixed
   * windows of 5 bits, left to right: a multiplication after every fifth squaring (but for an
   * all-zero window), where sliding windows (~4 % fewer products) would place each one by the
   * secret's bits, a pattern a timing or power trace shows. A short one (the public exponent,
   * 65537, for the check of each signature) by plain square and multiply: 17 products instead
   * of a 32-entry table first.
   */
  function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
    // Its binary digits would start with "-": square and multiply would take it as positive.
    if (exponent < 0n) throw new RangeError("Negative exponent");
    if (modulus === 1n) return 0n;
    const b = ((base % modulus) + modulus) % modulus;
    const bits = exponent.toString(2);
    if (bits.length <= 32) {
      let result = 1n;
      for (const bit of bits) {
        result = (result * result) % modulus;
        if (bit === "1") result = (result * b) % modulus;
      }
      return result;
    }
    const W = 5;
    const table: bigint[] = [1n, b];
    for (let i = 2; i < 1 << W; i++) table.push((table[i - 1] * b) % modulus);
    const first = bits.length % W || W;
    let result = table[parseInt(bits.slice(0, first), 2)];
    for (let i = first; i < bits.length; i += W) {
      for (let k = 0; k < W; k++) result = (result * result) % modulus;
      const window = parseInt(bits.slice(i, i + W), 2);
      if (window !== 0) result = (result * table[window]) % modulus;
    }
    return result;
  }

  /** a⁻¹ mod m; throws when they are not coprime. */
  function modInverse(a: bigint, m: bigint): bigint {
    let [oldR, r] = [((a % m) + m) % m, m];
    let [oldS, s] = [1n, 0n];
    while (r !== 0n) {
      const q = oldR / r;
      [oldR, r] = [r, oldR - q * r];
      [oldS, s] = [s, oldS - q * s];
    }
    if (oldR !== 1n) throw new RangeError("Not invertible");
    return ((oldS % m) + m) % m;
  }

  function gcd(a: bigint, b: bigint): bigint {
    while (b !== 0n) [a, b] = [b, a % b];
    return a;
  }

  /** A uniformly random integer in [0, 2^bits). */
  function randomBits(bits: number): bigint {
    const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil(bits / 8)));
    const extra = bytes.length * 8 - bits;
    bytes[0] &= 0xff >> extra;
    return bigintOf(bytes);
  }

  /** A uniformly random integer in [low, high). */
  function randomBetween(low: bigint, high: bigint): bigint {
    const range = high - low;
    const bits = bitLength(range);
    for (;;) {
      const candidate = randomBits(bits);
      if (candidate < range) return low + candidate;
    }
  }

  // Odd primes below 2^12, for sieving candidates before Miller–Rabin.
  const SMALL_PRIMES: number[] = (() => {
    const limit = 4096;
    const composite = new Uint8Array(limit);
    const primes: number[] = [];
    for (let i = 3; i < limit; i += 2) {
      if (composite[i]) continue;
      primes.push(i);
      for (let j = i * i; j < limit; j += 2 * i) composite[j] = 1;
    }
    return primes;
  })();

  /**
   * Miller–Rabin with `rounds` random bases. For a random odd candidate of 683 bits that passed
   * the sieve, one round already errs with probability far below 2^-80; the generator uses more.
   */
  function isProbablePrime(candidate: bigint, rounds: number): boolean {
    if (candidate < 2n) return false;
    for (const p of SMALL_PRIMES.slice(0, 16)) {
      if (candidate === BigInt(p)) return true;
      if (candidate % BigInt(p) === 0n) return false;
    }
    if (candidate % 2n === 0n) return candidate === 2n;
    const minusOne = candidate - 1n;
    let s = 0;
    let d = minusOne;
    while ((d & 1n) === 0n) {
      d >>= 1n;
      s++;
    }
    witnesses: for (let round = 0; round < rounds; round++) {
      let x = modPow(randomBetween(2n, minusOne), d, candidate);
      if (x === 1n || x === minusOne) continue;
      for (let i = 1; i < s; i++) {
        x = (x * x) % candidate;
        if (x === minusOne) continue witnesses;
        if (x === 1n) return false;
      }
      return false;
    }
    return true;
  }

  /** Miller–Rabin rounds for a candidate that passed one: error below 2^-100 for 683 bits. */
  const CONFIRM_ROUNDS = 7;

  /**
   * A random prime in [low, 2^bits) with gcd(e, prime − 1) = 1: from a random odd start, the
   * next candidate that no prime below 4096 divides and that passes Miller–Rabin.
   */
  function generatePrime(bits: number, low: bigint): bigint {
    const high = 1n << BigInt(bits);
    for (;;) {
      const start = randomBetween(low, high) | 1n;
      const residues = SMALL_PRIMES.map((p) => Number(start % BigInt(p)));
      for (let delta = 0; start + BigInt(delta) < high && delta < 1 << 16; delta += 2) {
        if (residues.some((r, i) => (r + delta) % SMALL_PRIMES[i] === 0)) continue;
        const candidate = start + BigInt(delta);
        if ((candidate - 1n) % E === 0n) continue;
        if (isProbablePrime(candidate, 1) && isProbablePrime(candidate, CONFIRM_ROUNDS)) {
          return candidate;
        }
      }
    }
  }

  /**
   * Generates an RSA key of `bits` bits (2048) with `primeCount` primes (3), e = 65537. The
   * modulus has exactly `bits` bits; the primes are distinct and no two are closer than
   * 2^(bits/3 − 100). Synchronous (~40 ms for 2048 bits here, rarely over 100 ms): a run needs
   * the key before anything else it does on the network.
   */
  function generateRsaKey(bits = 2048, primeCount = 3): RsaKey {
    if (primeCount < 2 || bits / primeCount < 256) {
      throw new RangeError(`Cannot make a ${bits}-bit key of ${primeCount} primes`);
    }
    const sizes = Array.from(
      { length: primeCount },
      (_, i) => Math.floor(bits / primeCount) + (i < bits % primeCount ? 1 : 0),
    );
    for (;;) {
      const primes: bigint[] = [];
      for (const size of sizes) {
        // Each prime ≥ 2^(size−1) · 2^((primeCount−1)/primeCount): the product then has exactly
        // `bits` bits (for two primes, 2^(size−½), the usual √2 bound).
        const low = lowBound(size, primeCount);
        primes.push(generatePrime(size, low));
      }
      const n = primes.reduce((a, b) => a * b, 1n);
      if (bitLength(n) !== bits) continue;
      const far = 1n << BigInt(Math.max(0, Math.floor(bits / primeCount) - 100));
      const close = primes.some((p, i) =>
        primes.some((q, j) => j > i && (p > q ? p - q : q - p) <= far)
      );
      if (close) continue;
      const lambda = primes.map((p) => p - 1n).reduce((a, b) => (a / gcd(a, b)) * b, 1n);
      const d = modInverse(E, lambda);
      if (bitLength(d) <= bits / 2) continue; // FIPS 186-5 B.3.1: d > 2^(nlen/2)
      return keyOf(n, E, d, primes);
    }
  }

  function lowBound(size: number, primeCount: number): bigint {
    // ceil(2^(size−1) · 2^((primeCount−1)/primeCount)) from a 53-bit approximation, rounded
    // up. (Not 2^(2/primeCount), right for three primes only: for two it is 2^size, an empty
    // range, and the search never ended.)
    const factor = 2 ** ((primeCount - 1) / primeCount);
    const scaled = BigInt(Math.ceil(factor * 2 ** 52)) + 1n;
    return (scaled << BigInt(size - 1)) >> 52n;
  }

  /** The key with its CRT values, from n, e, d and its primes in order. */
  function keyOf(n: bigint, e: bigint, d: bigint, primes: bigint[]): RsaKey {
    let before = 1n;
    const infos = primes.map((prime, i) => {
      const info: RsaPrime = {
        prime,
        exponent: d % (prime - 1n),
        coefficient: i === 0
          ? 0n
          : modInverse(i === 1 ? prime : before, i === 1 ? primes[0] : prime),
        before,
      };
      before *= prime;
      return info;
    });
    if (before !== n) throw new RangeError("The primes' product is not the modulus");
    return { n, e, d, primes: infos, blinding: newBlinding(n, e) };
  }

  function newBlinding(n: bigint, e: bigint): RsaKey["blinding"] {
    for (;;) {
      const r = randomBetween(2n, n - 1n);
      try {
        return { forward: modPow(r, e, n), inverse: modInverse(r, n), uses: 0 };
      } catch {
        // r shares a prime with n: astronomically unlikely; draw again.
      }
    }
  }

  // DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
  const SHA256_PREFIX = Uint8Array.fromHex("3031300d060960864801650304020105000420");

  /**
   * RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.1) of the data whose SHA-256 is `digest`: the
   * same bytes WebCrypto's `RSASSA-PKCS1-v1_5` signature of that data would be, for the same key.
   */
  function signPkcs1Sha256(key: RsaKey, digest: Uint8Array): Uint8Array<ArrayBuffer> {
    const k = Math.ceil(bitLength(key.n) / 8);
    if (digest.length !== 32) throw new RangeError("A SHA-256 digest is 32 bytes");
    const t = new Uint8Array(SHA256_PREFIX.length + digest.length);
    t.set(SHA256_PREFIX);
    t.set(digest, SHA256_PREFIX.length);
    const em = new Uint8Array(k).fill(0xff);
    em[0] = 0;
    em[1] = 1;
    em[k - t.length - 1] = 0;
    em.set(t, k - t.length);
    const m = bigintOf(em);

    const blinding = key.blinding.uses < BLINDING_USES
      ? key.blinding
      : (key.blinding = newBlinding(key.n, key.e));
    const blinded = (m * blinding.forward) % key.n;
    const s = (privateOp(key, blinded) * blinding.inverse) % key.n;
    blinding.forward = (blinding.forward * blinding.forward) % key.n;
    blinding.inverse = (blinding.inverse * blinding.inverse) % key.n;
    blinding.uses++;
    // A fault in one CRT branch would make a signature that reveals a prime; never send one.
    if (modPow(s, key.e, key.n) !== m) throw new Error("RSA signature failed its own check");
    return bytesOf(s, k);
  }

  /** c^d mod n by the CRT over all primes (RFC 8017 §5.1.2, step 2.b). */
  function privateOp(key: RsaKey, c: bigint): bigint {
    const [p, q, ...others] = key.primes;
    const m1 = modPow(c % p.prime, p.exponent, p.prime);
    const m2 = modPow(c % q.prime, q.exponent, q.prime);
    const h = (((m1 - m2) % p.prime + p.prime) * q.coefficient) % p.prime;
    let m = m2 + q.prime * h;
    for (const r of others) {
      const mi = modPow(c % r.prime, r.exponent, r.prime);
      const hi = (((mi - m) % r.prime + r.prime) * r.coefficient) % r.prime;
      m += r.before * hi;
    }
    return m;
  }

  // DER, just enough for RSA keys: SubjectPublicKeyInfo and PKCS#8 (RFC 8017 A.1, RFC 5208).
  const RSA_ALGORITHM = Uint8Array.fromHex("300d06092a864886f70d0101010500");

  function derLength(length: number): Uint8Array<ArrayBuffer> {
    if (length < 0x80) return Uint8Array.of(length);
    const bytes: number[] = [];
    for (let l = length; l > 0; l >>= 8) bytes.unshift(l & 0xff);
    return Uint8Array.of(0x80 | bytes.length, ...bytes);
  }

  function der(tag: number, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
    const body = concat(parts);
    return concat([Uint8Array.of(tag), derLength(body.length), body]);
  }

  function derInteger(value: bigint): Uint8Array<ArrayBuffer> {
    let hex = value.toString(16);
    if (hex.length % 2) hex = "0" + hex;
    if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = "00" + hex;
    return der(0x02, Uint8Array.fromHex(hex));
  }

  function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  /** The public key as DER SubjectPublicKeyInfo. */
  function spkiDer(key: Pick<RsaKey, "n" | "e">): Uint8Array<ArrayBuffer> {
    const rsaPublicKey = der(0x30, derInteger(key.n), derInteger(key.e));
    return der(0x30, RSA_ALGORITHM, der(0x03, Uint8Array.of(0), rsaPublicKey));
  }

  /**
   * The private key as DER PKCS#8; a key of more than two primes is RSAPrivateKey version 1,
   * with otherPrimeInfos (RFC 8017 A.1.2), which OpenSSL reads.
   */
  function pkcs8Der(key: RsaKey): Uint8Array<ArrayBuffer> {
    const [p, q, ...others] = key.primes;
    const rsaPrivateKey = der(
      0x30,
      derInteger(others.length > 0 ? 1n : 0n),
      ...[key.n, key.e, key.d, p.prime, q.prime, p.exponent, q.exponent, q.coefficient]
        .map(derInteger),
      ...(others.length > 0
        ? [der(
          0x30,
          ...others.map((r) =>
            der(0x30, derInteger(r.prime), derInteger(r.exponent), derInteger(r.coefficient))
          ),
        )]
        : []),
    );
    return der(0x30, derInteger(0n), RSA_ALGORITHM, der(0x04, rsaPrivateKey));
  }

  /** Reads one DER element at `offset`: its tag, content and the offset after it. */
  function readDer(bytes: Uint8Array, offset: number) {
    if (offset + 2 > bytes.length) throw new RangeError("Truncated DER");
    const tag = bytes[offset];
    let length = bytes[offset + 1];
    let start = offset + 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 4 || start + count > bytes.length) {
        throw new RangeError("Bad DER length");
      }
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i];
      start += count;
    }
    if (start + length > bytes.length) throw new RangeError("Truncated DER");
    return { tag, content: bytes.subarray(start, start + length), end: start + length };
  }

  function readSequence(bytes: Uint8Array): Uint8Array[] {
    const items: Uint8Array[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      const item = readDer(bytes, offset);
      items.push(bytes.subarray(offset, item.end));
      offset = item.end;
    }
    return items;
  }

  function integerOf(element: Uint8Array): bigint {
    const { tag, content } = readDer(element, 0);
    if (tag !== 0x02) throw new RangeError("Expected an INTEGER");
    return bigintOf(content);
  }

  /**
   * The multi-prime RSA key in an unencrypted PKCS#8 DER, or `undefined` for anything else (a
   * two-prime key, another algorithm, not DER): those are WebCrypto's to import.
   */
  function multiPrimeKeyOf(pkcs8: Uint8Array): RsaKey | undefined {
    try {
      const outer = readDer(pkcs8, 0);
      if (outer.tag !== 0x30 || outer.end !== pkcs8.length) return undefined;
      const [version, algorithm, wrapped] = readSequence(outer.content);
      if (integerOf(version) !== 0n || !algorithm || !wrapped) return undefined;
      const alg = readDer(algorithm, 0).content;
      if (!equalBytes(alg, RSA_ALGORITHM.subarray(2))) return undefined;
      const octets = readDer(wrapped, 0);
      if (octets.tag !== 0x04) return undefined;
      const inner = readDer(octets.content, 0);
      if (inner.tag !== 0x30) return undefined;
      const fields = readSequence(inner.content);
      if (fields.length !== 10 || integerOf(fields[0]) !== 1n) return undefined;
      const [n, e, d, p, q] = fields.slice(1, 6).map(integerOf);
      const others = readSequence(readDer(fields[9], 0).content)
        .map((info) => integerOf(readSequence(readDer(info, 0).content)[0]));
      if (others.length === 0 || e < 3n || d <= 1n) return undefined;
      return keyOf(n, e, d, [p, q, ...others]);
    } catch {
      return undefined;
    }
  }

  function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  return {
    bigintOf,
    bytesOf,
    modPow,
    modInverse,
    isProbablePrime,
    generateRsaKey,
    keyOf,
    signPkcs1Sha256,
    spkiDer,
    pkcs8Der,
    multiPrimeKeyOf,
  };
}

export const {
  bigintOf,
  bytesOf,
  modPow,
  modInverse,
  isProbablePrime,
  generateRsaKey,
  keyOf,
  signPkcs1Sha256,
  spkiDer,
  pkcs8Der,
  multiPrimeKeyOf,
}: Rsa = rsaFunctions();
