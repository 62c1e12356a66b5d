/**
 * The session key's thread: a worker that generates the instance principal's session keys
 * (`rsa.ts`, three primes) and signs with them, so that neither the prime search (~40 ms) nor a
 * signature (~1 ms each, one per request) runs on the main thread.
 *
 * On the main thread both held up everything else: the key was searched for while the program
 * loaded, one after the other on one core, and a window of signatures made there kept Deno's
 * event loop from polling the network: sixteen requests signed together left together, ~50 ms
 * late (measured). In the worker the key is ready while the program still loads, and requests
 * go out as their signatures arrive, as they did with WebCrypto's own thread.
 *
 * The worker runs from its source text through a `blob:` URL: there is no file for it to read
 * (no read permission) and nothing for `deno compile` to include. Its code is `rsa.ts`'s own
 * (`rsaFunctions`, self-contained) plus {@linkcode workerProgram}. It is started on first use.
 * A worker keeps a Deno process alive, so it runs only while someone holds it
 * ({@linkcode holdKeyWorker}: an instance principal, until disposed; the key pair started at
 * start-up, until taken) or a request is in flight; otherwise, or at {@linkcode stopKeyWorker},
 * it ends. Keys are held by handle; the private key also exists as PEM on the main thread (the
 * SDK's interfaces pass keys as PEM), and a key not held by the current worker is loaded into it
 * from that PEM.
 *
 * @example
 * ```ts
 * import { generateKeyPair, signWith, stopKeyWorker } from "./key_worker.ts";
 *
 * const pair = await generateKeyPair();
 * const signature = await signWith(pair.privatePem, "x-date: …"); // base64
 * stopKeyWorker();
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Rsa, rsaFunctions } from "./rsa.ts";

/** A key pair as PEM: SPKI public, PKCS#8 private. */
export interface PemPair {
  publicPem: string;
  privatePem: string;
}

type Ask =
  | { op: "generate" }
  | { op: "load"; pkcs8: Uint8Array }
  | { op: "sign"; key: number; digest: Uint8Array }
  | { op: "forget"; key: number };
/** What travels as a message: everything but a signature's request (see {@linkcode RING}). */
type Message =
  | (Exclude<Ask, { op: "sign" }> & { id: number })
  | { op: "attach"; buffer: SharedArrayBuffer };

/**
 * What the worker answers, in the order it was asked. A signature that fits its slot is
 * answered with just its request's id: the signature is in the slot.
 */
type Reply =
  | number
  | { id: number; ok: true; key?: number; spki?: Uint8Array; pkcs8?: Uint8Array; sig?: Uint8Array }
  | { id: number; ok: false; error: string };
type Answer = Exclude<Reply, number>;

/**
 * Requests travel through shared memory, not messages. A message costs each side ~50 µs of
 * CPU (Deno's event loop wakes, the clone is read, an event is dispatched), a twentieth of the
 * signature it asks for; a worker blocked in `Atomics.wait` wakes for a fraction of that.
 *
 * The buffer holds a header (`posted`: requests written; `stop`: the worker is ending) and a
 * ring of slots, each one request (`id`, `op`, `key`, a 32-byte digest) and, once signed, its
 * signature (`length`, bytes). The main thread writes a slot, then `posted` (an atomic store
 * orders them); the worker takes slots in order and answers each with a message, in the same
 * order, so a slot is free again once its answer arrived. The other requests (generate, load,
 * forget) are messages, each followed by a slot that tells the worker to return to its event
 * loop and read one.
 */
const RING = {
  /** Slots in the ring: more requests wait on the main thread until one is answered. */
  slots: 64,
  /** Bytes of one slot: four int32 fields, the digest, the signature. */
  slotBytes: 16 + 32 + 512,
  headerBytes: 16,
  digestAt: 16,
  sigAt: 48,
  /** Longest signature a slot holds (a 4096-bit key's); a longer one comes as a message. */
  sigBytes: 512,
  /** Int32 fields: of the header, of a slot. */
  posted: 0,
  stop: 1,
  id: 0,
  op: 1,
  key: 2,
  length: 3,
  /** Slot ops. */
  sign: 1,
  message: 2,
} as const;
type Ring = typeof RING;

