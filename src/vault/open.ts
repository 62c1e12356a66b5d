/**
 * `openVault`: authenticate once, hand out a SecretSource that fetches with our own signer.
 *
 * @module
 */
import { authenticate, regionId } from "./auth.ts";
import { describe } from "./describe.ts";
import { VaultError } from "./error.ts";
import { bundleRequest, fetchBundle, type FetchContext, queryOf, type Selector } from "./fetch.ts";
import { createRateLimiter } from "./rate.ts";
import { endpointIn, SECRETS_ENDPOINT_TEMPLATE } from "./region.ts";
import { DEFAULT_BACKOFF } from "./retry.ts";
import { loadSdk, type Sdk } from "./sdk.ts";
import { takeSessionKeyPair } from "./session_key.ts";
import { CachedKeySigner, signingKeyOf } from "./sign.ts";
import { AUTH_MODES, type SecretSource, type VaultOptions } from "./types.ts";

const STAGES = ["CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"];

/**
 * Parses a stage option: a stage name (any case) or a positive version number.
 * Throws `RangeError` for anything else.
 */
export function parseStage(stage: string): Selector {
  const s = String(stage).trim();
  if (/^[1-9][0-9]*$/.test(s) && Number.isSafeInteger(Number(s))) {
    return { versionNumber: Number(s) };
  }
  if (STAGES.includes(s.toUpperCase())) return { stage: s.toUpperCase() };
  throw new RangeError(
    `Invalid stage "${stage}": expected ${STAGES.join(", ")} or a version number`,
  );
}

/**
 * Opens a connection to OCI Vault's secret retrieval service.
 *
 * With instance principals this reads the instance identity from IMDS and obtains the session
 * token before returning, so `fetch` can then be called concurrently; it loads no SDK unless IMDS
 * cannot describe the region (see region.ts). Each `fetch` makes up to `attempts` tries with
 * full-jitter backoff (429, 5xx, network errors and timeouts only), each bounded by `timeoutMs`,
 * all bounded by `signal`. The SDK, where used, prints nothing to the terminal (see sdk.ts).
 *
 * Requires `--allow-net`, `--allow-env`, and `--allow-read` (api_key, security_token: the config,
 * key and token files; resource_principal: the files its variables name).
 *
 * @throws {RangeError} for invalid options (stage, attempts, timeoutMs, maxBytes).
 * @throws {VaultError} (secretId "") when authentication fails or no region can be found.
 *
 * @example
 * ```ts
 * const vault = await openVault({
 *   auth: { mode: "instance_principal" },
 *   stage: "CURRENT",
 *   signal: AbortSignal.timeout(50_000),
 * });
 * try {
 *   const { bytes, version } = await vault.fetch("ocid1.vaultsecret.oc1.iad.example");
 * } finally {
 *   vault.close();
 * }
 * ```
 */
