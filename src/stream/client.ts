/**
 * A small OCI Streaming client (API 20180418): CreateCursor and GetMessages, signed with the
 * same OCI signer and authentication as the vault client.
 *
 * Why not `oci-streaming`: the consumer needs two calls, and the SDK client would bring back
 * everything `vault/` had to switch off (8 retries with waits up to 30 s, a circuit breaker, no
 * per-request deadline, console output), for one more npm package. Here each call is one
 * request with its own timeout and a capped body, and the caller decides what to retry.
 *
 * @module
 */
import { z } from "zod";
import { readCappedBody } from "../http_body.ts";
import { authenticate, type Authenticated, resolveRegionId } from "../vault/auth.ts";
import { type RegionInfo, sdkRegion } from "../vault/region.ts";
import { loadSdk } from "../vault/sdk.ts";
import { describe, describeNetworkError, oneLine } from "../vault/describe.ts";
import { CachedKeySigner, signingKeyOf } from "../vault/sign.ts";
import type { VaultAuth } from "../vault/types.ts";

/** Where a cursor starts, as CreateCursor takes it. */
export type CursorStart =
  | { type: "LATEST" | "TRIM_HORIZON" }
  | { type: "AFTER_OFFSET" | "AT_OFFSET"; offset: number };

/** One message, its value decoded from base64. */
export interface StreamMessage {
  offset: number;
  /** When the service appended it (ms since the epoch); NaN when it sent no valid time. */
  timestamp: number;
  value: Uint8Array;
}

/** What GetMessages answered. */
export interface MessageBatch {
  messages: StreamMessage[];
  /** The cursor for the next read (`opc-next-cursor`). */
  nextCursor: string;
}

/** The two calls the consumer makes. */
export interface StreamReader {
  createCursor(start: CursorStart): Promise<string>;
  getMessages(cursor: string): Promise<MessageBatch>;
  close(): void;
}

/**
 * Why a streaming call failed: `throttled` (429), `cursor` (400: an expired, invalid or trimmed
 * cursor or offset), `denied` (401/403/404: policy or OCID), `unavailable` (5xx, network,
 * timeout, a malformed answer).
 */
export type StreamFailure = "throttled" | "cursor" | "denied" | "unavailable";

/** A failed streaming call. The message never carries message content. */
export class StreamError extends Error {
  override name = "StreamError";
  constructor(message: string, readonly kind: StreamFailure, readonly status?: number) {
    super(message);
  }
}

/** Options for {@linkcode openStreamReader}. */
export interface StreamReaderOptions {
  auth: VaultAuth;
  streamId: string;
  /** The partition read. @default "0" */
  partition?: string;
  /** The stream's messages endpoint; else `https://streaming.<region>.oci.oraclecloud.com`. */
  endpoint?: string;
  region?: string;
  /** Per request. @default 10_000 */
  timeoutMs?: number;
  /** Messages per GetMessages (1 to 10,000). @default 100 */
  limit?: number;
}

const MAX_RESPONSE = 16 * 1024 * 1024;

const cursorSchema = z.object({ value: z.string().min(1) });
const messagesSchema = z.array(z.object({
  offset: z.number().int().nonnegative(),
  value: z.string(),
  timestamp: z.string().optional().nullable(),
}));

/**
 * Authenticates (instance principal: IMDS and a session token, once) and returns a reader for
 * one partition of one stream. Requires `--allow-net` for the endpoint.
 *
 * @throws {StreamError} (`denied` or `unavailable`) when authentication fails.
 *
 * @example
 * ```ts
 * const reader = await openStreamReader({
 *   auth: { mode: "instance_principal" },
 *   streamId: "ocid1.stream.oc1.iad.example",
 *   endpoint: "https://cell-1.streaming.us-ashburn-1.oci.oraclecloud.com",
 * });
 * try {
 *   const { messages, nextCursor } = await reader.getMessages(
 *     await reader.createCursor({ type: "LATEST" }),
 *   );
 * } finally {
 *   reader.close();
 * }
 * ```
 */