/** The worker side, as the global scope a worker has. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<Message>) => void) | null;
  postMessage(message: Reply): void;
}

/**
 * The worker's program: keys by handle, one request at a time, in order. Like `rsaFunctions`,
 * self-contained: it runs from its source text.
 */
function workerProgram(rsa: Rsa, scope: WorkerScope, ring: Ring): void {
  const keys = new Map<number, ReturnType<Rsa["generateRsaKey"]>>();
  let next = 1;
  let words: Int32Array | undefined;
  let bytes: Uint8Array | undefined;
  /** Slots taken so far (wraps like `posted`). */
  let taken = 0;

  const messageOf = (error: unknown) => error instanceof Error ? error.message : String(error);

  function answer(request: Exclude<Message, { op: "attach" }>): Reply {
    if (request.op === "generate") {
      const key = rsa.generateRsaKey(2048, 3);
      keys.set(next, key);
      return {
        id: request.id,
        ok: true,
        key: next++,
        spki: rsa.spkiDer(key),
        pkcs8: rsa.pkcs8Der(key),
      };
    }
    if (request.op === "load") {
      const key = rsa.multiPrimeKeyOf(request.pkcs8);
      if (!key) throw new Error("not an RSA key of more than two primes");
      keys.set(next, key);
      return { id: request.id, ok: true, key: next++ };
    }
    keys.delete(request.key);
    return { id: request.id, ok: true };
  }

  /** Signs what the ring holds, in order, until a slot says a message is next (or the end). */
  function serve(words: Int32Array, bytes: Uint8Array): void {
    for (;;) {
      // `posted` before `stop`: a stop set after this look at it also moves `posted` (see
      // `stop()` on the main thread), so the wait below cannot sleep through its notify.
      const posted = Atomics.load(words, ring.posted);
      if (Atomics.load(words, ring.stop) !== 0) return;
      if (posted === taken) {
        // The timeout only bounds the wait: terminate() does not interrupt Atomics.wait, so a
        // worker ended without `stop` set would keep its process alive until it returns.
        Atomics.wait(words, ring.posted, taken, 1000);
        continue;
      }
      const at = ring.headerBytes + (taken & (ring.slots - 1)) * ring.slotBytes;
      taken = (taken + 1) | 0;
      const field = at / 4;
      const id = words[field + ring.id];
      if (words[field + ring.op] === ring.message) return;
      try {
        const key = keys.get(words[field + ring.key]);
        if (!key) throw new Error("no such key");
        const digest = bytes.slice(at + ring.digestAt, at + ring.digestAt + 32);
        const sig = rsa.signPkcs1Sha256(key, digest);
        if (sig.length > ring.sigBytes) {
          scope.postMessage({ id, ok: true, sig });
          continue;
        }
        bytes.set(sig, at + ring.sigAt);
        Atomics.store(words, field + ring.length, sig.length);
        scope.postMessage(id);
      } catch (error) {
        scope.postMessage({ id, ok: false, error: messageOf(error) });
      }
    }
  }

  scope.onmessage = ({ data: request }) => {
    if (request.op === "attach") {
      words = new Int32Array(request.buffer);
      bytes = new Uint8Array(request.buffer);
    } else {
      try {
        scope.postMessage(answer(request));
      } catch (error) {
        scope.postMessage({ id: request.id, ok: false, error: messageOf(error) });
      }
    }
    if (words && bytes) serve(words, bytes);
  };
}

const SOURCE = `"use strict";\n(${workerProgram})((${rsaFunctions})(), globalThis, ${
  JSON.stringify(RING)
});\n`;

