/**
 * `openVault`: authenticate once, configure a quiet `SecretsClient`, hand out a SecretSource.
 *
 * @module
 */
import { authenticate, regionId } from "./auth.ts";
import { describe } from "./describe.ts";
import { VaultError } from "./error.ts";
import { fetchBundle, type FetchContext, type Selector } from "./fetch.ts";
import { AttemptHttpClient } from "./http.ts";
import { DEFAULT_BACKOFF } from "./retry.ts";
import { loadSdk } from "./sdk.ts";
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
 * token before returning, so `fetch` can then be called concurrently. The SDK's own retries and
 * circuit breaker are off; each `fetch` makes up to `attempts` tries with full-jitter backoff
 * (429, 5xx, network errors and timeouts only), each bounded by `timeoutMs`, all bounded by
 * `signal`. The SDK prints nothing to the terminal (see sdk.ts).
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
  const deadline = opts.signal;
  if (deadline?.aborted) {
    throw new VaultError("Cannot open the vault: run deadline reached before authentication", {
      secretId: "",
      retryable: true,
    });
  }

  const sdk = await loadSdk();
  const auth = await authenticate(opts.auth, {
    sdk,
    timeoutMs,
    signal: deadline,
    region: opts.region,
  });
  try {
    let signer;
    try {
      signer = new sdk.common.DefaultRequestSigner(auth.provider);
    } catch (e) {
      throw new VaultError(`Cannot load the API signing key: ${describe(e)}`, {
        secretId: "",
        retryable: false,
      });
    }
    // Room for base64 (4/3) plus the JSON around it; a bigger response is refused unread.
    const http = new AttemptHttpClient(signer, Math.ceil(maxBytes / 3) * 4 + 64 * 1024);
    const noRetry = sdk.common.NoRetryConfigurationDetails;
    // The configuration is the SECOND argument; inside the first it is silently ignored.
    const client = new sdk.secrets.SecretsClient({ httpClient: http }, {
      retryConfiguration: noRetry,
      circuitBreaker: new sdk.common.CircuitBreaker({ disableClientCircuitBreaker: true }),
    });

    let region = opts.region ?? auth.regionId;
    if (!region && !opts.endpoint && auth.imdsRegion) {
      const t = AbortSignal.timeout(timeoutMs);
      region = await auth.imdsRegion(deadline ? AbortSignal.any([t, deadline]) : t);
    }
    if (region) client.regionId = regionId(sdk, region);
    // Last: setting a region overwrites the endpoint.
    if (opts.endpoint) client.endpoint = opts.endpoint.replace(/\/+$/, "");
    if (!region && !opts.endpoint) {
      throw new VaultError("Cannot open the vault: no region (set a region or an endpoint)", {
        secretId: "",
        retryable: false,
      });
    }

    const closer = new AbortController();
    const ctx: FetchContext = {
      client,
      http,
      noRetry,
      selector,
      attempts,
      timeoutMs,
      maxBytes,
      backoff: DEFAULT_BACKOFF,
      deadline,
      closed: closer.signal,
      on401: auth.on401,
    };
    return {
      fetch: (secretId, query) => fetchBundle(ctx, secretId, query),
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

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`Invalid ${name} ${v}: expected a positive integer`);
  }
  return v;
}
