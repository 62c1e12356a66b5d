/**
 * Instance principal authentication without the OCI SDK: the instance's identity from IMDS, a
 * session token from the federation endpoint, refreshed when it expires.
 *
 * A port of what oci-common 2.139.1 does (`InstancePrincipalsAuthenticationDetailsProviderBuilder`,
 * `X509FederationClient`, `URLBasedX509CertificateSupplier`, `AuthUtils`,
 * `SecurityTokenAdapter`), request for request and byte for byte on the wire, so that the run's
 * first request no longer waits for the SDK to load (~0.12 s of main-thread compile on a small
 * host) and the federation request is signed with one WebCrypto key instead of `sshpk`:
 *
 * - IMDS v2 reads (`Authorization: Bearer Oracle`): `identity/cert.pem`, `identity/key.pem`,
 *   `identity/intermediate.pem`, here at once rather than one after another. The tenancy is the
 *   first subject component of the leaf certificate holding `opc-tenant:` (or `opc-identity:`).
 * - `POST {endpoint}/v1/x509`, body `{"certificate","purpose":"DEFAULT","publicKey",
 *   "intermediateCertificates"}` (PEM bodies without armour or line breaks), signed with the
 *   leaf key as keyId `{tenancy}/fed-x509/{sha1 fingerprint, colon-separated hex}` over
 *   `date (request-target) host content-type content-length x-content-sha256` (the SDK sets both
 *   `x-date` and, through `http-signature`, `date`; it signs `date`). Answer: `{"token"}`.
 * - Retries as the SDK's: up to 3 attempts on a 5xx or a network error, 1–2 s apart; a 4xx is
 *   final. Every phase is bounded by the caller's deadline as well.
 * - The token is valid while its `exp` lies after now (no margin, as the SDK); a token without a
 *   readable `exp`, or past it on arrival, is refused (the SDK would federate again before every
 *   request). Answers are read up to 256 KB, IMDS's up to 64 KB. A refresh makes a
 *   new session key pair and reads the leaf certificate, key and intermediate again (the
 *   tenancy must not change). Concurrent requests share one token and one refresh.
 *
 * The SDK read the identity twice before its first token (once to build, again in the token
 * request's refresh); here it is read once per token.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, X509Certificate } from "node:crypto";
import { BodyTooLarge, readCappedBody } from "../http_body.ts";
import { Aborted, raceAbort, sleep, timeoutSignal } from "./abort.ts";
import { describe, describeNetworkError } from "./describe.ts";
import { VaultError } from "./error.ts";
import { ImdsReadError, imdsText } from "./region.ts";
import type { PemKeyPair } from "./session_key.ts";
import { importSigningKey, type SigningKey } from "./sign.ts";

/** What instance principal authentication needs. */
export interface InstancePrincipalOptions {
  /** IMDS v2 base URL (`…/opc/v2/`). */
  imdsUrl: string;
  /** The federation endpoint, without `/v1/x509`. */
  federationEndpoint: string;
  /** Each phase (IMDS reads, federation) of each token gets this long. */
  timeoutMs: number;
  /** The caller's whole-run deadline. */
  signal?: AbortSignal;
  /** Session key pairs: the first is the first token's, each refresh takes a new one. */
  sessionKeys: () => Promise<PemKeyPair>;
}

/** The leaf certificate and key, the intermediate, as the federation request uses them. */
export interface Identity {
  tenancyId: string;
  /** `{tenancy}/fed-x509/{fingerprint}` */
  keyId: string;
  certificate: string;
  intermediates: string[];
  leafKey: CryptoKey;
}

/** A session token, its key pair, and its expiry (s since the epoch). */
interface Session {
  token: string;
  keys: PemKeyPair;
  exp: number;
}

const PURPOSE = "DEFAULT";
const MAX_ATTEMPTS = 3;
const MAX_DELAY_S = 1;
const OPC_TENANT = "opc-tenant:";
const OPC_IDENTITY = "opc-identity:";
const SIGNED_HEADERS = [
  "date",
  "(request-target)",
  "host",
  "content-type",
  "content-length",
  "x-content-sha256",
];
const ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
/** The most a federation answer may hold: a session token is a few KB. */
const ANSWER_MAX_BYTES = 256 * 1024;
const TOO_LARGE = Symbol("too large");