export async function openVault(opts: VaultOptions): Promise<SecretSource> {
  const mode = (opts.auth as { mode?: unknown } | undefined)?.mode;
  if (!(AUTH_MODES as readonly unknown[]).includes(mode)) {
    throw new RangeError(`Invalid auth mode "${mode}": expected ${AUTH_MODES.join(", ")}`);
  }
  const selector = parseStage(opts.stage);
  const attempts = positiveInt("attempts", opts.attempts ?? 3);
  const timeoutMs = positiveInt("timeoutMs", opts.timeoutMs ?? 10_000);
  const maxBytes = positiveInt("maxBytes", opts.maxBytes ?? 65_536);
  if (opts.rate !== undefined && !(opts.rate > 0 && Number.isFinite(opts.rate))) {
    throw new RangeError(`Invalid rate ${opts.rate}: expected a positive number`);
  }
  const deadline = opts.signal;
  if (deadline?.aborted) {
    throw new VaultError("Cannot open the vault: run deadline reached before authentication", {
      secretId: "",
      retryable: true,
    });
  }

  // The session key pair (instance principal) is generated off the main thread while IMDS
  // answers, rather than after; `sync` starts it even earlier (session_key.ts).
  const sessionKeys = mode === "instance_principal" ? takeSessionKeyPair() : undefined;
  sessionKeys?.catch(() => {
    // Deliberately ignored here: authenticate() awaits it and reports the failure.
  });
  // The SDK is loaded only by the modes and regions that need it (see auth.ts, region.ts).
  const auth = await authenticate(opts.auth, {
    sessionKeys,
    timeoutMs,
    signal: deadline,
    region: opts.region,
  });
  try {
    // One imported key signs every request (see sign.ts); a bad key fails here, not per request.
    const signer = new CachedKeySigner(signingKeyOf(auth.provider));
    try {
      await signer.prepare();
    } catch (e) {
      throw new VaultError(`Cannot load the API signing key: ${describe(e)}`, {
        secretId: "",
        retryable: false,
      });
    }

    let region = opts.region ?? auth.regionId;
    // The realm's domain as IMDS gave it, for the region IMDS gave.
    let domain = region === auth.regionId ? auth.secondLevelDomain : undefined;
    if (!region && !opts.endpoint && auth.imdsRegion) {
      const t = AbortSignal.timeout(timeoutMs);
      ({ regionId: region, secondLevelDomain: domain } = await auth.imdsRegion(
        deadline ? AbortSignal.any([t, deadline]) : t,
      ));
    }
    if (!region && !opts.endpoint) {
      throw new VaultError("Cannot open the vault: no region (set a region or an endpoint)", {
        secretId: "",
        retryable: false,
      });
    }
    const base = opts.endpoint?.replace(/\/+$/, "") ??
      (domain
        ? endpointIn(SECRETS_ENDPOINT_TEMPLATE, { regionId: region!, secondLevelDomain: domain })
        : await sdkSecretsEndpoint(region!));

    const closer = new AbortController();
    const ctx: FetchContext = {
      endpoint: `${base}/20190301`,
      signer,
      // Room for base64 (4/3) plus the JSON around it; a bigger response is refused unread.
      maxResponseBytes: Math.ceil(maxBytes / 3) * 4 + 64 * 1024,
      selector,
      attempts,
      timeoutMs,
      maxBytes,
      backoff: DEFAULT_BACKOFF,
      deadline,
      closed: closer.signal,
      stop: deadline ? AbortSignal.any([deadline, closer.signal]) : closer.signal,
      limiter: createRateLimiter(opts.rate),
      on401: auth.on401,
    };
    return {
      fetch: (secretId, query) => fetchBundle(ctx, secretId, query),
      upcoming(fetches, inFlight) {
        try {
          signer.signAhead(
            fetches.map((f) => bundleRequest(ctx, queryOf(f.secretId, f.query))),
            signingWindow(inFlight, opts.rate),
          );
        } catch {
          // A hint never fails its caller (a sync, or watch's SharedVault, where a throw would be
          // an unhandled rejection): a request it cannot plan fails, reported, when fetched.
        }
      },
      close() {
        if (closer.signal.aborted) return;
        closer.abort();
        auth.dispose();
      },
    };
  } catch (e) {
    auth.dispose();
    throw e;
  }
}

/** The Secrets endpoint for a region name or short code, by the SDK's tables. */
async function sdkSecretsEndpoint(region: string): Promise<string> {
  let sdk: Sdk;
  try {
    sdk = await loadSdk();
  } catch (e) {
    throw new VaultError(`Cannot load the OCI SDK for the region tables: ${describe(e)}`, {
      secretId: "",
      retryable: true,
    });
  }
  return secretsEndpoint(sdk, regionId(sdk, region));
}

/**
 * How many requests to keep signed ahead: as many as run at once, but under `--rate` no more than
 * ~10 s of requests, so that a signature is not too old (30 s, see sign.ts) to be used when its
 * request goes out.
 */
export function signingWindow(inFlight: number, rate?: number): number {
  return rate === undefined ? inFlight : Math.max(1, Math.min(inFlight, Math.floor(rate * 10)));
}

/** The Secrets service's endpoint in a region, exactly as the SDK's SecretsClient derives it. */
export function secretsEndpoint(sdk: Sdk, region: string): string {
  // The template is a protected static of the client; a subclass may read it.
  class Endpoint extends sdk.secrets.SecretsClient {
    static of(id: string): string {
      return sdk.common.EndpointBuilder.createEndpointFromRegionId(
        this.serviceEndpointTemplate,
        id,
        this.endpointServiceName,
      );
    }
  }
  return Endpoint.of(region);
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`Invalid ${name} ${v}: expected a positive integer`);
  }
  return v;
}
