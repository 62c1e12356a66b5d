/**
 * Authentication providers: instance principal (IMDS + federation, see instance_principal.ts),
 * API key (config file), session token (config file) or resource principal (environment); see
 * session.ts. Only the API key and session token modes load the SDK (its config file parser
 * and API key provider); an instance principal loads it only for a region IMDS does not
 * describe (see region.ts).
 *
 * @module
 */
import type { AuthenticationDetailsProvider } from "oci-common";
import { accessProblems, PERMISSIONS } from "../permissions.ts";
import { raceAbort } from "./abort.ts";
import { describe, describeNetworkError } from "./describe.ts";
import { VaultError } from "./error.ts";
import {
  type Identity,
  imdsFailure,
  InstancePrincipal,
  phaseSignal,
  readIdentity,
} from "./instance_principal.ts";
import {
  AUTH_ENDPOINT_TEMPLATE,
  endpointIn,
  ImdsReadError,
  readImdsRegion,
  type RegionInfo,
} from "./region.ts";
import { loadSdk, type Sdk } from "./sdk.ts";
import { readResourcePrincipal, readSecurityToken, RP_ENV, sessionProvider } from "./session.ts";
import { forgetKey, holdKeyWorker } from "./key_worker.ts";
import { generateSessionKeyPair, type PemKeyPair, takeSessionKeyPair } from "./session_key.ts";
import type { VaultAuth } from "./types.ts";

/** The default IMDS v2 base URL. */
export const DEFAULT_IMDS_URL = "http://169.254.169.254/opc/v2/";

/** A ready provider and what it knows about the region. */
export interface Authenticated {
  provider: AuthenticationDetailsProvider;
  /** Region ID from the provider (config file, or IMDS when the auth endpoint was derived). */
  regionId?: string;
  /** The realm domain of `regionId`, when IMDS said it: endpoints need no SDK table then. */
  secondLevelDomain?: string;
  /** Reads the region from IMDS (instance principal only). */
  imdsRegion?: (signal: AbortSignal) => Promise<RegionInfo>;
  /** Releases what the provider holds (nothing at present; kept for callers). */
  dispose(): void;
  /** Advice added to an HTTP 401 (session tokens: how to get a fresh one). */
  on401?: string;
}

/**
 * Why this build cannot read the credential files an auth mode names, before the run starts:
 * one message per file, naming it (and, for a resource principal, its variable and the ways
 * out). Empty when every file is within the build's read set.
 */
