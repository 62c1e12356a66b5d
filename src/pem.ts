/**
 * Checks what a secret holds before it is written, when it is PEM: certificates parse and are
 * inside their validity window, private keys parse, a certificate and its key belong together.
 *
 * Everything here is pure (bytes and a clock in, a verdict out), built on node:crypto's
 * `X509Certificate`, `createPrivateKey` and `createPublicKey`. A verdict's reason names what is
 * wrong and never quotes the content: a key's bytes must not reach a log line.
 *
 * What is checked, block by block (RFC 7468 framing, `-----BEGIN X-----` … `-----END X-----`):
 *
 * - every block must end (`END` with the same label): a truncated file fails;
 * - `CERTIFICATE`: every one must parse; the first one (the leaf of a chain) must be inside its
 *   validity window, unless expired certificates are allowed;
 * - `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC 1): must parse
 *   (an EC key on a curve node:crypto lacks, such as Brainpool: its DER must be whole);
 *   a file holding a certificate and a key (HAProxy's combined PEM) must hold a matching pair;
 * - encrypted keys (`ENCRYPTED PRIVATE KEY`, or a PKCS#1/SEC 1 block with
 *   `Proc-Type: 4,ENCRYPTED`): secretsync has no passphrase, so only the framing and the DER
 *   envelope are checked, and such a key takes no part in pairing;
 * - any other label (`PUBLIC KEY`, `DH PARAMETERS`, `OPENSSH PRIVATE KEY`, …): framing only.
 *
 * Content without any `-----BEGIN` line is not PEM and is not checked, except that it may not
 * replace a file that held a certificate or a key (see {@link checkContent}).
 *
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";

/** What the checks learnt about a certificate: no secret in it. */
export interface CertificateInfo {
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** basicConstraints CA:TRUE: a CA file needs no key beside it. */
  ca: boolean;
  /**
   * The public key, DER SubjectPublicKeyInfo in base64: what a private key must match.
   * Absent when node:crypto cannot read the key type: such a certificate is not paired.
   */
  publicKey?: string;
}

/** The PEM a file holds, as far as the checks care. */
export interface PemContent {
  /** The first certificate (the leaf of a chain), when there is one. */
  leaf?: CertificateInfo;
  /** How many certificates the file holds. */
  certificates: number;
  /** The public keys (SPKI, base64) of the file's unencrypted private keys. */
  keys: string[];
  /** How many encrypted private keys the file holds (checked for framing only). */
  encryptedKeys: number;
  /**
   * How many EC private keys node:crypto cannot read (Brainpool and other curves OpenSSL
   * loads): their DER structure is checked, and they take no part in pairing.
   */
  otherKeys: number;
}

/** The verdict on one secret's content. */
export type ContentCheck =
  /** `pem` is absent when the content is not PEM (and was not checked). */
  | { ok: true; pem?: PemContent }
  | { ok: false; reason: string };

/** Options for {@link checkContent}. */
export interface CheckContentOptions {
  /** The clock the validity window is compared with. */
  now: Date;
  /** Accept a certificate outside its validity window. @default false */
  allowExpired?: boolean;
  /**
   * The file's current bytes, when it exists: content that is not PEM may not replace a
   * certificate or a key (an empty or garbled value pushed to the vault by mistake).
   */
  previous?: Uint8Array;
}

const KEY_LABELS = new Set(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]);
const ENCRYPTED_KEY = "ENCRYPTED PRIVATE KEY";
const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----\s*$/;
const END = /^-----END ([A-Z0-9 ]+)-----\s*$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Checks one secret's content before it is written.
 *
 * @example
 * ```ts
 * const verdict = checkContent(new TextEncoder().encode("plain text"), { now: new Date() });
 * verdict.ok; // true: not PEM, nothing to check
 * ```
 */
