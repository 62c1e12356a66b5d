/**
 * Fetches one secret bundle: one SDK call per attempt, each with its own timeout, retried by
 * our policy, bounded by the caller's run deadline.
 *
 * @module
 */
import { explainNotCapable } from "../permissions.ts";
import type { SecretsClient } from "oci-secrets";
import type { RetryConfiguration } from "oci-common";
import { Aborted, raceAbort, sleep, timeoutSignal } from "./abort.ts";
import { BadContent, decodeBundle, type RawBundle } from "./decode.ts";
import { describeNetworkError, oneLine } from "./describe.ts";
import { VaultError } from "./error.ts";
import type { Attempt, AttemptHttpClient } from "./http.ts";
import { backoffDelayMs, type BackoffPolicy, isRetryableStatus } from "./retry.ts";
import type { SecretBundle, SecretQuery, Selector } from "./types.ts";

export type { Selector };

/** Everything one fetch needs; built once by `openVault`. */
export interface FetchContext {
  client: SecretsClient;
  http: AttemptHttpClient;
  /** The SDK's "no retries" configuration, also passed per request. */
  noRetry: RetryConfiguration;
  selector: Selector;
  attempts: number;
  timeoutMs: number;
  maxBytes: number;
  backoff: BackoffPolicy;
  /** The caller's whole-run deadline. */
  deadline?: AbortSignal;
  /** Fires on `close()`. */
  closed: AbortSignal;
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
  const query: SecretQuery = secretQuery ?? { secret: { ocid: secretId } };
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
    tries++;
    try {
      return await attemptOnce(ctx, query);
    } catch (e) {
      last = e as Failure;
    }
    if (last.final || !last.retryable || tries >= ctx.attempts) throw fail(last, tries);
    const wait = backoffDelayMs(tries, ctx.backoff);
    const stopSignal = ctx.deadline ? AbortSignal.any([ctx.deadline, ctx.closed]) : ctx.closed;
    await sleep(wait, stopSignal);
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

async function attemptOnce(ctx: FetchContext, query: SecretQuery): Promise<SecretBundle> {
  // Our own opc-request-id: it binds the SDK's request to this attempt's signal (see http.ts)
  // and is what OCI support asks for.
  const requestId = `secretsync-${crypto.randomUUID()}`;
  const timer = timeoutSignal(ctx.timeoutMs);
  const signals = [timer.signal, ctx.closed];
  if (ctx.deadline) signals.push(ctx.deadline);
  const signal = AbortSignal.any(signals);
  const attempt = ctx.http.begin(requestId, signal);
  try {
    const selector = query.version ?? ctx.selector;
    const common = {
      ...("versionNumber" in selector
        ? { versionNumber: selector.versionNumber }
        : { stage: selector.stage as never }),
      opcRequestId: requestId,
      retryConfiguration: ctx.noRetry,
    };
    const { secret } = query;
    const call = "ocid" in secret
      ? ctx.client.getSecretBundle({ secretId: secret.ocid, ...common })
      : ctx.client.getSecretBundleByName({
        secretName: secret.name,
        vaultId: secret.vaultId,
        ...common,
      });
    // Racing matters beyond the fetch signal: signing may refresh the session token, and the
    // SDK's token and IMDS requests cannot be cancelled.
    const res = await raceAbort(call, signal);
    return decodeBundle(res.secretBundle as RawBundle, {
      maxBytes: ctx.maxBytes,
      // By name, the OCID is learnt from the answer.
      secretId: "ocid" in secret ? secret.ocid : undefined,
    });
  } catch (e) {
    const failure = classify(e, attempt, ctx, timer.signal, requestId);
    throw explainFailure(failure, query, ctx);
  } finally {
    timer.clear();
    ctx.http.end(requestId);
  }
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
  timeout: AbortSignal,
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
    if (timeout.aborted) return { reason: `timed out after ${ctx.timeoutMs} ms`, retryable: true };
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