export function credentialProblems(
  auth: VaultAuth,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string[] {
  if (auth.mode !== "resource_principal") {
    return accessProblems({ read: credentialFiles(auth, env) });
  }
  const problems: string[] = [];
  for (const name of [RP_ENV.rpst, RP_ENV.privatePem, RP_ENV.passphrase]) {
    const path = (auth.env ?? env)(name)?.trim() ?? "";
    if (!path.startsWith("/") || accessProblems({ read: [path] }).length === 0) continue;
    problems.push(
      `Cannot read ${name}=${path}: this secretsync build may only read in ` +
        `${PERMISSIONS.read.join(", ")}. Have the platform put the file in one of those ` +
        `directories (or link it from /run), give the value itself ` +
        `(${name}="$(cat ${path})", read again at every start, so a timer run sees a renewed ` +
        "token), or add the directory to src/permissions.ts and rebuild (README, " +
        '"Permissions").',
    );
  }
  return problems;
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
  /** The SDK, if the caller has it loaded; else it is loaded when a mode needs it. */
  sdk?: Sdk;
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
 * Builds the provider. For instance principals it also obtains the session token, once, here,
 * so that many concurrent first requests share it. Throws `VaultError` (secretId "") on failure.
 */
export async function authenticate(auth: VaultAuth, limits: AuthLimits): Promise<Authenticated> {
  switch (auth.mode) {
    case "api_key": {
      const sdk = limits.sdk ?? await loadSdk();
      return apiKey(sdk, auth.configFile, auth.profile ?? "DEFAULT", limits.region);
    }
    case "security_token": {
      const sdk = limits.sdk ?? await loadSdk();
      const file = auth.configFile ?? `${Deno.env.get("HOME") ?? ""}/.oci/config`;
      return session(readSecurityToken(sdk, file, auth.profile ?? "DEFAULT"));
    }
    case "resource_principal":
      return session(readResourcePrincipal(auth.env ?? ((name) => Deno.env.get(name))));
    default:
      return await instancePrincipal(
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
  imdsUrl: string,
  authEndpoint: string | undefined,
  limits: AuthLimits,
): Promise<Authenticated> {
  // The session keys' thread runs while this principal may sign (key_worker.ts); its keys are
  // dropped with it.
  const hold = holdKeyWorker();
  const pairs: Promise<PemKeyPair>[] = [];
  const release = () => {
    hold();
    for (const pair of pairs) pair.then((p) => forgetKey(p.getPrivate()), () => {});
  };
  try {
    const sdk = () => limits.sdk ? Promise.resolve(limits.sdk) : loadSdk();
    const first = limits.sessionKeys ?? takeSessionKeyPair();
    pairs.push(first);
    first.catch(() => {
      // Deliberately ignored here: the first federation awaits it and reports the failure.
    });
    let keys = 0;
    const options = {
      imdsUrl,
      timeoutMs: limits.timeoutMs,
      signal: limits.signal,
      // The first pair was started early (session_key.ts); each refresh makes a new one.
      sessionKeys: () => {
        if (keys++ === 0) return first;
        const pair = generateSessionKeyPair();
        pairs.push(pair);
        return pair;
      },
    };

    // IMDS: the identity and, without a configured federation endpoint, the region, at once.
    const phase = phaseSignal(options);
    let identity: Identity;
    let region: RegionInfo | undefined;
    try {
      [identity, region] = await raceAbort(
        Promise.all([
          readIdentity(imdsUrl, phase.signal),
          authEndpoint ? undefined : readImdsRegion(imdsUrl, phase.signal, sdk),
        ]),
        phase.signal,
      );
    } catch (e) {
      throw imdsFailure(options, e);
    } finally {
      phase.clear();
    }

    const federationEndpoint = authEndpoint?.replace(/\/+$/, "") ??
      endpointIn(AUTH_ENDPOINT_TEMPLATE, region!);
    const principal = await InstancePrincipal.authenticate(
      { ...options, federationEndpoint },
      identity,
    );
    return {
      provider: {
        getKeyId: () => principal.keyId(),
        getPrivateKey: () => principal.privateKeyPem(),
        getPassphrase: () => null,
      },
      regionId: region?.regionId,
      secondLevelDomain: region?.secondLevelDomain,
      imdsRegion: async (signal) => {
        try {
          return await readImdsRegion(imdsUrl, signal, sdk);
        } catch (e) {
          const base = imdsUrl.endsWith("/") ? imdsUrl : imdsUrl + "/";
          const reason = signal.aborted
            ? "timed out"
            : e instanceof ImdsReadError
            ? e.message
            : describeNetworkError(e);
          throw new VaultError(`Cannot read the region from IMDS at ${base}: ${reason}`, {
            secretId: "",
            retryable: true,
          });
        }
      },
      dispose: release,
    };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * A region ID from an ID or a short code: IMDS answers a short code ("iad") for older regions.
 * IDs ("us-ashburn-1") pass through untouched; the SDK's lookup of an unknown code also reads
 * ~/.oci/regions-config.json, which is needless for an ID.
 */
export function regionId(sdk: Sdk, region: string): string {
  return region.includes("-") ? region : sdk.common.Region.getRegionIdFromShortCode(region);
}

/** {@linkcode regionId}, loading the SDK only for a short code. */
export async function resolveRegionId(region: string): Promise<string> {
  return region.includes("-") ? region : regionId(await loadSdk(), region);
}