export function checkContent(bytes: Uint8Array, options: CheckContentOptions): ContentCheck {
  let pem: PemContent | undefined;
  try {
    pem = readPem(bytes);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  if (!pem) {
    const before = options.previous ? safeRead(options.previous) : undefined;
    const keys = before ? before.keys.length + before.encryptedKeys + before.otherKeys : 0;
    if (before && (before.certificates > 0 || keys > 0)) {
      return {
        ok: false,
        reason: `the file holds ${
          before.certificates > 0 ? "a certificate" : "a private key"
        } and the new content is not PEM`,
      };
    }
    return { ok: true };
  }
  const { leaf } = pem;
  if (leaf && !options.allowExpired) {
    const now = options.now.getTime();
    if (now < leaf.notBefore.getTime()) {
      return {
        ok: false,
        reason: `certificate "${leaf.subject}" is not valid before ${leaf.notBefore.toISOString()}`,
      };
    }
    if (now > leaf.notAfter.getTime()) {
      return {
        ok: false,
        reason: `certificate "${leaf.subject}" expired on ${leaf.notAfter.toISOString()}`,
      };
    }
  }
  if (
    leaf?.publicKey !== undefined && pem.keys.length > 0 && !pem.keys.includes(leaf.publicKey)
  ) {
    return {
      ok: false,
      reason: `the private key in the file does not match its certificate "${leaf.subject}"`,
    };
  }
  return { ok: true, pem };
}

/**
 * Reads the PEM blocks of `bytes`; `undefined` when no line starts a block (`-----BEGIN X-----`).
 *
 * @throws {Error} with a reason naming the block, never its content, when a block is cut off
 * or does not parse.
 */
export function readPem(bytes: Uint8Array): PemContent | undefined {
  const text = new TextDecoder().decode(bytes);
  if (!text.includes("-----BEGIN ")) return undefined;
  const content: PemContent = { certificates: 0, keys: [], encryptedKeys: 0, otherKeys: 0 };
  const lines = text.split(/\r?\n/);
  let blocks = 0;
  for (let i = 0; i < lines.length; i++) {
    const begin = BEGIN.exec(lines[i]);
    if (!begin) continue;
    blocks++;
    const label = begin[1];
    const body: string[] = [];
    let end = -1;
    for (let j = i + 1; j < lines.length; j++) {
      if (END.test(lines[j]) || BEGIN.test(lines[j])) {
        end = j;
        break;
      }
      body.push(lines[j]);
    }
    const endMatch = end >= 0 ? END.exec(lines[end]) : null;
    if (!endMatch || endMatch[1] !== label) {
      throw new Error(`a "${label}" block has no END line (the content is cut off)`);
    }
    const block = [lines[i], ...body, lines[end]].join("\n") + "\n";
    readBlock(label, block, body, content);
    i = end;
  }
  // "-----BEGIN " inside a line (JSON, indented text) is no PEM: no server reads it as such.
  return blocks > 0 ? content : undefined;
}

function readBlock(label: string, block: string, body: string[], content: PemContent): void {
  const nth = (n: number) => (n === 0 ? "the certificate" : `certificate ${n + 1}`);
  if (label === "CERTIFICATE") {
    let cert: X509Certificate;
    try {
      // OpenSSL skips RFC 1421 headers ("Name: value" lines, then a blank one); Deno does not.
      const blank = body.indexOf("");
      const headed = blank > 0 && body.slice(0, blank).every((line) => line.includes(":"));
      const lines = block.split("\n");
      const unheaded = headed
        ? [lines[0], ...body.slice(blank + 1), lines[body.length + 1], ""].join("\n")
        : block;
      cert = new X509Certificate(unheaded);
    } catch {
      throw new Error(`${nth(content.certificates)} does not parse as an X.509 certificate`);
    }
    if (content.certificates === 0) content.leaf = certificateInfo(cert);
    content.certificates++;
    return;
  }
  const legacy = KEY_LABELS.has(label) &&
    body.some((line) => /^Proc-Type:\s*4,\s*ENCRYPTED/i.test(line));
  if (label === ENCRYPTED_KEY || legacy) {
    if (!(legacy ? legacyEnvelope(body) : derEnvelope(body))) {
      throw new Error(`the encrypted private key does not parse`);
    }
    content.encryptedKeys++;
    return;
  }
  if (KEY_LABELS.has(label)) {
    let key: KeyObject;
    try {
      key = createPrivateKey(block);
    } catch {
      if (!unreadableEcKey(label, body)) {
        throw new Error(`the private key ("${label}") does not parse`);
      }
      content.otherKeys++;
      return;
    }
    content.keys.push(spki(createPublicKey(key)));
  }
}

function certificateInfo(cert: X509Certificate): CertificateInfo {
  return {
    subject: cert.subject.replaceAll("\n", ", "),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    ca: cert.ca,
    publicKey: certificateKey(cert),
  };
}

/**
 * The certificate's public key as SPKI base64. Deno's `X509Certificate.publicKey` throws for
 * some valid key types (RSA-PSS: "unsupported x509 public key type"), so the SPKI is then cut
 * out of the DER and read by `createPublicKey`, which knows them.
 */
function certificateKey(cert: X509Certificate): string | undefined {
  try {
    return spki(cert.publicKey);
  } catch {
    // Fall through to the certificate's own SubjectPublicKeyInfo.
  }
  try {
    const der = subjectPublicKeyInfo(new Uint8Array(cert.raw));
    return spki(createPublicKey({ key: der as Buffer, format: "der", type: "spki" }));
  } catch {
    return undefined;
  }
}

/** The SubjectPublicKeyInfo of a DER certificate (RFC 5280 §4.1: the 7th field of the TBS). */
function subjectPublicKeyInfo(der: Uint8Array): Uint8Array {
  const tlv = (at: number) => {
    let length = der[at + 1];
    let start = at + 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0 || n > 4) throw new Error("bad DER length");
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + der[start + i];
      start += n;
    }
    if (start + length > der.length) throw new Error("DER runs past its end");
    return { start, end: start + length };
  };
  const tbs = tlv(tlv(0).start);
  let at = tbs.start;
  if (der[at] === 0xa0) at = tlv(at).end; // [0] version
  for (let field = 0; field < 5; field++) at = tlv(at).end; // serial … subject
  if (der[at] !== 0x30) throw new Error("no SubjectPublicKeyInfo");
  return der.subarray(at, tlv(at).end);
}

