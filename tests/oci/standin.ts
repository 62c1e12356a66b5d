/**
 * A loopback stand-in for the parts of OCI that secretsync talks to, good enough that the real
 * `oci-secrets`/`oci-common` SDK runs against it unmodified:
 *
 * - IMDS v2 (`/opc/v2/…`, requires `Authorization: Bearer Oracle`): region, region info (unless
 *   switched off, as an older IMDS), leaf certificate and key, intermediate certificate.
 * - Federation (`POST /v1/x509`): verifies the request signature with the leaf certificate's key
 *   and the body (leaf and intermediate certificate, purpose), answers `{"token": JWT}` with the
 *   session public key in the `jwk` claim.
 * - Secret retrieval (`GET /20190301/secretbundles/{id}`,
 *   `POST /20190301/secretbundles/actions/getByName`): real SecretBundle JSON.
 * - Streaming (`POST /20180418/streams/{id}/cursors`, `GET|POST /20180418/streams/{id}/messages`):
 *   see `_streams.ts`. `routeSecretEvents` makes every `setSecret` put the CloudEvent a
 *   rotation would on a stream, as an OCI Events rule with a Streaming action does.
 *
 * Every signed request is verified (signature, signed header set, date skew, body hash); any
 * failure is a 401 `NotAuthenticated` counted in `calls.rejected`. Faults can be injected per
 * path and per secret.
 *
 * @example
 * ```ts
 * import { startOciStandIn } from "./standin.ts";
 * import { openVault } from "../../src/vault/mod.ts";
 *
 * const oci = await startOciStandIn();
 * try {
 *   oci.setSecret("ocid1.vaultsecret.oc1..a", "hunter2");
 *   oci.fault({ secretId: "ocid1.vaultsecret.oc1..a" }, { status: 503, times: 2 });
 *   const vault = await openVault({
 *     auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
 *     endpoint: oci.secretsEndpoint,
 *     stage: "CURRENT",
 *   });
 *   vault.close();
 * } finally {
 *   await oci.close();
 * }
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto";
import { type RawRequest, type Reply, serveRaw } from "./_http.ts";
import { getPki, type Pki } from "./_pki.ts";
import { contentSha256, parseAuthorization, signingString, verifyRsaSha256 } from "./_signature.ts";
import {
  createStreams,
  secretEvent,
  type StoredMessage,
  type StreamCalls,
  type StreamLimits,
  type Streams,
} from "./_streams.ts";

/** Options for `startOciStandIn`. */
export interface StandInOptions {
  /** Region served by IMDS. @default "us-ashburn-1" */
  region?: string;
  /**
   * Serve `instance/regionInfo` (realm OC1, `oraclecloud.com`) as OCI's IMDS does; false
   * answers it 404 as an older IMDS would (see `setRegionInfo`). @default true
   */
  regionInfo?: boolean;
  /** Tenancy OCID, also written into the leaf certificate. @default "ocid1.tenancy.oc1..aaaastandin" */
  tenancyId?: string;
  /** Lifetime of issued session tokens. @default 3600 */
  tokenTtlSeconds?: number;
  /** Largest accepted difference between the signed date and now. @default 300 */
  maxSkewSeconds?: number;
  /** Port on 127.0.0.1. @default 0 (any free port) */
  port?: number;
  /**
   * Serve the unsigned control API under `/_standin/` (for serve.ts and demos):
   * `PUT /_standin/secrets/{id}` (body: the value; answers `{"version": n}`),
   * `POST /_standin/faults` (`{"match": {…}, "fault": {…}}`), `DELETE /_standin/faults`,
   * `GET /_standin/calls`, `POST /_standin/latency` (`{"ms": 50, "paths": […]}`),
   * `GET /_standin/content/{id}` (the CURRENT version's base64, as a stub `oci` CLI prints it);
   * streams: `POST /_standin/streams` (`{"id"?, "partitions"?, "routeSecretEvents"?}`, answers
   * `{"id"}`), `POST /_standin/streams/{id}/events` (`{"secretId", "eventType"?}` or
   * `{"raw": any JSON}`, answers `{"offset"}`). @default false
   */
  control?: boolean;
  /** Every request to these endpoint families is answered this much later. @default 0 */
  latencyMs?: number;
  /** Which families `latencyMs` applies to. @default ["imds", "federation", "secrets"] */
  latencyPaths?: FaultPath[];
  /**
   * Answer `latencyMs` after the request arrived, the stand-in's own work (signature checks,
   * JSON) done within that time instead of after it: as a server a round trip away. For
   * benchmarks, where the stand-in shares the machine; otherwise the answer reflects the state
   * after the latency. @default false
   */
  workWithinLatency?: boolean;
  /**
   * Keep connections open for further requests, as OCI's endpoints do; otherwise each answer
   * closes its connection. @default false
   */
  keepAlive?: boolean;
  /** Streaming limits (cursor lifetime, read rates); see `_streams.ts`. */
  streams?: Partial<StreamLimits>;
}

/** Which endpoint family a fault applies to. */
export type FaultPath = "imds" | "federation" | "secrets" | "streams";

/** Which requests a fault applies to; an empty match applies to every request. */
export interface FaultMatch {
  /** Secret OCID (for getByName: the OCID the name resolves to). */
  secretId?: string;
  path?: FaultPath;
}

/**
 * What happens to a matching request. Applied in this order: `delayMs`, then `hang`, `reset`,
 * `status`, `body`; the bundle overrides change an otherwise normal answer. A fault with only
 * `delayMs` delays a normal answer.
 */
