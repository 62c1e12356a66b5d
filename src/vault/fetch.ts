/**
 * Fetches one secret bundle: one signed GET per attempt, each with its own timeout, retried by
 * our policy, bounded by the caller's run deadline.
 *
 * @module
 */
import { explainNotCapable } from "../permissions.ts";
import { Aborted, deadlineSignal, raceAbort, sleep } from "./abort.ts";
import { BadContent, decodeBundle, type RawBundle } from "./decode.ts";
import { describeNetworkError, oneLine } from "./describe.ts";
import { VaultError } from "./error.ts";
import { type Attempt, signedRequest, type Signer } from "./http.ts";
import type { RateLimiter } from "./rate.ts";
import { backoffDelayMs, type BackoffPolicy, isRetryableStatus } from "./retry.ts";
import type { SecretBundle, SecretQuery, Selector } from "./types.ts";

export type { Selector };

/** Everything one fetch needs; built once by `openVault`. */
export interface FetchContext {
  /** The Secrets service base URL, with its API version (`…/20190301`). */
  endpoint: string;
  signer: Signer;
  /** Largest response body read. */
  maxResponseBytes: number;
  selector: Selector;
  attempts: number;
  timeoutMs: number;
  maxBytes: number;
  backoff: BackoffPolicy;
  /** The caller's whole-run deadline. */
  deadline?: AbortSignal;
  /** Fires on `close()`. */
  closed: AbortSignal;
  /** Fires on `close()` or at the run deadline. */
  stop: AbortSignal;
  /** The run's shared request rate (see rate.ts). */
  limiter: RateLimiter;
  /** Advice appended to a 401 (e.g. how to refresh an expired session token). */
  on401?: string;
}

/** One failed attempt, classified. */
interface Failure {
  reason: string;
  retryable: boolean;
  status?: number;
  code?: string;
  /** The run deadline or close() ended it: stop, whatever `retryable` says. */
  final?: boolean;
}

/** Fetches and decodes one secret. Rejects with `VaultError`. */
export async function fetchBundle(
  ctx: FetchContext,
  secretId: string,
  secretQuery?: SecretQuery,
): Promise<SecretBundle> {
  const query = queryOf(secretId, secretQuery);
  const fail = (f: Failure, tries: number): VaultError => {
    const after = tries > 1 ? ` (${tries} attempts)` : "";
    return new VaultError(`Cannot fetch secret "${secretId}": ${f.reason}${after}`, {
      secretId,
      reason: `${f.reason}${after}`,
      status: f.status,
      code: f.code,
      retryable: f.retryable,
    });
  };
  const empty = "ocid" in query.secret ? query.secret.ocid : query.secret.name;
  if (typeof empty !== "string" || empty.trim() === "") {
    throw fail({ reason: "the secret OCID is empty", retryable: false }, 0);
  }

  let last: Failure | undefined;
  let tries = 0;
  for (;;) {
    const stop = stopReason(ctx, last);
    if (stop) throw fail(stop, tries);
    // Waiting for a slot ends early only when the run stops; the check above then says why.
    if (!(await ctx.limiter.acquire(ctx.stop))) continue;
    tries++;
    const sentAt = ctx.limiter.now();
    try {
      return await attemptOnce(ctx, query);
    } catch (e) {
      last = e as Failure;
    }
    // The vault is throttling: the whole run slows down, not just this secret.
    if (last.status === 429) ctx.limiter.throttled(sentAt);
    if (last.final || !last.retryable || tries >= ctx.attempts) throw fail(last, tries);
    const wait = backoffDelayMs(tries, ctx.backoff);
    await sleep(wait, ctx.stop);
  }
}

function stopReason(ctx: FetchContext, last: Failure | undefined): Failure | undefined {
  const lastly = last ? `; last error: ${last.reason}` : "";
  if (ctx.closed.aborted) {
    return { reason: `the vault client was closed${lastly}`, retryable: false, final: true };
  }
  if (ctx.deadline?.aborted) {
    return {
      reason: `run deadline reached${last ? lastly : " before the first attempt"}`,
      retryable: last?.retryable ?? true,
      status: last?.status,
      code: last?.code,
      final: true,
    };
  }
  return undefined;
}

// One random run id and a counter: unique per attempt like a UUID, without making one each time.
const RUN_ID = crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "");
let requestCount = 0;

function nextRequestId(): string {
  return `secretsync-${RUN_ID}-${++requestCount}`;
}

async function attemptOnce(ctx: FetchContext, query: SecretQuery): Promise<SecretBundle> {
  const requestId = nextRequestId();
  // `stop` is `closed` and `deadline` in one: one listener an attempt instead of two.
  const timer = deadlineSignal(ctx.timeoutMs, [ctx.stop]);
  const attempt: Attempt = { signal: timer.signal };
  try {
    const { secret } = query;
    const { method, uri } = bundleRequest(ctx, query);
    // Racing matters beyond the fetch signal: signing may refresh the session token, and the
    // SDK's token and IMDS requests cannot be cancelled.
    const res = await raceAbort(
      signedRequest(uri, attempt, {
        method,
        signer: ctx.signer,
        requestId,
        maxResponseBytes: ctx.maxResponseBytes,
      }),
      timer.signal,
    );
    if (res.status < 200 || res.status > 299) throw serviceError(res);
    const bundle = JSON.parse(new TextDecoder().decode(res.body)) as RawBundle;
    return decodeBundle(bundle, {
      maxBytes: ctx.maxBytes,
      // By name, the OCID is learnt from the answer.
      secretId: "ocid" in secret ? secret.ocid : undefined,
    });
  } catch (e) {
    const failure = classify(e, attempt, ctx, timer.timedOut(), requestId);
    throw explainFailure(failure, query, ctx);
  } finally {
    timer.clear();
  }
}