function spki(key: KeyObject): string {
  return (key.export({ type: "spki", format: "der" }) as Uint8Array).toBase64();
}

/** Whether a block's body (after any headers) is base64 of a DER SEQUENCE. */
function derEnvelope(body: string[]): boolean {
  const blank = body.indexOf("");
  const data = body.slice(body.some((l) => l.includes(":")) && blank >= 0 ? blank + 1 : 0);
  if (data.length === 0 || !data.every((line) => BASE64_LINE.test(line.trim()))) return false;
  try {
    const der = Uint8Array.fromBase64(data.join("").trim());
    return der.length > 2 && der[0] === 0x30;
  } catch {
    return false;
  }
}

/** id-ecPublicKey (1.2.840.10045.2.1), as DER: how a PKCS#8 block says it holds an EC key. */
const EC_KEY_OID = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/** The curves node:crypto reads (P-256, P-384, P-521, secp256k1, P-224), as DER OIDs. */
const READABLE_CURVES = [
  [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
  [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
  [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
  [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
  [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21],
];

/**
 * Whether a key block node:crypto refused is an EC key on a curve it does not know (OpenSSL,
 * so the server, may): a SEC 1 block or a PKCS#8 one naming id-ecPublicKey, not on a curve
 * node:crypto reads (then the key is damaged), whose DER is one whole structure (a lost or
 * damaged line breaks its lengths).
 */
function unreadableEcKey(label: string, body: string[]): boolean {
  if (label !== "EC PRIVATE KEY" && label !== "PRIVATE KEY") return false;
  if (body.length === 0 || !body.every((line) => BASE64_LINE.test(line.trim()))) return false;
  let der: Uint8Array;
  try {
    der = Uint8Array.fromBase64(body.join("").trim());
  } catch {
    return false;
  }
  if (!wholeDer(der, 0, der.length, 0)) return false;
  const holds = (bytes: Uint8Array, oid: number[]) =>
    bytes.some((_, i) => oid.every((byte, j) => bytes[i + j] === byte));
  if (READABLE_CURVES.some((oid) => holds(der, oid))) return false;
  return label === "EC PRIVATE KEY" || holds(der.subarray(0, 32), EC_KEY_OID);
}

/** Whether `der[start, end)` is a sequence of well-formed TLVs, constructed ones recursively. */
function wholeDer(der: Uint8Array, start: number, end: number, depth: number): boolean {
  if (depth > 16 || (depth === 0 && der[0] !== 0x30)) return false;
  let at = start;
  while (at < end) {
    const tag = der[at];
    if ((tag & 0x1f) === 0x1f || at + 2 > end) return false; // no multi-byte tags in a key
    let length = der[at + 1];
    let content = at + 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0 || n > 3 || content + n > end) return false;
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + der[content + i];
      content += n;
    }
    if (content + length > end) return false;
    if (tag & 0x20 && !wholeDer(der, content, content + length, depth + 1)) return false;
    at = content + length;
  }
  return depth > 0 || at === end;
}

/**
 * Whether a legacy encrypted key (RFC 1421 headers) is whole: a `DEK-Info` header, then base64
 * of ciphertext in whole cipher blocks. Its body is ciphertext, not DER, so nothing more shows.
 */
function legacyEnvelope(body: string[]): boolean {
  const blank = body.indexOf("");
  if (blank < 0 || !body.slice(0, blank).some((line) => /^DEK-Info:\s*\S/i.test(line))) {
    return false;
  }
  const data = body.slice(blank + 1);
  if (data.length === 0 || !data.every((line) => BASE64_LINE.test(line.trim()))) return false;
  try {
    const length = Uint8Array.fromBase64(data.join("").trim()).length;
    return length > 0 && length % 8 === 0;
  } catch {
    return false;
  }
}

function safeRead(bytes: Uint8Array): PemContent | undefined {
  try {
    return readPem(bytes);
  } catch {
    // The old file is broken too: it is being replaced, not judged.
    return undefined;
  }
}

/** One file of a reload target, as the pairing check sees it. */
export interface TargetFile {
  path: string;
  /** Whether this run writes it (its content is the new one) or leaves it (what is on disk). */
  changed: boolean;
  pem?: PemContent;
}

/** A changed file refused by {@link pairingProblems}, and why. */
export interface PairingProblem {
  path: string;
  reason: string;
}

/**
 * Checks that one reload target's certificates and keys still belong together after this run,
 * counting the files it leaves as they are. A file must pair up (a certificate with one of the
 * target's keys, a key with one of its certificates) when:
 *
 * - it is a certificate that is not a CA certificate, and the target has keys; or
 * - its content before this run paired up with the target's files before this run: what was a
 *   pair stays a pair (a self-signed server certificate marked CA:TRUE, a rotated key).
 *
 * So a CA file beside a pair, or a key for something else (a JWT signing key) beside it, needs
 * no partner: neither ever had one. A key with a passphrase cannot be compared: while the target
 * holds one, its certificates need no partner.
 *
 * When a file that stays as it is no longer fits (an old key on disk against a new
 * certificate), every changed certificate or key of the target is refused: they were meant to
 * go together. Refusing a file puts its old content back into the picture, so the check repeats
 * until nothing more is refused.
 *
 * @param current the target's files after this run: new content where `changed`, else on disk
 * @param previous the content before this run of the changed files (absent: a new file)
 * @returns the changed files to refuse; empty when the target is consistent
 * @example
 * ```ts
 * pairingProblems([{ path: "/run/secrets/tls.crt", changed: true }]); // []
 * ```
 */
export function pairingProblems(
  current: readonly TargetFile[],
  previous: ReadonlyMap<string, PemContent | undefined> = new Map(),
): PairingProblem[] {
  const before = current.map((f) => ({
    path: f.path,
    pem: f.changed ? previous.get(f.path) : f.pem,
  }));
  const pairedBefore = pairedFiles(before);
  const refused = new Map<string, string>();
  for (;;) {
    const files = current.map((file) =>
      refused.has(file.path)
        ? { path: file.path, changed: false, pem: previous.get(file.path) }
        : file
    );
    if (!files.some((f) => f.changed && f.pem && (f.pem.leaf || f.pem.keys.length > 0))) break;
    const leaves = files.filter((f) => f.pem?.leaf);
    const keys = files.flatMap((f) => (f.pem?.keys ?? []).map((key) => ({ file: f, key })));
    const unmatched: { file: TargetFile; reason: string }[] = [];
    for (const { file, key } of keys) {
      if (!pairedBefore.has(file.path)) continue;
      // A certificate whose key type cannot be read may be this key's partner.
      if (!leaves.some((l) => [key, undefined].includes(l.pem!.leaf!.publicKey))) {
        unmatched.push({ file, reason: `the private key in ${file.path} matches no certificate` });
      }
    }
    // A key with a passphrase cannot be compared: a certificate may be its partner.
    const unknownKeys = files.some((f) => (f.pem?.encryptedKeys ?? 0) > 0);
    for (const file of leaves) {
      const leaf = file.pem!.leaf!;
      const needsKey = !unknownKeys && leaf.publicKey !== undefined &&
        (pairedBefore.has(file.path) || (!leaf.ca && keys.length > 0));
      if (needsKey && !keys.some((k) => k.key === leaf.publicKey)) {
        unmatched.push({
          file,
          reason: `the certificate "${leaf.subject}" in ${file.path} matches no private key`,
        });
      }
    }
    if (unmatched.length === 0) break;
    const reason = `${unmatched.map((u) => u.reason).join("; ")} of the same target`;
    // A changed certificate without its key: a changed key that fits no certificate was
    // probably meant for it (a first deployment has no "paired before"). Writing it alone
    // would reload the server with half a pair.
    const orphanKeys = unmatched.some((u) => u.file.pem?.leaf && u.file.changed)
      ? files.filter((f) =>
        f.changed && (f.pem?.keys.length ?? 0) > 0 &&
        f.pem!.keys.every((key) => !leaves.some((l) => l.pem!.leaf!.publicKey === key))
      )
      : [];
    const blame = unmatched.some((u) => !u.file.changed)
      ? files.filter((f) => f.changed && f.pem && (f.pem.leaf || f.pem.keys.length > 0))
      : [...unmatched.map((u) => u.file), ...orphanKeys];
    for (const file of blame) refused.set(file.path, reason);
  }
  return [...refused].map(([path, reason]) => ({ path, reason }));
}

/** The paths whose certificate matches a key, or whose key matches a certificate, among `files`. */
function pairedFiles(files: readonly { path: string; pem?: PemContent }[]): Set<string> {
  const leaves = files.flatMap((f) => (f.pem?.leaf?.publicKey ? [f.pem.leaf.publicKey] : []));
  const keys = files.flatMap((f) => f.pem?.keys ?? []);
  return new Set(
    files.filter((f) =>
      (f.pem?.leaf?.publicKey && keys.includes(f.pem.leaf.publicKey)) ||
      (f.pem?.keys ?? []).some((key) => leaves.includes(key))
    ).map((f) => f.path),
  );
}

/**
 * Whether a certificate valid until `notAfter` expires within `withinMs` of `now` (or already
 * has).
 *
 * @example
 * ```ts
 * expiresWithin(new Date("2030-01-10"), 14 * 86_400_000, new Date("2030-01-01")); // true
 * ```
 */
export function expiresWithin(notAfter: Date, withinMs: number, now: Date): boolean {
  return notAfter.getTime() - now.getTime() <= withinMs;
}