export interface Fault {
  /** Answer this HTTP status with an OCI error body (or `body`). */
  status?: number;
  /** OCI error code for `status`. Default: the usual one for the status. */
  code?: string;
  /** OCI error message for `status`. */
  message?: string;
  /** Wait this long before doing anything else. */
  delayMs?: number;
  /** Never answer; the connection stays open until `close()`. */
  hang?: boolean;
  /** Close the connection without an answer. */
  reset?: boolean;
  /** Raw response body (with `status`, or 200 without it): e.g. malformed JSON. */
  body?: string;
  /** Content-Type header for `body`. @default "application/json" */
  contentType?: string;
  /** Replaces `secretBundleContent.contentType` in a normal answer (e.g. "TEXT"). */
  bundleContentType?: string;
  /** Replaces `secretBundleContent.content` in a normal answer (e.g. invalid base64). */
  bundleContent?: string | null;
  /** How many matching requests this fault affects. @default Infinity */
  times?: number;
  /** The fault applies for this long after it was added, then never again. @default forever */
  forMs?: number;
}

/** Request counters. Faulted and rejected requests count too. */
export interface StandInCalls {
  imds: number;
  federation: number;
  /** Per secret OCID (getByName of an unknown name: `name:<vaultId>/<name>`). */
  secrets: Map<string, number>;
  /** Requests refused for a missing, malformed or wrong signature. */
  rejected: number;
  /** Streaming requests (answered ones; faulted ones count in `log` only). */
  streams: StreamCalls;
  /** Every request as "METHOD /path" (no query), oldest first. */
  log: string[];
  /** When each Secrets API request arrived (`performance.now()`), for whom, oldest first. */
  secretsAt: { at: number; secretId?: string }[];
}

/** Options for `setSecret`. */
export interface SetSecretOptions {
  /** Secret name for getByName. @default the OCID */
  name?: string;
  /** @default the stand-in's vault OCID */
  vaultId?: string;
  /**
   * CURRENT (default): the new version becomes CURRENT and LATEST, the old CURRENT becomes
   * PREVIOUS, the old PREVIOUS becomes DEPRECATED. PENDING: the new version is PENDING and
   * LATEST; CURRENT stays where it is.
   */
  stage?: "CURRENT" | "PENDING";
}

/** Options for the session-token credentials the stand-in issues directly. */
export interface SessionTokenOptions {
  /** Token lifetime; negative for a token that has already expired. @default tokenTtlSeconds */
  ttlSeconds?: number;
  /** Encrypt the private key with this passphrase. */
  passphrase?: string;
}

/** What `writeSecurityTokenConfig` wrote. */
export interface SecurityTokenFiles {
  configFile: string;
  profile: string;
  tokenFile: string;
  keyFile: string;
}

/** Options for `resourcePrincipalEnv`. */
export interface ResourcePrincipalOptions extends SessionTokenOptions {
  /** Write the token, key (and passphrase) to files in this directory and give their paths. */
  filesIn?: string;
  /** OCI_RESOURCE_PRINCIPAL_REGION. @default the stand-in's region */
  region?: string;
}

/** A running stand-in. */
export interface OciStandIn {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** `${url}/opc/v2/` */
  imdsUrl: string;
  /** Federation endpoint (the SDK appends `/v1/x509`). */
  authEndpoint: string;
  /** Secrets endpoint (the SDK appends `/20190301`). */
  secretsEndpoint: string;
  /** Streaming messages endpoint (clients append `/20180418`). */
  streamEndpoint: string;
  region: string;
  tenancyId: string;
  /** The default vault OCID secrets are created in. */
  vaultId: string;
  calls: StandInCalls;
  /** Why each rejected request was rejected, oldest first (for test diagnostics). */
  rejections: string[];
  /** Writes an OCI config file and PEM key the stand-in knows; returns the paths. */
  writeApiKeyConfig(dir: string): Promise<{ configFile: string; profile: string }>;
  /** The API key's keyId and PEM, for tests that sign requests themselves. */
  apiKey(): { keyId: string; privateKeyPem: string };
  /**
   * Issues a session token (JWT) for a fresh RSA key, as `oci session authenticate` or a
   * resource principal platform would: requests signed with that key and keyId `ST$<token>`
   * verify until the token expires.
   */
  issueSessionToken(
    opts?: SessionTokenOptions & { ptype?: "user" | "resource" },
  ): { token: string; privateKeyPem: string };
  /**
   * Writes an OCI config profile with `security_token_file` and `key_file` (and `pass_phrase`
   * when the key is encrypted), as `oci session authenticate` does; returns the paths.
   */
  writeSecurityTokenConfig(dir: string, opts?: SessionTokenOptions): Promise<SecurityTokenFiles>;
  /** The `OCI_RESOURCE_PRINCIPAL_*` variables (version 2.2) of a freshly issued token. */
  resourcePrincipalEnv(opts?: ResourcePrincipalOptions): Promise<Record<string, string>>;
  /**
   * Makes every issued session token expired as far as the service is concerned, while the
   * tokens' own `exp` claims still lie ahead (a token revoked or expired early).
   */
  expireSessionTokens(): void;
  /** Adds a version; returns its version number. */
  setSecret(id: string, value: Uint8Array | string, opts?: SetSecretOptions): number;
  fault(match: FaultMatch, fault: Fault): void;
  clearFaults(): void;
  /** Sets the latency every request of `paths` gets (see `StandInOptions.latencyMs`). */
  setLatency(ms: number, paths?: FaultPath[]): void;
  /** Serves `instance/regionInfo` or answers it 404 (see `StandInOptions.regionInfo`). */
  setRegionInfo(served: boolean): void;
  /** `calls.secrets.get(id) ?? 0` */
  secretCalls(id: string): number;
  /** Creates a stream (one partition by default); returns its OCID. */
  createStream(opts?: { id?: string; name?: string; partitions?: number }): string;
  /**
   * From now on every `setSecret` puts a secret event on this stream, as an Events rule with a
   * Streaming action would (`eventType` default: createsecretversion).
   */
  routeSecretEvents(streamId: string, opts?: { eventType?: string }): void;
  /** Puts the event a rotation of `secretId` would on the stream; returns the message. */
  emitSecretEvent(
    streamId: string,
    secretId: string,
    opts?: { eventType?: string },
  ): { offset: number; eventID: string };
  /** Puts any bytes or JSON on the stream, as PutMessages would; returns the offset. */
  putMessage(streamId: string, value: unknown, opts?: { partition?: number }): number;
  /** Drops every message below `offset` from a partition, as retention would. */
  trimStream(streamId: string, offset: number, partition?: number): void;
  /** The messages of a partition, oldest first. */
  streamMessages(streamId: string, partition?: number): readonly StoredMessage[];
  close(): Promise<void>;
}