/**
 * An instance principal's session: `keyId()` is `ST$<token>`, refreshed when the token has
 * expired; `privateKeyPem()` the session key the token was issued for. Build it with
 * {@linkcode InstancePrincipal.authenticate}.
 */
export class InstancePrincipal implements SigningKey {
  #opts: InstancePrincipalOptions;
  #tenancyId: string;
  #session: Session;
  #refreshing?: Promise<Session>;

  private constructor(opts: InstancePrincipalOptions, tenancyId: string, session: Session) {
    this.#opts = opts;
    this.#tenancyId = tenancyId;
    this.#session = session;
  }

  /**
   * Reads the identity from IMDS (unless the caller read it, see {@linkcode readIdentity}) and
   * obtains the first token. Throws `VaultError` (secretId "")
   * naming the phase, the URL and the reason.
   */
  static async authenticate(
    opts: InstancePrincipalOptions,
    identity?: Identity,
  ): Promise<InstancePrincipal> {
    const id = identity ?? await identityPhase(opts);
    const session = await federationPhase(opts, id);
    return new InstancePrincipal(opts, id.tenancyId, session);
  }

  /** The tenancy OCID from the leaf certificate. */
  get tenancyId(): string {
    return this.#tenancyId;
  }

  /** `ST$<token>`; a new token first when the current one has expired. */
  async keyId(): Promise<string> {
    if (isValid(this.#session)) return `ST$${this.#session.token}`;
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return `ST$${(await this.#refreshing).token}`;
  }

  /** The session private key (PKCS#8 PEM) of the last token. */
  privateKeyPem(): string {
    return this.#session.keys.getPrivate();
  }

  async #refresh(): Promise<Session> {
    const id = await identityPhase(this.#opts);
    if (id.tenancyId !== this.#tenancyId) {
      throw new VaultError(
        "Cannot authenticate with instance principal: the tenancy in the instance's " +
          "certificate changed; a restart picks up the new one",
        { secretId: "", retryable: false },
      );
    }
    const session = await federationPhase(this.#opts, id);
    this.#session = session;
    return session;
  }
}

/**
 * Reads the instance's identity from IMDS, the three files at once. Throws `ImdsReadError` for
 * an unexpected answer; network errors and aborts as they are (see {@linkcode imdsFailure}).
 */
export function readIdentity(imdsUrl: string, signal: AbortSignal): Promise<Identity> {
  const base = imdsUrl.endsWith("/") ? imdsUrl : imdsUrl + "/";
  const reads = ["identity/cert.pem", "identity/key.pem", "identity/intermediate.pem"]
    .map((path) => imdsText(base, path, signal));
  return (async () => {
    // The first failure in this order is reported, whichever came back first.
    const settled = await Promise.allSettled(reads);
    for (const s of settled) if (s.status === "rejected") throw s.reason;
    const [certPem, keyPem, intermediatePem] = settled.map((s) =>
      (s as PromiseFulfilledResult<string>).value
    );
    const leaf = certificateOf(certPem, "identity/cert.pem");
    const intermediate = certificateOf(intermediatePem, "identity/intermediate.pem");
    const tenancyId = tenancyOf(leaf);
    let leafKey: CryptoKey;
    try {
      leafKey = await importSigningKey(keyPem);
    } catch {
      throw new ImdsReadError("IMDS answered identity/key.pem with no usable private key");
    }
    // sshpk's fingerprint: SHA-1 of the DER, lower-case hex, colon-separated.
    const fingerprint = createHash("sha1").update(leaf.raw).digest("hex")
      .replace(/(.{2})(?=.)/g, "$1:");
    return {
      tenancyId,
      keyId: `${tenancyId}/fed-x509/${fingerprint}`,
      certificate: sanitizeCertificateString(pemOf("CERTIFICATE", leaf.raw)),
      intermediates: [sanitizeCertificateString(pemOf("CERTIFICATE", intermediate.raw))],
      leafKey,
    };
  })();
}

async function identityPhase(opts: InstancePrincipalOptions): Promise<Identity> {
  const phase = phaseSignal(opts);
  try {
    return await raceAbort(readIdentity(opts.imdsUrl, phase.signal), phase.signal);
  } catch (e) {
    throw imdsFailure(opts, e);
  } finally {
    phase.clear();
  }
}

/** The VaultError for a failed IMDS read (of the identity or the region). */
export function imdsFailure(
  opts: Pick<InstancePrincipalOptions, "imdsUrl" | "timeoutMs" | "signal">,
  e: unknown,
): VaultError {
  const reason = e instanceof Aborted || (e as Error)?.name === "AbortError"
    ? deadlineReason(opts)
    : e instanceof ImdsReadError
    ? e.message
    : describeNetworkError(e);
  return new VaultError(
    `Cannot authenticate with instance principal: reading the instance identity from IMDS at ` +
      `${opts.imdsUrl} failed: ${reason}`,
    { secretId: "", retryable: true },
  );
}

async function federationPhase(opts: InstancePrincipalOptions, id: Identity): Promise<Session> {
  const url = `${opts.federationEndpoint}/v1/x509`;
  const phase = phaseSignal(opts);
  const fail = (reason: string, status?: number): VaultError =>
    new VaultError(
      `Cannot authenticate with instance principal: obtaining a session token from ${url} ` +
        `failed: ${reason}`,
      {
        secretId: "",
        status,
        retryable: status === undefined || status === 429 || status >= 500,
      },
    );
  try {
    const keys = await raceAbort(opts.sessionKeys(), phase.signal);
    let last = "";
    let lastStatus: number | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) {
        // The SDK's ExponentialBackoffDelayStrategyWithJitter(1): min(2^n, 1) s + up to 1 s.
        const delayS = Math.min(2 ** (attempt - 1), MAX_DELAY_S) + Math.random();
        if (!(await sleep(delayS * 1000, phase.signal))) throw new Aborted(phase.signal);
      }
      let res: Response;
      try {
        res = await fetch(url, await federationRequest(url, id, keys, phase.signal));
      } catch (e) {
        if (phase.signal.aborted) throw new Aborted(phase.signal);
        last = describeNetworkError(e);
        lastStatus = undefined;
        continue;
      }
      const answer = await bodyOf(res, phase.signal);
      if (res.status === 200) {
        if (answer === TOO_LARGE) throw fail(`the answer is larger than ${ANSWER_MAX_BYTES} bytes`);
        return sessionOf(answer, keys, fail);
      }
      last = `HTTP ${res.status}${answer === TOO_LARGE ? "" : ociCode(answer)}`;
      lastStatus = res.status;
      if (res.status >= 400 && res.status < 500) break;
    }
    const tries = lastStatus !== undefined && lastStatus < 500 ? "" : ` (${MAX_ATTEMPTS} attempts)`;
    throw fail(`${last}${tries}`, lastStatus);
  } catch (e) {
    if (e instanceof VaultError) throw e;
    if (e instanceof Aborted || (e as Error)?.name === "AbortError") {
      throw fail(deadlineReason(opts));
    }
    throw fail(describe(e));
  } finally {
    phase.clear();
  }
}

/** The signed federation request, headers and body exactly as oci-common's. */
async function federationRequest(
  url: string,
  id: Identity,
  keys: PemKeyPair,
  signal: AbortSignal,
): Promise<RequestInit> {
  const payload = {
    certificate: id.certificate,
    purpose: PURPOSE,
    publicKey: sanitizeCertificateString(keys.getPublic()),
    intermediateCertificates: id.intermediates,
  };
  const body = JSON.stringify(payload).replace(/\\n/g, "");
  const target = new URL(url);
  const date = new Date().toUTCString();
  const headers = new Headers();
  headers.set("host", target.host);
  headers.set("x-date", date);
  headers.set("Content-Type", "application/json");
  headers.set("x-content-sha256", createHash("sha256").update(body).digest("base64"));
  headers.set("Content-Length", String(body.length));
  headers.set("date", date);
  const lines = SIGNED_HEADERS.map((h) =>
    h === "(request-target)"
      ? `${h}: post ${target.pathname}${target.search}`
      : `${h}: ${headers.get(h)}`
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign(ALGORITHM, id.leafKey, new TextEncoder().encode(lines.join("\n"))),
  ).toBase64();
  headers.set(
    "authorization",
    `Signature version="1",keyId="${id.keyId}",algorithm="rsa-sha256",` +
      `headers="${SIGNED_HEADERS.join(" ")}",signature="${signature}"`,
  );
  return { method: "POST", headers, body, signal };
}

/** An answer's body read whole (up to {@linkcode ANSWER_MAX_BYTES}); "" when it broke off. */
async function bodyOf(res: Response, signal: AbortSignal): Promise<string | typeof TOO_LARGE> {
  try {
    return new TextDecoder().decode(await readCappedBody(res, ANSWER_MAX_BYTES));
  } catch (e) {
    if (signal.aborted) throw new Aborted(signal);
    return e instanceof BodyTooLarge ? TOO_LARGE : "";
  }
}

/**
 * The session from a 200 answer's `{"token": …}`. The token must be a JWT whose `exp` lies
 * ahead: the SDK would take any string, and refresh before every request a token whose expiry
 * it cannot read or that has passed; a token OCI issued always has one, ahead of a right clock.
 * No failure names the token.
 */
function sessionOf(
  answer: string,
  keys: PemKeyPair,
  fail: (reason: string) => VaultError,
): Session {
  let token: unknown;
  try {
    token = (JSON.parse(answer) as { token?: unknown })?.token;
  } catch {
    // Not JSON: no token, reported below.
  }
  if (typeof token !== "string" || !token) throw fail("the answer holds no session token");
  const exp = expiryOf(token);
  if (exp === undefined) throw fail("the session token is no JWT with an expiry (exp claim)");
  const session = { token, keys, exp };
  if (!isValid(session)) {
    throw fail(
      `the session token had expired when it arrived (exp ${
        new Date(exp * 1000).toISOString()
      }); ` +
        "is this machine's clock right?",
    );
  }
  return session;
}

/** " Code" of an OCI error body, or "". */
function ociCode(answer: string): string {
  try {
    const code = (JSON.parse(answer) as { code?: unknown })?.code;
    return typeof code === "string" && /^[A-Za-z]{1,64}$/.test(code) ? ` ${code}` : "";
  } catch {
    return "";
  }
}

/** The token's `exp` claim (a finite number), or undefined. */
function expiryOf(token: string): number | undefined {
  const payload = token.split(".")[1];
  try {
    const claims = JSON.parse(
      new TextDecoder().decode(Uint8Array.fromBase64(payload ?? "", { alphabet: "base64url" })),
    );
    return typeof claims?.exp === "number" && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/** SecurityTokenAdapter.isValid: `exp` after now, to the second, no margin. */
function isValid(session: Session): boolean {
  return session.exp > Math.round(Date.now() / 1000);
}

function certificateOf(pem: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new ImdsReadError(`IMDS answered ${path} with no certificate`);
  }
}

/**
 * AuthUtils.getTenantIdFromCertificate: the first subject component whose value holds
 * `opc-tenant:` (or `opc-identity:`), the text after it.
 */
function tenancyOf(leaf: X509Certificate): string {
  for (const component of leaf.subject.split("\n")) {
    const value = component.slice(component.indexOf("=") + 1);
    for (const marker of [OPC_TENANT, OPC_IDENTITY]) {
      const at = value.indexOf(marker);
      if (at >= 0 && value.length > at + marker.length) return value.slice(at + marker.length);
    }
  }
  throw new ImdsReadError("the instance certificate's subject names no tenancy (opc-tenant)");
}

/** AuthUtils.sanitizeCertificateString: armour and the first line break removed. */
function sanitizeCertificateString(pem: string): string {
  return pem
    .replace("-----BEGIN CERTIFICATE-----", "")
    .replace("-----END CERTIFICATE-----", "")
    .replace("-----BEGIN PUBLIC KEY-----", "")
    .replace("-----END PUBLIC KEY-----", "")
    .replace("\n", "");
}

/** PEM as sshpk writes it (64-column base64), which is what the SDK sanitises. */
function pemOf(label: string, der: Uint8Array): string {
  const lines = Buffer.from(der).toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** A signal for one phase: `timeoutMs`, or the run deadline if that comes first. */
export function phaseSignal(opts: Pick<InstancePrincipalOptions, "timeoutMs" | "signal">): {
  signal: AbortSignal;
  clear(): void;
} {
  const t = timeoutSignal(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([t.signal, opts.signal]) : t.signal;
  return { signal, clear: t.clear };
}

function deadlineReason(opts: Pick<InstancePrincipalOptions, "timeoutMs" | "signal">): string {
  return opts.signal?.aborted ? "run deadline reached" : `timed out after ${opts.timeoutMs} ms`;
}