/** The query `fetchBundle` asks for `secretId` (a bare OCID unless `query` says more). */
export function queryOf(secretId: string, query?: SecretQuery): SecretQuery {
  return query ?? { secret: { ocid: secretId } };
}

/**
 * The request as the SDK builds it: `GET /secretbundles/{secretId}` or
 * `POST /secretbundles/actions/getByName` (no body), with the stage or version.
 */
export function bundleRequest(
  ctx: Pick<FetchContext, "endpoint" | "selector">,
  query: SecretQuery,
): { method: "GET" | "POST"; uri: string } {
  const selector = query.version ?? ctx.selector;
  const version = "versionNumber" in selector
    ? `versionNumber=${selector.versionNumber}`
    : `stage=${encodeURIComponent(selector.stage)}`;
  const { secret } = query;
  if ("ocid" in secret) {
    return {
      method: "GET",
      uri: `${ctx.endpoint}/secretbundles/${encodeURIComponent(secret.ocid)}?${version}`,
    };
  }
  return {
    method: "POST",
    uri: `${ctx.endpoint}/secretbundles/actions/getByName?secretName=` +
      `${encodeURIComponent(secret.name)}&vaultId=${encodeURIComponent(secret.vaultId)}&${version}`,
  };
}

/** An error answer, read like the SDK reads it: OCI's `{code, message}` body, else the text. */
function serviceError(res: { status: number; statusText: string; body: Uint8Array }) {
  const text = new TextDecoder().decode(res.body);
  let code = "None";
  let message = text || res.statusText || "unknown reason.";
  try {
    const body = JSON.parse(text);
    if (body && typeof body.code === "string" && typeof body.message === "string") {
      code = body.code;
      message = body.message;
    }
  } catch {
    // Not JSON: the text is the message, as the SDK has it.
  }
  return { statusCode: res.status, serviceCode: code, message };
}

/** Adds what a status means for this kind of query and credential. */
function explainFailure(f: Failure, query: SecretQuery, ctx: FetchContext): Failure {
  const { secret } = query;
  if (f.status === 404 && !("ocid" in secret)) {
    return {
      ...f,
      reason: `no secret named "${secret.name}" in vault ${secret.vaultId} ` +
        `(or no permission to read it): ${f.reason}`,
    };
  }
  if (f.status === 401 && ctx.on401) return { ...f, reason: `${f.reason}; ${ctx.on401}` };
  return f;
}

function classify(
  e: unknown,
  attempt: Attempt,
  ctx: FetchContext,
  timedOut: boolean,
  requestId: string,
): Failure {
  // Abort causes first: after an abort, whatever the SDK threw is a consequence.
  if (e instanceof Aborted || attempt.signal.aborted) {
    if (ctx.closed.aborted) {
      return { reason: "the vault client was closed", retryable: false, final: true };
    }
    if (ctx.deadline?.aborted) {
      return { reason: "run deadline reached during a request", retryable: true, final: true };
    }
    if (timedOut) return { reason: `timed out after ${ctx.timeoutMs} ms`, retryable: true };
  }
  if (e instanceof BadContent) return { reason: e.message, retryable: false };
  if (attempt.tooLarge) {
    return {
      reason: `response is too large for a secret of at most ${ctx.maxBytes} bytes`,
      retryable: false,
    };
  }
  if (attempt.signError !== undefined) {
    return { reason: `cannot sign the request: ${oneLine(attempt.signError)}`, retryable: false };
  }
  if (attempt.transportError instanceof Deno.errors.NotCapable) {
    // This build may not reach that host: asking again cannot help.
    return { reason: explainNotCapable(attempt.transportError), retryable: false };
  }
  if (attempt.transportError !== undefined) {
    return { reason: describeNetworkError(attempt.transportError), retryable: true };
  }
  const status = (e as { statusCode?: unknown })?.statusCode;
  if (typeof status === "number" && status > 0) {
    // The code is the server's text like the message: it must not inject lines or escapes.
    const serviceCode = (e as { serviceCode?: unknown }).serviceCode;
    const code = serviceCode === undefined || serviceCode === null
      ? undefined
      : oneLine(String(serviceCode), 100);
    const message = oneLine((e as { message?: unknown }).message ?? "");
    const id = attempt.requestId ?? requestId;
    return {
      reason: `HTTP ${status}${code && code !== "None" ? ` ${code}` : ""}` +
        `${message ? `: ${message}` : ""} (opc-request-id ${id})`,
      retryable: isRetryableStatus(status),
      status,
      code: code && code !== "None" ? code : undefined,
    };
  }
  if (attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300) {
    // The body arrived in full (http.ts reads it); what failed is parsing it. Never quote the
    // parser's message: V8 puts a snippet of the text (the secret) into it.
    const what = e instanceof SyntaxError
      ? "response is not valid JSON"
      : "response has an unexpected shape";
    return { reason: what, retryable: false };
  }
  return { reason: `request failed: ${oneLine(e)}`, retryable: false };
}