interface Version {
  number: number;
  bytes: Uint8Array;
  stages: Set<string>;
  timeCreated: string;
}

interface Secret {
  id: string;
  name: string;
  vaultId: string;
  versions: Version[];
}

interface IssuedToken {
  sessionKey: KeyObject;
  exp: number;
}

const ALL_PATHS: FaultPath[] = ["imds", "federation", "secrets"];
const STAGES = new Set(["CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"]);
const DEFAULT_CODES: Record<number, string> = {
  400: "InvalidParameter",
  401: "NotAuthenticated",
  403: "NotAuthorizedOrNotFound",
  404: "NotAuthorizedOrNotFound",
  409: "IncorrectState",
  429: "TooManyRequests",
  500: "InternalServerError",
  502: "BadGateway",
  503: "ServiceUnavailable",
  504: "GatewayTimeout",
};
const API_USER = "ocid1.user.oc1..aaaastandinuser";
/** regionKey of regionInfo for the regions tests use. */
const REGION_KEYS: Record<string, string> = {
  "us-ashburn-1": "IAD",
  "us-phoenix-1": "PHX",
  "eu-frankfurt-1": "FRA",
  "uk-london-1": "LHR",
};
const INSTANCE_ID = "ocid1.instance.oc1.iad.aaaastandininstance";

/**
 * Starts the stand-in on 127.0.0.1 on a free port. Requires `--allow-net`, `--allow-run`
 * (openssl) and `--allow-read`/`--allow-write` (temp files).
 */