let worker: Worker | undefined;
/** The worker's source as a `blob:` URL, kept until it ends (it may load after `new Worker`). */
let workerUrl: string | undefined;
/** The current worker's ring, as the main thread sees it. */
let ring: {
  words: Int32Array;
  bytes: Uint8Array;
  /** Slots written (wraps at 2^31, as the worker's count does). */
  posted: number;
  /** Slots answered. */
  answered: number;
  /** Slots to write once the ring has room, in order. */
  waiting: { id: number; op: number; key: number; digest?: Uint8Array }[];
} | undefined;
/**
 * The next request's id. It travels in an Int32 slot of the ring, so it stays an int32 here too
 * (see {@linkcode call}): past 2^31 the slot's copy and the pending map's key would differ.
 */
let nextId = 1;
const pending = new Map<number, { resolve(reply: Answer): void; reject(error: Error): void }>();
/** A key's handle in the worker of that generation. */
interface Handle {
  generation: number;
  key: number;
}
/** PKCS#8 PEM → its handle in the current worker. */
const handles = new Map<string, Promise<Handle>>();
let holders = 0;
/** Which worker the handles belong to: each start makes a new one. */
let generation = 0;

function started(): Worker {
  if (worker) return worker;
  generation++;
  workerUrl = URL.createObjectURL(new Blob([SOURCE], { type: "text/javascript" }));
  const buffer = new SharedArrayBuffer(RING.headerBytes + RING.slots * RING.slotBytes);
  ring = {
    words: new Int32Array(buffer),
    bytes: new Uint8Array(buffer),
    posted: 0,
    answered: 0,
    waiting: [],
  };
  const current = new Worker(workerUrl, { type: "module", name: "secretsync session key" });
  worker = current;
  // A stopped worker's late event must not touch its successor's ring: answers are matched to
  // slots by their order, so one stray answer would put every later one out of step.
  current.onmessage = ({ data }: MessageEvent<Reply>) => {
    if (worker !== current) return;
    const reply = answerOf(data);
    if (!reply) {
      stop(new Error("The session key's worker answered out of order"));
      return;
    }
    const waiter = pending.get(reply.id);
    pending.delete(reply.id);
    waiter?.resolve(reply);
    writeWaiting();
    stopIfIdle();
  };
  current.onerror = (event) => {
    event.preventDefault();
    if (worker === current) stop(new Error(`The session key's worker failed: ${event.message}`));
  };
  // A reply that cannot be read would leave its caller waiting: fail everything in flight.
  current.onmessageerror = () => {
    if (worker === current) stop(new Error("The session key's worker sent an unreadable reply"));
  };
  current.postMessage({ op: "attach", buffer } satisfies Message);
  return current;
}

/** The byte offset of the slot that request number `count` (wrapping) takes. */
function slotAt(count: number): number {
  return RING.headerBytes + (count & (RING.slots - 1)) * RING.slotBytes;
}

/** The answer to the oldest slot, or undefined if it does not fit that slot. */
function answerOf(data: Reply): Answer | undefined {
  if (!ring) return undefined;
  const at = slotAt(ring.answered);
  ring.answered = (ring.answered + 1) | 0;
  const field = at / 4;
  const id = typeof data === "number" ? data : data.id;
  if (ring.words[field + RING.id] !== id) return undefined;
  if (typeof data !== "number") return data;
  const length = Atomics.load(ring.words, field + RING.length);
  if (length <= 0 || length > RING.sigBytes) return undefined;
  return { id, ok: true, sig: ring.bytes.slice(at + RING.sigAt, at + RING.sigAt + length) };
}

/** Writes waiting slots while the ring has room, then wakes the worker. */
function writeWaiting(): void {
  if (!ring || ring.waiting.length === 0) return;
  let wrote = false;
  while (ring.waiting.length > 0 && ((ring.posted - ring.answered) | 0) < RING.slots) {
    const slot = ring.waiting.shift()!;
    const at = slotAt(ring.posted);
    const field = at / 4;
    ring.words[field + RING.id] = slot.id;
    ring.words[field + RING.op] = slot.op;
    ring.words[field + RING.key] = slot.key;
    ring.words[field + RING.length] = 0;
    if (slot.digest) ring.bytes.set(slot.digest, at + RING.digestAt);
    ring.posted = (ring.posted + 1) | 0;
    wrote = true;
  }
  if (!wrote) return;
  // The store publishes the slots written before it (Atomics are sequentially consistent).
  Atomics.store(ring.words, RING.posted, ring.posted);
  Atomics.notify(ring.words, RING.posted);
}

