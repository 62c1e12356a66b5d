/**
 * Authentication providers: instance principal (IMDS + federation), API key (config file),
 * session token (config file) or resource principal (environment); see session.ts.
 *
 * @module
 */
import type { AuthenticationDetailsProvider } from "oci-common";
import { Aborted, raceAbort, timeoutSignal } from "./abort.ts";
import { describe, describeNetworkError } from "./describe.ts";
import { VaultError } from "./error.ts";
import type { Sdk } from "./sdk.ts";
import { readResourcePrincipal, readSecurityToken, RP_ENV, sessionProvider } from "./session.ts";
import { generateSessionKeyPair, type PemKeyPair, sessionKeySupplier } from "./session_key.ts";
import type { VaultAuth } from "./types.ts";

/** The default IMDS v2 base URL. */
export const DEFAULT_IMDS_URL = "http://169.254.169.254/opc/v2/";

/** A ready provider and what it knows about the region. */
export interface Authenticated {
  provider: AuthenticationDetailsProvider;
  /** Region ID from the provider (config file, or IMDS when the auth endpoint was derived). */
  regionId?: string;
  /** Reads the region from IMDS (instance principal only). */
  imdsRegion?: (signal: AbortSignal) => Promise<string>;
  /** Shuts down the SDK's circuit breakers (their timers). */
  dispose(): void;
  /** Advice added to an HTTP 401 (session tokens: how to get a fresh one). */
  on401?: string;
}

/**
 * The files an auth mode will read that are known before it starts, for a permission check
 * ahead of the run (the key and token files a config names are checked when read).
 */