export async function startOciStandIn(opts: StandInOptions = {}): Promise<OciStandIn> {
  const region = opts.region ?? "us-ashburn-1";
  const tenancyId = opts.tenancyId ?? "ocid1.tenancy.oc1..aaaastandin";
  const tokenTtl = opts.tokenTtlSeconds ?? 3600;
  const maxSkewMs = (opts.maxSkewSeconds ?? 300) * 1000;
  const vaultId = "ocid1.vault.oc1.iad.aaaastandinvault";
  const pki = await getPki(tenancyId, INSTANCE_ID);
  const apiKeyId = `${tenancyId}/${API_USER}/${pki.apiKeyFingerprint}`;
  const fedKeyId = `${tenancyId}/fed-x509/${pki.leafSha1Fingerprint}`;
  const jwtSecret = crypto.getRandomValues(new Uint8Array(32));

  const secrets = new Map<string, Secret>();
  const faults: { match: FaultMatch; fault: Fault; left: number; until: number }[] = [];
  const latency = { ms: opts.latencyMs ?? 0, paths: new Set(opts.latencyPaths ?? ALL_PATHS) };
  const tokens = new Map<string, IssuedToken>();
  const streams = createStreams(opts.streams);
  const routes: { streamId: string; eventType?: string }[] = [];
  const calls: StandInCalls = {
    imds: 0,
    federation: 0,
    secrets: new Map(),
    rejected: 0,
    streams: streams.calls,
    log: [],
    secretsAt: [],
  };
  const rejections: string[] = [];

  const ctx: HandlerContext = {
    region,
    regionInfo: opts.regionInfo ?? true,
    tenancyId,
    pki,
    apiKeyId,
    fedKeyId,
    tokenTtl,
    maxSkewMs,
    jwtSecret,
    secrets,
    streams,
    tokens,
    calls,
    rejections,
    latency: (path) => latency.paths.has(path) ? latency.ms : 0,
    workWithinLatency: opts.workWithinLatency ?? false,
    takeFault(path, secretId) {
      for (const f of faults) {
        if (f.left <= 0 || Date.now() >= f.until) continue;
        if (f.match.path !== undefined && f.match.path !== path) continue;
        if (f.match.secretId !== undefined && f.match.secretId !== secretId) continue;
        f.left--;
        return f.fault;
      }
      return undefined;
    },
  };

  const server = serveRaw(
    async (req) => {
      if (opts.control && new URL(req.target, "http://x").pathname.startsWith("/_standin/")) {
        const content = contentOf(ctx, req);
        if (content) {
          // What `oci secrets secret-bundle get --query …content --raw-output` prints, for a
          // stub `oci` (the benchmark's original script): unsigned, with the secrets latency.
          if (ctx.latency("secrets")) await sleep(ctx.latency("secrets"), server.closing);
          return content;
        }
        return control(standIn, req);
      }
      return handle(ctx, req, server.closing);
    },
    opts.port ?? 0,
    { keepAlive: opts.keepAlive },
  );
  const url = `http://127.0.0.1:${server.port}`;

  const standIn: OciStandIn = {
    url,
    imdsUrl: `${url}/opc/v2/`,
    authEndpoint: url,
    secretsEndpoint: url,
    streamEndpoint: url,
    region,
    tenancyId,
    vaultId,
    calls,
    rejections,
    async writeApiKeyConfig(dir) {
      const keyFile = `${dir}/oci_api_key.pem`;
      const configFile = `${dir}/oci_config`;
      await Deno.writeTextFile(keyFile, pki.apiKeyPem, { mode: 0o600 });
      await Deno.writeTextFile(
        configFile,
        [
          "[DEFAULT]",
          `user=${API_USER}`,
          `fingerprint=${pki.apiKeyFingerprint}`,
          `tenancy=${tenancyId}`,
          `region=${region}`,
          `key_file=${keyFile}`,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      return { configFile, profile: "DEFAULT" };
    },
    apiKey: () => ({ keyId: apiKeyId, privateKeyPem: pki.apiKeyPem }),
    issueSessionToken: (o = {}) => issueForNewKey(ctx, o),
    async writeSecurityTokenConfig(dir, o = {}) {
      const { token, privateKeyPem } = issueForNewKey(ctx, { ...o, ptype: "user" });
      const profile = "SESSION";
      const tokenFile = `${dir}/sessions/${profile}/token`;
      const keyFile = `${dir}/sessions/${profile}/oci_api_key.pem`;
      const configFile = `${dir}/oci_session_config`;
      await Deno.mkdir(`${dir}/sessions/${profile}`, { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(tokenFile, token, { mode: 0o600 });
      await Deno.writeTextFile(keyFile, privateKeyPem, { mode: 0o600 });
      await Deno.writeTextFile(
        configFile,
        [
          "[DEFAULT]",
          `region=${region}`,
          "",
          `[${profile}]`,
          `fingerprint=00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff`,
          `key_file=${keyFile}`,
          `tenancy=${tenancyId}`,
          `region=${region}`,
          `security_token_file=${tokenFile}`,
          ...(o.passphrase ? [`pass_phrase=${o.passphrase}`] : []),
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      return { configFile, profile, tokenFile, keyFile };
    },
    async resourcePrincipalEnv(o = {}) {
      const { token, privateKeyPem } = issueForNewKey(ctx, { ...o, ptype: "resource" });
      const env: Record<string, string> = {
        OCI_RESOURCE_PRINCIPAL_VERSION: "2.2",
        OCI_RESOURCE_PRINCIPAL_REGION: o.region ?? region,
      };
      if (o.filesIn) {
        const write = async (name: string, text: string) => {
          await Deno.writeTextFile(`${o.filesIn}/${name}`, text, { mode: 0o600 });
          return `${o.filesIn}/${name}`;
        };
        env.OCI_RESOURCE_PRINCIPAL_RPST = await write("rpst", token);
        env.OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM = await write("private.pem", privateKeyPem);
        if (o.passphrase) {
          env.OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE = await write(
            "passphrase",
            o.passphrase,
          );
        }
      } else {
        env.OCI_RESOURCE_PRINCIPAL_RPST = token;
        env.OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM = privateKeyPem;
        if (o.passphrase) env.OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE = o.passphrase;
      }
      return env;
    },
    expireSessionTokens() {
      for (const issued of tokens.values()) issued.exp = Math.floor(Date.now() / 1000) - 1;
    },
    setSecret(id, value, o = {}) {
      const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value.slice();
      let s = secrets.get(id);
      if (!s) {
        s = { id, name: o.name ?? id, vaultId: o.vaultId ?? vaultId, versions: [] };
        secrets.set(id, s);
      }
      const v: Version = {
        number: s.versions.length + 1,
        bytes,
        stages: new Set(),
        timeCreated: new Date().toISOString(),
      };
      for (const old of s.versions) old.stages.delete("LATEST");
      if ((o.stage ?? "CURRENT") === "CURRENT") {
        for (const old of s.versions) {
          if (old.stages.delete("PREVIOUS")) old.stages.add("DEPRECATED");
        }
        for (const old of s.versions) {
          if (old.stages.delete("CURRENT")) old.stages.add("PREVIOUS");
        }
        for (const old of s.versions) old.stages.delete("PENDING");
        v.stages.add("CURRENT");
      } else {
        v.stages.add("PENDING");
      }
      v.stages.add("LATEST");
      s.versions.push(v);
      for (const route of routes) {
        standIn.emitSecretEvent(route.streamId, id, { eventType: route.eventType });
      }
      return v.number;
    },
    fault(match, fault) {
      faults.push({
        match,
        fault,
        left: fault.times ?? Infinity,
        until: fault.forMs === undefined ? Infinity : Date.now() + fault.forMs,
      });
    },
    clearFaults() {
      faults.length = 0;
    },
    setLatency(ms, paths = ALL_PATHS) {
      latency.ms = ms;
      latency.paths = new Set(paths);
    },
    setRegionInfo(served) {
      ctx.regionInfo = served;
    },
    secretCalls: (id) => calls.secrets.get(id) ?? 0,
    createStream(o = {}) {
      const id = o.id ?? `ocid1.stream.oc1.iad.standin${crypto.randomUUID().replaceAll("-", "")}`;
      const n = o.partitions ?? 1;
      streams.streams.set(id, {
        id,
        name: o.name ?? "secretsync-events",
        partitions: Array.from({ length: n }, () => []),
        trimmedBelow: Array(n).fill(0),
      });
      return id;
    },
    routeSecretEvents(streamId, o = {}) {
      if (!streams.streams.has(streamId)) throw new Error(`No stream ${streamId}`);
      routes.push({ streamId, eventType: o.eventType });
    },
    emitSecretEvent(streamId, secretId, o = {}) {
      const event = secretEvent({ secretId, compartmentId: tenancyId, eventType: o.eventType });
      const offset = standIn.putMessage(streamId, event);
      return { offset, eventID: event.eventID as string };
    },
    putMessage(streamId, value, o = {}) {
      const bytes = value instanceof Uint8Array
        ? value
        : new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
      return streams.append(streamId, bytes, { partition: o.partition }).offset;
    },
    trimStream(streamId, offset, partition = 0) {
      const stream = streams.streams.get(streamId);
      if (!stream) throw new Error(`No stream ${streamId}`);
      stream.partitions[partition] = stream.partitions[partition].filter((m) => m.offset >= offset);
      stream.trimmedBelow[partition] = Math.max(stream.trimmedBelow[partition], offset);
    },
    streamMessages: (streamId, partition = 0) =>
      streams.streams.get(streamId)?.partitions[partition] ?? [],
    close: () => server.close(),
  };
  return standIn;
}

interface HandlerContext {
  region: string;
  /** Whether IMDS serves instance/regionInfo. */
  regionInfo: boolean;
  tenancyId: string;
  pki: Pki;
  apiKeyId: string;
  fedKeyId: string;
  tokenTtl: number;
  maxSkewMs: number;
  jwtSecret: Uint8Array;
  secrets: Map<string, Secret>;
  streams: Streams;
  tokens: Map<string, IssuedToken>;
  calls: StandInCalls;
  rejections: string[];
  /** The latency for requests of this family now. */
  latency(path: FaultPath): number;
  /** See `StandInOptions.workWithinLatency`. */
  workWithinLatency: boolean;
  takeFault(path: FaultPath, secretId?: string): Fault | undefined;
}

class Rejected extends Error {}

async function handle(ctx: HandlerContext, req: RawRequest, closing: AbortSignal): Promise<Reply> {
  const url = new URL(req.target, "http://standin");
  const path = url.pathname;
  const requestId = req.headers.get("opc-request-id") ?? crypto.randomUUID();
  ctx.calls.log.push(`${req.method} ${path}`);

  let kind: FaultPath;
  let secretId: string | undefined;
  if (path.startsWith("/opc/v2/")) {
    kind = "imds";
    ctx.calls.imds++;
  } else if (path === "/v1/x509") {
    kind = "federation";
    ctx.calls.federation++;
  } else if (path.startsWith("/20180418/streams/")) {
    kind = "streams";
  } else if (path.startsWith("/20190301/secretbundles/")) {
    kind = "secrets";
    secretId = resolveSecretId(ctx, req.method, url);
    ctx.calls.secretsAt.push({ at: performance.now(), secretId });
    if (secretId !== undefined) {
      ctx.calls.secrets.set(secretId, (ctx.calls.secrets.get(secretId) ?? 0) + 1);
    }
  } else {
    return ociError(404, "NotFound", `No route for ${req.method} ${path}`, requestId);
  }

  const latency = ctx.latency(kind);
  if (ctx.workWithinLatency) {
    // A server a round trip away: the answer leaves `latency` after the request arrived, its
    // work (the signature check above all) done in that time rather than added to it.
    const due = performance.now() + latency;
    const reply = await answer(ctx, req, url, kind, secretId, requestId, closing);
    const left = due - performance.now();
    if (left > 0 && reply.kind === "response") await sleep(left, closing);
    return reply;
  }
  if (latency > 0) await sleep(latency, closing);
  return await answer(ctx, req, url, kind, secretId, requestId, closing);
}

/** The answer to a routed request: an injected fault, else the endpoint's own. */
async function answer(
  ctx: HandlerContext,
  req: RawRequest,
  url: URL,
  kind: FaultPath,
  secretId: string | undefined,
  requestId: string,
  closing: AbortSignal,
): Promise<Reply> {
  const path = url.pathname;
  const fault = ctx.takeFault(kind, secretId);
  if (fault?.delayMs) await sleep(fault.delayMs, closing);
  if (fault?.hang) return { kind: "hang" };
  if (fault?.reset) return { kind: "reset" };
  if (fault?.status !== undefined) {
    if (fault.body !== undefined) return rawBody(fault.status, fault, requestId);
    return ociError(
      fault.status,
      fault.code ?? DEFAULT_CODES[fault.status] ?? "Unknown",
      fault.message ?? `Injected fault ${fault.status}`,
      requestId,
    );
  }
  if (fault?.body !== undefined) return rawBody(200, fault, requestId);

  try {
    switch (kind) {
      case "imds":
        return imds(ctx, req, path.slice("/opc/v2/".length), requestId);
      case "federation":
        return federation(ctx, req, requestId);
      case "secrets":
        return secretBundle(ctx, req, url, requestId, fault);
      case "streams":
        verifySignature(ctx, req, "service");
        return ctx.streams.handle(req, url, requestId);
    }
  } catch (e) {
    if (e instanceof Rejected) {
      ctx.calls.rejected++;
      ctx.rejections.push(`${req.method} ${path}: ${e.message}`);
      return ociError(
        401,
        "NotAuthenticated",
        "The required information to complete authentication was not provided or was incorrect.",
        requestId,
      );
    }
    throw e;
  }
}

/** `GET /_standin/content/{id}`: the CURRENT version's base64 as text, or undefined. */
function contentOf(ctx: HandlerContext, req: RawRequest): Reply | undefined {
  const path = new URL(req.target, "http://x").pathname;
  if (req.method !== "GET" || !path.startsWith("/_standin/content/")) return undefined;
  const id = decodeURIComponent(path.slice("/_standin/content/".length));
  const version = ctx.secrets.get(id)?.versions.find((v) => v.stages.has("CURRENT"));
  if (!version) {
    return { kind: "response", status: 404, headers: {}, body: `no secret ${id}\n` };
  }
  return {
    kind: "response",
    status: 200,
    headers: { "content-type": "text/plain" },
    body: version.bytes.toBase64() + "\n",
  };
}

/** The unsigned control API (see StandInOptions.control). */
function control(oci: OciStandIn, req: RawRequest): Reply {
  const path = new URL(req.target, "http://x").pathname;
  const json = (status: number, body: unknown): Reply => ({
    kind: "response",
    status,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  try {
    if (req.method === "PUT" && path.startsWith("/_standin/secrets/")) {
      const id = decodeURIComponent(path.slice("/_standin/secrets/".length));
      return json(200, { version: oci.setSecret(id, req.body) });
    }
    if (req.method === "POST" && path === "/_standin/faults") {
      const { match, fault } = JSON.parse(new TextDecoder().decode(req.body));
      oci.fault(match ?? {}, fault ?? {});
      return json(200, {});
    }
    if (req.method === "POST" && path === "/_standin/latency") {
      const { ms, paths } = JSON.parse(new TextDecoder().decode(req.body));
      oci.setLatency(Number(ms), paths);
      return json(200, {});
    }
    if (req.method === "DELETE" && path === "/_standin/faults") {
      oci.clearFaults();
      return json(200, {});
    }
    if (req.method === "GET" && path === "/_standin/calls") {
      return json(200, { ...oci.calls, secrets: Object.fromEntries(oci.calls.secrets) });
    }
    if (req.method === "POST" && path === "/_standin/streams") {
      const body = req.body.length > 0 ? JSON.parse(new TextDecoder().decode(req.body)) : {};
      const id = oci.createStream({ id: body.id, partitions: body.partitions });
      if (body.routeSecretEvents) oci.routeSecretEvents(id);
      return json(200, { id });
    }
    const events = /^\/_standin\/streams\/([^/]+)\/events$/.exec(path);
    if (req.method === "POST" && events) {
      const id = decodeURIComponent(events[1]);
      const body = JSON.parse(new TextDecoder().decode(req.body));
      if ("raw" in body) return json(200, { offset: oci.putMessage(id, body.raw) });
      return json(200, oci.emitSecretEvent(id, body.secretId, { eventType: body.eventType }));
    }
  } catch (e) {
    return json(400, { code: "InvalidParameter", message: String(e) });
  }
  return json(404, { code: "NotFound", message: `No control route ${req.method} ${path}` });
}

function resolveSecretId(ctx: HandlerContext, method: string, url: URL): string | undefined {
  const rest = url.pathname.slice("/20190301/secretbundles/".length);
  if (method === "POST" && rest === "actions/getByName") {
    const name = url.searchParams.get("secretName") ?? "";
    const vaultId = url.searchParams.get("vaultId") ?? "";
    for (const s of ctx.secrets.values()) {
      if (s.name === name && s.vaultId === vaultId) return s.id;
    }
    return `name:${vaultId}/${name}`;
  }
  if (method === "GET" && rest && !rest.includes("/")) return decodeURIComponent(rest);
  return undefined;
}

function imds(ctx: HandlerContext, req: RawRequest, sub: string, requestId: string): Reply {
  if (req.headers.get("authorization") !== "Bearer Oracle") {
    return ociError(401, "NotAuthenticated", "Missing IMDS v2 authorization header", requestId);
  }
  const text = (body: string, type = "text/plain"): Reply => ({
    kind: "response",
    status: 200,
    headers: { "content-type": type },
    body,
  });
  switch (sub) {
    case "instance/region":
    case "instance/canonicalRegionName":
      return text(ctx.region);
    case "instance/regionInfo":
    case "instance/regionInfo/":
      if (!ctx.regionInfo) break;
      return text(
        JSON.stringify({
          realmKey: "oc1",
          realmDomainComponent: "oraclecloud.com",
          regionKey: REGION_KEYS[ctx.region] ?? ctx.region.slice(0, 3).toUpperCase(),
          regionIdentifier: ctx.region,
        }),
        "application/json",
      );
    case "instance/id":
      return text(INSTANCE_ID);
    case "instance/compartmentId":
      return text(ctx.tenancyId);
    case "instance/":
    case "instance":
      return text(
        JSON.stringify({
          id: INSTANCE_ID,
          compartmentId: ctx.tenancyId,
          region: ctx.region,
          canonicalRegionName: ctx.region,
        }),
        "application/json",
      );
    case "identity/cert.pem":
      return text(ctx.pki.leafCertPem);
    case "identity/key.pem":
      return text(ctx.pki.leafKeyPem);
    case "identity/intermediate.pem":
      return text(ctx.pki.intermediateCertPem);
  }
  return ociError(404, "NotFound", `No IMDS resource ${sub}`, requestId);
}

/**
 * Verifies the request's signature; throws Rejected with the reason. Returns the keyId.
 * `allow` decides which kinds of keyId the endpoint accepts.
 */
function verifySignature(
  ctx: HandlerContext,
  req: RawRequest,
  allow: "federation" | "service",
): string {
  const sig = parseAuthorization(req.headers.get("authorization"));
  if (!sig) throw new Rejected("no or malformed Signature authorization header");
  if (sig.version !== undefined && sig.version !== "1") {
    throw new Rejected(`unsupported version ${sig.version}`);
  }
  if (sig.algorithm !== "rsa-sha256") throw new Rejected(`unsupported algorithm ${sig.algorithm}`);

  const signed = new Set(sig.headers);
  const dateHeader = signed.has("x-date") ? "x-date" : signed.has("date") ? "date" : null;
  if (!dateHeader) throw new Rejected("neither date nor x-date is signed");
  for (const h of ["(request-target)", "host"]) {
    if (!signed.has(h)) throw new Rejected(`${h} is not signed`);
  }
  const hasBody = ["POST", "PUT", "PATCH"].includes(req.method);
  if (hasBody) {
    for (const h of ["content-type", "content-length", "x-content-sha256"]) {
      if (!signed.has(h)) throw new Rejected(`${h} is not signed`);
    }
  }

  let data: string;
  try {
    data = signingString(req.method, req.target, req.headers, sig.headers);
  } catch (e) {
    throw new Rejected((e as Error).message);
  }

  const date = Date.parse(req.headers.get(dateHeader) ?? "");
  if (!Number.isFinite(date)) throw new Rejected(`${dateHeader} is not a date`);
  if (Math.abs(Date.now() - date) > ctx.maxSkewMs) throw new Rejected(`${dateHeader} is skewed`);

  if (hasBody) {
    if (req.headers.get("x-content-sha256") !== contentSha256(req.body)) {
      throw new Rejected("x-content-sha256 does not match the body");
    }
    if (Number(req.headers.get("content-length")) !== req.body.length) {
      throw new Rejected("content-length does not match the body");
    }
  }

  let key: KeyObject;
  if (allow === "federation") {
    if (sig.keyId !== ctx.fedKeyId) throw new Rejected(`unknown federation keyId ${sig.keyId}`);
    key = ctx.pki.leafPublicKey;
  } else if (sig.keyId.startsWith("ST$")) {
    key = sessionKey(ctx, sig.keyId.slice(3));
  } else if (sig.keyId === ctx.apiKeyId) {
    key = ctx.pki.apiPublicKey;
  } else {
    throw new Rejected(`unknown keyId ${sig.keyId}`);
  }
  if (!verifyRsaSha256(data, sig.signature, key)) throw new Rejected("signature does not verify");
  return sig.keyId;
}

function sessionKey(ctx: HandlerContext, token: string): KeyObject {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Rejected("session token is not a JWT");
  const expected = createHmac("sha256", ctx.jwtSecret).update(`${parts[0]}.${parts[1]}`).digest();
  let given: Uint8Array;
  try {
    given = Uint8Array.fromBase64(parts[2], { alphabet: "base64url" });
  } catch {
    throw new Rejected("session token signature is not base64url");
  }
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new Rejected("session token was not issued here");
  }
  const issued = ctx.tokens.get(token);
  if (!issued) throw new Rejected("session token was not issued here");
  if (issued.exp * 1000 <= Date.now()) throw new Rejected("session token expired");
  return issued.sessionKey;
}

function federation(ctx: HandlerContext, req: RawRequest, requestId: string): Reply {
  if (req.method !== "POST") return ociError(404, "NotFound", "Use POST", requestId);
  verifySignature(ctx, req, "federation");
  let body: {
    certificate?: string;
    publicKey?: string;
    purpose?: string;
    intermediateCertificates?: string[];
  };
  try {
    body = JSON.parse(new TextDecoder().decode(req.body));
  } catch {
    return ociError(400, "InvalidParameter", "Body is not JSON", requestId);
  }
  if (body.certificate !== ctx.pki.leafCertDerB64) {
    throw new Rejected("certificate in the body is not the instance's leaf certificate");
  }
  // As the SDK sends them: the intermediate's DER in base64, purpose DEFAULT.
  const intermediate = ctx.pki.intermediateCertPem.replace(/-----[A-Z ]+-----|\s/g, "");
  if (
    !Array.isArray(body.intermediateCertificates) ||
    body.intermediateCertificates.length !== 1 ||
    body.intermediateCertificates[0] !== intermediate
  ) {
    return ociError(400, "InvalidParameter", "intermediateCertificates is wrong", requestId);
  }
  if (body.purpose !== "DEFAULT") {
    return ociError(400, "InvalidParameter", "purpose must be DEFAULT", requestId);
  }
  let sessionKey: KeyObject;
  try {
    sessionKey = createPublicKey({
      key: Buffer.from(body.publicKey ?? "", "base64"),
      format: "der",
      type: "spki",
    });
  } catch {
    return ociError(400, "InvalidParameter", "publicKey is not a base64 SPKI key", requestId);
  }
  const token = mintToken(ctx, sessionKey, { ptype: "instance", ttlSeconds: ctx.tokenTtl });
  return {
    kind: "response",
    status: 200,
    headers: { "content-type": "application/json", "opc-request-id": requestId },
    body: JSON.stringify({ token }),
  };
}

/** Signs a session token for `sessionKey` and records it as issued here. */
function mintToken(
  ctx: HandlerContext,
  sessionKey: KeyObject,
  opts: { ptype: string; ttlSeconds: number },
): string {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + opts.ttlSeconds;
  const jwk = sessionKey.export({ format: "jwk" }) as { n: string; e: string };
  const claims = {
    sub: INSTANCE_ID,
    iss: "authService.oracle.com",
    aud: "oci",
    ptype: opts.ptype,
    ttype: "x509",
    tenant: ctx.tenancyId,
    "opc-tenant": ctx.tenancyId,
    "opc-instance": INSTANCE_ID,
    "opc-compartment": ctx.tenancyId,
    "opc-certtype": "instance",
    fprint: ctx.pki.leafSha1Fingerprint.replaceAll(":", "").toUpperCase(),
    jwk: JSON.stringify({
      kid: "asw",
      n: jwk.n,
      e: jwk.e,
      kty: "RSA",
      alg: "RS256",
      use: "sig",
    }),
    iat: now,
    exp,
    jti: crypto.randomUUID(),
  };
  const enc = (o: unknown) =>
    new TextEncoder().encode(JSON.stringify(o)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
  const unsigned = `${enc({ alg: "HS256", typ: "JWT", kid: "standin" })}.${enc(claims)}`;
  const mac = createHmac("sha256", ctx.jwtSecret).update(unsigned).digest();
  const token = `${unsigned}.${
    new Uint8Array(mac).toBase64({ alphabet: "base64url", omitPadding: true })
  }`;
  ctx.tokens.set(token, { sessionKey, exp });
  return token;
}

/** A fresh RSA key pair and a session token issued for it. */
function issueForNewKey(
  ctx: HandlerContext,
  opts: SessionTokenOptions & { ptype?: string },
): { token: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privateKeyPem = privateKey.export(
    opts.passphrase
      ? { format: "pem", type: "pkcs1", cipher: "aes-128-cbc", passphrase: opts.passphrase }
      : { format: "pem", type: "pkcs8" },
  ) as string;
  const token = mintToken(ctx, publicKey, {
    ptype: opts.ptype ?? "user",
    ttlSeconds: opts.ttlSeconds ?? ctx.tokenTtl,
  });
  return { token, privateKeyPem };
}

function secretBundle(
  ctx: HandlerContext,
  req: RawRequest,
  url: URL,
  requestId: string,
  fault: Fault | undefined,
): Reply {
  const rest = url.pathname.slice("/20190301/secretbundles/".length);
  const byName = req.method === "POST" && rest === "actions/getByName";
  if (!byName && (req.method !== "GET" || rest === "" || rest.includes("/"))) {
    return ociError(404, "NotFound", `No route for ${req.method} ${url.pathname}`, requestId);
  }
  verifySignature(ctx, req, "service");

  const q = url.searchParams;
  let secret: Secret | undefined;
  if (byName) {
    const name = q.get("secretName");
    const vaultId = q.get("vaultId");
    if (!name || !vaultId) {
      return ociError(400, "InvalidParameter", "secretName and vaultId are required", requestId);
    }
    secret = [...ctx.secrets.values()].find((s) => s.name === name && s.vaultId === vaultId);
  } else {
    secret = ctx.secrets.get(decodeURIComponent(rest));
  }
  const notFound = () =>
    ociError(
      404,
      "NotAuthorizedOrNotFound",
      "Authorization failed or requested resource not found.",
      requestId,
    );
  if (!secret) return notFound();

  const stage = q.get("stage");
  const versionNumber = q.get("versionNumber");
  const versionName = q.get("secretVersionName");
  if ([stage, versionNumber, versionName].filter((x) => x !== null).length > 1) {
    return ociError(
      400,
      "InvalidParameter",
      "Give only one of stage, versionNumber, secretVersionName",
      requestId,
    );
  }
  let version: Version | undefined;
  if (versionNumber !== null) {
    if (!/^[1-9][0-9]*$/.test(versionNumber)) {
      return ociError(
        400,
        "InvalidParameter",
        "versionNumber must be a positive integer",
        requestId,
      );
    }
    version = secret.versions.find((v) => v.number === Number(versionNumber));
  } else if (versionName !== null) {
    version = undefined; // versions have no names here
  } else {
    const want = stage ?? "CURRENT";
    if (!STAGES.has(want)) {
      return ociError(400, "InvalidParameter", `Unknown stage ${want}`, requestId);
    }
    version = secret.versions.findLast((v) => v.stages.has(want));
  }
  if (!version) return notFound();

  const content: Record<string, unknown> = {
    contentType: fault?.bundleContentType ?? "BASE64",
    content: fault && "bundleContent" in fault ? fault.bundleContent : version.bytes.toBase64(),
  };
  const bundle = {
    secretId: secret.id,
    timeCreated: version.timeCreated,
    versionNumber: version.number,
    versionName: null,
    secretBundleContent: content,
    timeOfDeletion: null,
    timeOfExpiry: null,
    stages: [...version.stages],
    metadata: null,
  };
  return {
    kind: "response",
    status: 200,
    headers: {
      "content-type": "application/json",
      "opc-request-id": requestId,
      etag: `"${secret.id}-${version.number}"`,
    },
    body: JSON.stringify(bundle),
  };
}

function ociError(status: number, code: string, message: string, requestId: string): Reply {
  return {
    kind: "response",
    status,
    headers: { "content-type": "application/json", "opc-request-id": requestId },
    body: JSON.stringify({ code, message }),
  };
}

function rawBody(status: number, fault: Fault, requestId: string): Reply {
  return {
    kind: "response",
    status,
    headers: {
      "content-type": fault.contentType ?? "application/json",
      "opc-request-id": requestId,
    },
    body: fault.body,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