function call(request: Ask): Promise<Answer & { ok: true }> {
  if (request.op === "sign" && request.digest.length !== 32) {
    return Promise.reject(new RangeError("A SHA-256 digest has 32 bytes"));
  }
  const id = nextId;
  nextId = (nextId + 1) | 0;
  const target = started();
  return new Promise((resolve, reject) => {
    pending.set(id, {
      resolve: (reply) => reply.ok ? resolve(reply) : reject(new Error(reply.error)),
      reject,
    });
    if (request.op === "sign") {
      ring!.waiting.push({ id, op: RING.sign, key: request.key, digest: request.digest });
    } else {
      target.postMessage({ ...request, id } satisfies Message);
      ring!.waiting.push({ id, op: RING.message, key: 0 });
    }
    writeWaiting();
  });
}

function stopIfIdle(): void {
  if (holders === 0 && pending.size === 0) stopKeyWorker();
}

function stop(reason: Error): void {
  if (ring) {
    // Out of Atomics.wait first: terminate() alone would leave the thread blocked there. A
    // worker between its look at `stop` and its wait would miss the notify; moving `posted`
    // makes that wait return at once (the worker looks at `stop` before taking a slot).
    Atomics.store(ring.words, RING.stop, 1);
    Atomics.add(ring.words, RING.posted, 1);
    Atomics.notify(ring.words, RING.posted);
  }
  worker?.terminate();
  worker = undefined;
  ring = undefined;
  if (workerUrl) URL.revokeObjectURL(workerUrl);
  workerUrl = undefined;
  handles.clear();
  for (const waiter of pending.values()) waiter.reject(reason);
  pending.clear();
}

/**
 * Keeps the worker running until the returned function is called (once is enough; more calls
 * do nothing). The worker ends when no holder is left and nothing is in flight.
 */
export function holdKeyWorker(): () => void {
  holders++;
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    holders--;
    stopIfIdle();
  };
}

/**
 * Sets the id of the next request (for tests: ids are int32 and wrap past 2^31, which no test
 * reaches by asking).
 */
export function setNextRequestId(id: number): void {
  nextId = id | 0;
}

/** How many private keys the worker holds now (for tests and diagnostics). */
export function keysHeld(): number {
  return handles.size;
}

/** Ends the worker now (keys are loaded again from their PEM if used later). */
export function stopKeyWorker(): void {
  stop(new Error("The session key's worker was stopped"));
}

/**
 * Drops a key that nobody signs with any more (its session ended), here and in the worker: a
 * worker that never stops (`watch` holds it from one connection to the next) would otherwise
 * keep every session key it ever made. A later use loads it again from its PEM.
 */
export function forgetKey(privatePem: string): void {
  const handle = handles.get(privatePem);
  if (!handle) return;
  handles.delete(privatePem);
  handle.then(({ generation: of, key }) => {
    if (worker && of === generation) call({ op: "forget", key }).catch(() => {});
  }, () => {});
}

/** Generates an RSA-2048 key pair of three primes, e = 65537, in the worker. */
export async function generateKeyPair(): Promise<PemPair> {
  const release = holdKeyWorker();
  try {
    const request = call({ op: "generate" });
    const handle = { generation, key: 0 }; // call() started the worker if there was none
    const reply = await request;
    handle.key = reply.key!;
    const pair = {
      publicPem: pem("PUBLIC KEY", reply.spki!),
      privatePem: pem("PRIVATE KEY", reply.pkcs8!),
    };
    if (handle.generation === generation) handles.set(pair.privatePem, Promise.resolve(handle));
    return pair;
  } finally {
    release();
  }
}