export function credentialFiles(
  auth: VaultAuth,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string[] {
  if ((auth.mode === "api_key" || auth.mode === "security_token") && auth.configFile) {
    return [auth.configFile];
  }
  if (auth.mode === "resource_principal") {
    // Values that are absolute paths are files (see session.ts).
    return [RP_ENV.rpst, RP_ENV.privatePem, RP_ENV.passphrase]
      .map((name) => (auth.env ?? env)(name)?.trim() ?? "")
      .filter((value) => value.startsWith("/"));
  }
  return [];
}

/** The SDK and limits for the authentication phase. */
export interface AuthLimits {
  sdk: Sdk;
  /** The region option; lets api_key work with a config file that names no region. */
  region?: string;
  /** Each phase (IMDS reads, token federation) gets this long. */
  timeoutMs: number;
  /** The caller's whole-run deadline. */
  signal?: AbortSignal;
  /** A session key pair already being generated (instance principal); else one is started. */
  sessionKeys?: Promise<PemKeyPair>;
}

/**
 * Builds the provider. For instance principals it also obtains the session token, once, here:
 * asked concurrently by many first requests, the SDK would federate once per request (each with
 * a fresh key pair). Throws `VaultError` (secretId "") on failure.
 */
export async function authenticate(auth: VaultAuth, limits: AuthLimits): Promise<Authenticated> {
  const { sdk } = limits;
  switch (auth.mode) {
    case "api_key":
      return apiKey(sdk, auth.configFile, auth.profile ?? "DEFAULT", limits.region);
    case "security_token": {
      const file = auth.configFile ?? `${Deno.env.get("HOME") ?? ""}/.oci/config`;
      return session(readSecurityToken(sdk, file, auth.profile ?? "DEFAULT"));
    }
    case "resource_principal":
      return session(readResourcePrincipal(auth.env ?? ((name) => Deno.env.get(name))));
    default:
      return await instancePrincipal(
        sdk,
        auth.imdsUrl ?? DEFAULT_IMDS_URL,
        auth.authEndpoint,
        limits,
      );
  }
}

function session(credentials: ReturnType<typeof readSecurityToken>): Authenticated {
  return {
    provider: sessionProvider(credentials),
    regionId: credentials.regionId,
    on401: credentials.on401,
    dispose() {},
  };
}

function apiKey(
  sdk: Sdk,
  configFile: string | undefined,
  profile: string,
  region: string | undefined,
): Authenticated {
  const file = configFile ?? `${Deno.env.get("HOME") ?? ""}/.oci/config`;
  try {
    const provider = new sdk.common.ConfigFileAuthenticationDetailsProvider(file, profile);
    return { provider, regionId: provider.getRegion()?.regionId, dispose() {} };
  } catch (e) {
    // The SDK insists on a region in the file (or OCI_REGION) even when the caller has one.
    if (region && /Region not specified/.test(describe(e))) {
      return { provider: keyFromConfig(sdk, file, profile), dispose() {} };
    }
    throw new VaultError(
      `Cannot load OCI config "${file}" profile "${profile}": ${describe(e)}`,
      { secretId: "", retryable: false },
    );
  }
}

/** The API key provider built from the config file's fields, for a file without a region. */
function keyFromConfig(sdk: Sdk, file: string, profile: string): AuthenticationDetailsProvider {
  const { ConfigFileReader, SimpleAuthenticationDetailsProvider } = sdk.common;
  try {
    const config = ConfigFileReader.parseFileFromPath(file, profile);
    const need = (key: string): string => {
      const v = config.get(key);
      if (!v) throw new Error(`missing ${key} in config`);
      return v;
    };
    const keyFile = ConfigFileReader.expandUserHome(need("key_file"));
    let key: string;
    try {
      key = Deno.readTextFileSync(keyFile);
    } catch (e) {
      throw new Error(`cannot read key_file "${keyFile}": ${(e as Error).name}`);
    }
    return new SimpleAuthenticationDetailsProvider(
      need("tenancy"),
      need("user"),
      need("fingerprint"),
      key,
      config.get("pass_phrase"),
    );
  } catch (e) {
    throw new VaultError(
      `Cannot load OCI config "${file}" profile "${profile}": ${describe(e)}`,
      { secretId: "", retryable: false },
    );
  }
}

async function instancePrincipal(
  sdk: Sdk,
  imdsUrl: string,
  authEndpoint: string | undefined,
  limits: AuthLimits,
): Promise<Authenticated> {
  const builder = new sdk.common.InstancePrincipalsAuthenticationDetailsProviderBuilder();
  builder.metadataBaseUrl = imdsUrl;
  // Our supplier: one key pair, generated off the main thread (see session_key.ts).
  const keys = sessionKeySupplier(limits.sessionKeys ?? generateSessionKeyPair());
  builder.sessionKeySupplier = keys as never;
  if (authEndpoint) builder.federationEndpoint = authEndpoint;
  const dispose = () => {
    // The builder creates two opossum circuit breakers; their timers would outlive us.
    shutdownBreaker(builder.circuitBreaker);
    shutdownBreaker(builder.authCircuitBreaker);
  };
  const fail = (what: string, e: unknown, retryable: boolean, status?: number): never => {
    dispose();
    throw new VaultError(`Cannot authenticate with instance principal: ${what}: ${describe(e)}`, {
      secretId: "",
      status,
      retryable,
    });
  };

  let provider: Awaited<ReturnType<typeof builder.build>>;
  const imdsDeadline = phaseSignal(limits);
  try {
    provider = await raceAbort(builder.build(), imdsDeadline.signal);
  } catch (e) {
    // The SDK reports every IMDS problem as "Failed to autoDetectCertificatesUsingMetadataUrl";
    // ask IMDS once more ourselves to say what actually went wrong.
    const reason = e instanceof Aborted ? abortReason(e, limits) : await probeImds(imdsUrl, limits);
    return fail(`reading the instance identity from IMDS at ${imdsUrl} failed`, reason, true);
  } finally {
    imdsDeadline.clear();
  }

  const fedDeadline = phaseSignal(limits);
  try {
    await raceAbort(keys.ready, fedDeadline.signal);
    // getKeyId() refreshes the leaf certificate from IMDS and federates; the token is cached.
    await raceAbort(provider.getKeyId(), fedDeadline.signal);
  } catch (e) {
    // The builder subclass overrides only the setter, so the getter reads undefined.
    const derived = (builder as unknown as { _federationEndpoint?: string })._federationEndpoint;
    const endpoint = `${authEndpoint ?? derived ?? "the federation endpoint"}/v1/x509`;
    const status = Number(/status: (\d{3})/.exec(describe(e))?.[1]) || undefined;
    const retryable = status === undefined || status === 429 || status >= 500;
    return fail(
      `obtaining a session token from ${endpoint} failed`,
      abortReason(e, limits, status),
      retryable,
      status,
    );
  } finally {
    fedDeadline.clear();
  }

  return {
    provider,
    regionId: provider.getRegion()?.regionId,
    imdsRegion: (signal) => readImdsRegion(sdk, imdsUrl, signal),
    dispose,
  };
}

/** Why IMDS cannot give the instance identity, in a few words. */
async function probeImds(imdsUrl: string, limits: AuthLimits): Promise<string> {
  const base = imdsUrl.endsWith("/") ? imdsUrl : imdsUrl + "/";
  const t = timeoutSignal(Math.min(limits.timeoutMs, 2000));
  try {
    const res = await fetch(`${base}identity/cert.pem`, {
      headers: { Authorization: "Bearer Oracle" },
      signal: limits.signal ? AbortSignal.any([t.signal, limits.signal]) : t.signal,
    });
    await res.body?.cancel();
    return res.ok
      ? "IMDS answers, but its certificate or key could not be used"
      : `IMDS answered HTTP ${res.status} for identity/cert.pem`;
  } catch (e) {
    return t.signal.aborted ? "IMDS does not answer" : describeNetworkError(e);
  } finally {
    t.clear();
  }
}

async function readImdsRegion(sdk: Sdk, imdsUrl: string, signal: AbortSignal): Promise<string> {
  const base = imdsUrl.endsWith("/") ? imdsUrl : imdsUrl + "/";
  try {
    const res = await fetch(`${base}instance/region`, {
      headers: { Authorization: "Bearer Oracle" },
      signal,
    });
    const text = (await res.text()).trim();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    if (!/^[a-z0-9-]+$/i.test(text)) throw new Error("not a region name");
    return regionId(sdk, text);
  } catch (e) {
    throw new VaultError(
      `Cannot read the region from IMDS at ${base}instance/region: ${describe(e)}`,
      { secretId: "", retryable: true },
    );
  }
}

// Typed as oci-common's CircuitBreaker wrapper, but one of the builder's two is the bare opossum
// circuit inside it: accept both shapes.
function shutdownBreaker(b: unknown): void {
  type Circuit = { shutdown?: () => void };
  const circuit = (b as { circuit?: Circuit } | undefined)?.circuit ?? (b as Circuit | undefined);
  circuit?.shutdown?.();
}

/**
 * A region ID from an ID or a short code: IMDS answers a short code ("iad") for older regions.
 * IDs ("us-ashburn-1") pass through untouched; the SDK's lookup of an unknown code also reads
 * ~/.oci/regions-config.json, which is needless for an ID.
 */
export function regionId(sdk: Sdk, region: string): string {
  return region.includes("-") ? region : sdk.common.Region.getRegionIdFromShortCode(region);
}

function phaseSignal(limits: AuthLimits): { signal: AbortSignal; clear(): void } {
  const t = timeoutSignal(limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([t.signal, limits.signal]) : t.signal;
  return { signal, clear: t.clear };
}

function abortReason(e: unknown, limits: AuthLimits, status?: number): unknown {
  if (!(e instanceof Aborted)) return status ? `HTTP ${status}` : e;
  if (limits.signal?.aborted) return "run deadline reached";
  return `timed out after ${limits.timeoutMs} ms`;
}