export async function openStreamReader(opts: StreamReaderOptions): Promise<StreamReader> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const limit = opts.limit ?? 100;
  const partition = opts.partition ?? "0";
  let auth: Authenticated;
  try {
    auth = await authenticate(opts.auth, { timeoutMs, region: opts.region });
  } catch (e) {
    const retryable = (e as { retryable?: boolean }).retryable !== false;
    throw new StreamError(describe(e), retryable ? "unavailable" : "denied");
  }
  try {
    const signer = new CachedKeySigner(signingKeyOf(auth.provider));
    let base = opts.endpoint?.replace(/\/+$/, "");
    if (!base) {
      let region = opts.region ?? auth.regionId;
      // The realm's domain as IMDS gave it for its region, else from the SDK's region tables.
      let domain = region === auth.regionId ? auth.secondLevelDomain : undefined;
      if (!region && auth.imdsRegion) {
        ({ regionId: region, secondLevelDomain: domain } = await auth.imdsRegion(
          AbortSignal.timeout(timeoutMs),
        ));
      }
      if (!region) throw new StreamError("No region for the stream endpoint", "denied");
      const info = domain
        ? { regionId: await resolveRegionId(region), secondLevelDomain: domain }
        : await regionFromTables(region);
      base = `https://streaming.${info.regionId}.oci.${info.secondLevelDomain}`;
    }
    const streamUrl = `${base}/20180418/streams/${encodeURIComponent(opts.streamId)}`;
    const closer = new AbortController();

    const call = async (
      method: "GET" | "POST",
      url: string,
      body?: string,
    ): Promise<{ json: unknown; headers: Headers }> => {
      const headers = new Headers({ "content-type": "application/json" });
      headers.set("opc-request-id", `secretsync-${crypto.randomUUID()}`);
      try {
        await signer.signHttpRequest({ method, headers, uri: url, body });
      } catch (e) {
        throw new StreamError(`Cannot sign the request: ${describe(e)}`, "unavailable");
      }
      const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), closer.signal]);
      let res: Response;
      let bytes: Uint8Array;
      try {
        res = await fetch(url, { method, headers, body, signal });
        bytes = await readCappedBody(res, MAX_RESPONSE);
      } catch (e) {
        const why = signal.aborted
          ? (closer.signal.aborted ? "the client was closed" : `timed out after ${timeoutMs} ms`)
          : describeNetworkError(e);
        throw new StreamError(why, "unavailable");
      }
      const text = new TextDecoder().decode(bytes);
      if (!res.ok) {
        let code = "";
        let message = "";
        try {
          const err = JSON.parse(text);
          code = typeof err.code === "string" ? err.code : "";
          message = typeof err.message === "string" ? err.message : "";
        } catch {
          // Not an OCI error body: the status says enough.
        }
        const id = res.headers.get("opc-request-id") ?? headers.get("opc-request-id");
        const reason = `HTTP ${res.status}${code ? ` ${oneLine(code)}` : ""}${
          message ? `: ${oneLine(message)}` : ""
        } (opc-request-id ${id})`;
        throw new StreamError(reason, kindOf(res.status), res.status);
      }
      try {
        return { json: JSON.parse(text), headers: res.headers };
      } catch {
        throw new StreamError("response is not valid JSON", "unavailable", res.status);
      }
    };

    return {
      async createCursor(start) {
        const body = JSON.stringify({ partition, ...start });
        const { json } = await call("POST", `${streamUrl}/cursors`, body);
        const parsed = cursorSchema.safeParse(json);
        if (!parsed.success) throw new StreamError("cursor response has no value", "unavailable");
        return parsed.data.value;
      },
      async getMessages(cursor) {
        const q = new URLSearchParams({ cursor, limit: String(limit) });
        const { json, headers } = await call("GET", `${streamUrl}/messages?${q}`);
        const parsed = messagesSchema.safeParse(json);
        const nextCursor = headers.get("opc-next-cursor");
        if (!parsed.success || !nextCursor) {
          throw new StreamError("messages response has an unexpected shape", "unavailable");
        }
        const messages: StreamMessage[] = [];
        for (const m of parsed.data) {
          let value: Uint8Array;
          try {
            value = Uint8Array.fromBase64(m.value);
          } catch {
            value = new Uint8Array(); // an undecodable message is one the filter ignores
          }
          messages.push({ offset: m.offset, timestamp: Date.parse(m.timestamp ?? ""), value });
        }
        return { messages, nextCursor };
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

/** How a status reads for the consumer. */
export function kindOf(status: number): StreamFailure {
  if (status === 429) return "throttled";
  if (status === 400) return "cursor";
  if (status === 401 || status === 403 || status === 404) return "denied";
  return "unavailable";
}

/**
 * A region and its realm's domain from the SDK's tables (a region they do not know is in OC1,
 * `oraclecloud.com`, as the SDK registers unknown regions).
 */
export async function regionFromTables(region: string): Promise<RegionInfo> {
  try {
    return sdkRegion(await loadSdk(), region);
  } catch {
    return { regionId: region, secondLevelDomain: "oraclecloud.com" };
  }
}