/**
 * Whether the worker signs with this private key: one it generated, or any unencrypted PKCS#8
 * PEM of an RSA key of more than two primes (which WebCrypto cannot import). Resolves false for
 * anything else, without touching the worker.
 */
export async function signsWith(privatePem: string): Promise<boolean> {
  if (handles.has(privatePem)) return true;
  const der = pkcs8Of(privatePem);
  if (!der || !looksMultiPrime(der)) return false;
  const release = holdKeyWorker();
  try {
    await handleOf(privatePem);
    return true;
  } catch {
    return false;
  } finally {
    release();
  }
}

/** Signs `text` (RSASSA-PKCS1-v1_5, SHA-256) with the key; the signature in base64. */
export async function signWith(privatePem: string, text: string): Promise<string> {
  const digest = new Uint8Array(createHash("sha256").update(text).digest());
  // Held meanwhile, so the worker cannot end between loading the key and signing with it.
  const release = holdKeyWorker();
  try {
    for (;;) {
      const loading = handleOf(privatePem);
      const handle = await loading;
      if (worker && handle.generation === generation) {
        return (await call({ op: "sign", key: handle.key, digest })).sig!.toBase64();
      }
      // Its worker was stopped (stopKeyWorker): load the key into the next one.
      if (handles.get(privatePem) === loading) handles.delete(privatePem);
    }
  } finally {
    release();
  }
}

function handleOf(privatePem: string): Promise<Handle> {
  let handle = handles.get(privatePem);
  if (!handle) {
    const der = pkcs8Of(privatePem);
    handle = der ? load(der) : Promise.reject(new Error("not a PKCS#8 PEM"));
    handles.set(privatePem, handle);
    // A key that fails to load is not remembered: the next use reports it again.
    handle.catch(() => {
      if (handles.get(privatePem) === handle) handles.delete(privatePem);
    });
  }
  return handle;
}

async function load(pkcs8: Uint8Array): Promise<Handle> {
  const request = call({ op: "load", pkcs8 });
  const loadedBy = generation; // call() started the worker if there was none
  return { generation: loadedBy, key: (await request).key! };
}

function pkcs8Of(privatePem: string): Uint8Array | undefined {
  const match = /^-----BEGIN PRIVATE KEY-----\n([A-Za-z0-9+/=\n]+)-----END PRIVATE KEY-----\n?$/
    .exec(privatePem);
  if (!match) return undefined;
  try {
    return Uint8Array.fromBase64(match[1].replaceAll("\n", ""));
  } catch {
    return undefined;
  }
}

/**
 * A cheap look at a PKCS#8 DER for RSAPrivateKey version 1 (multi-prime) without parsing the
 * numbers: `30 len 02 01 00 30 0d 06 09 <rsaEncryption> 05 00 04 len 30 len 02 01 01`.
 */
function looksMultiPrime(der: Uint8Array): boolean {
  const rsaOid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
  let i = 0;
  const skipHeader = (tag: number): boolean => {
    if (der[i++] !== tag) return false;
    const first = der[i++];
    if (first & 0x80) i += first & 0x7f;
    return i <= der.length;
  };
  if (!skipHeader(0x30)) return false;
  if (der[i++] !== 0x02 || der[i++] !== 0x01 || der[i++] !== 0x00) return false;
  if (!skipHeader(0x30) || der[i++] !== 0x06 || der[i++] !== rsaOid.length) return false;
  if (!rsaOid.every((byte) => der[i++] === byte)) return false;
  if (der[i++] !== 0x05 || der[i++] !== 0x00) return false;
  if (!skipHeader(0x04) || !skipHeader(0x30)) return false;
  return der[i++] === 0x02 && der[i++] === 0x01 && der[i] === 0x01;
}

function pem(label: string, der: Uint8Array): string {
  const lines = der.toBase64().match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
