/**
 * OCI Streaming (API 20180418) for the stand-in: streams with partitions, CreateCursor,
 * GetMessages with `opc-next-cursor`, PutMessages, cursor expiry and the read-rate limit.
 *
 * The model, from OCI's documentation (README, "Rotation events"):
 * - a cursor names a partition and the next offset to read; it expires five minutes after it
 *   was issued (`cursorTtlMs` shortens that for tests). An expired or forged cursor is a 400;
 * - each GetMessages answers the messages from the cursor's offset on (at most `limit`, at most
 *   10,000) and a fresh cursor after the last one in `opc-next-cursor`;
 * - a partition serves 5 GET/s per consumer: here a consumer is one chain of cursors (a
 *   CreateCursor and every cursor that follows from it), since every host may sign with the
 *   same key. More than `getsPerSecondPerConsumer` in a second, or `getsPerSecondPerPartition`
 *   from everyone together, is a 429;
 * - message keys and values travel base64-encoded; a message is at most 1 MiB.
 *
 * What happens when a cursor's offset has been trimmed by retention is not documented; this
 * stand-in answers 400, and the consumer treats that as "start afresh".
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { RawRequest, Reply } from "./_http.ts";

/** One stored message. */
export interface StoredMessage {
  offset: number;
  key: Uint8Array | null;
  value: Uint8Array;
  timestamp: string;
}

/** A stream and its partitions. */
export interface StoredStream {
  id: string;
  name: string;
  partitions: StoredMessage[][];
  /** Per partition: the lowest offset still retained (everything below was trimmed). */
  trimmedBelow: number[];
}

/** Streaming request counters. */
export interface StreamCalls {
  cursors: number;
  gets: number;
  puts: number;
  /** GetMessages answered 429. */
  throttled: number;
  /** GetMessages refused for an expired cursor. */
  expired: number;
  /** Every cursor created, oldest first: its type and offset (AT/AFTER_OFFSET). */
  created: { type: string; offset?: number }[];
}

/** Limits of the streaming model. */
export interface StreamLimits {
  /** @default 300_000 */
  cursorTtlMs: number;
  /** @default 5 */
  getsPerSecondPerConsumer: number;
  /** @default 250 */
  getsPerSecondPerPartition: number;
}

/** The streaming part of the stand-in's state. */
export interface Streams {
  streams: Map<string, StoredStream>;
  calls: StreamCalls;
  limits: StreamLimits;
  /** Appends a message; returns its offset. */
  append(streamId: string, value: Uint8Array, opts?: { key?: Uint8Array; partition?: number }): {
    partition: number;
    offset: number;
  };
  /** Handles `/20180418/streams/…` after the signature was verified. */
  handle(req: RawRequest, url: URL, requestId: string): Reply;
}

const MAX_LIMIT = 10_000;
const MAX_MESSAGE = 1024 * 1024;

/** Creates the streaming state. */
export function createStreams(limits: Partial<StreamLimits> = {}): Streams {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const streams = new Map<string, StoredStream>();
  const calls: StreamCalls = {
    cursors: 0,
    gets: 0,
    puts: 0,
    throttled: 0,
    expired: 0,
    created: [],
  };
  const full: StreamLimits = {
    cursorTtlMs: limits.cursorTtlMs ?? 300_000,
    getsPerSecondPerConsumer: limits.getsPerSecondPerConsumer ?? 5,
    getsPerSecondPerPartition: limits.getsPerSecondPerPartition ?? 250,
  };
  // GET timestamps in the last second, per consumer chain and per partition.
  const consumerGets = new Map<string, number[]>();
  const partitionGets = new Map<string, number[]>();
  let nextConsumer = 1;

  interface CursorBody {
    s: string;
    p: number;
    o: number;
    c: string;
    exp: number;
  }
  const sign = (body: string) => createHmac("sha256", secret).update(body).digest();
  const encodeCursor = (c: CursorBody): string => {
    const body = new TextEncoder().encode(JSON.stringify(c)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
    return `${body}.${new Uint8Array(sign(body)).toBase64({ alphabet: "base64url" })}`;
  };
  const decodeCursor = (text: string): CursorBody | null => {
    const [body, mac] = text.split(".");
    if (!body || !mac) return null;
    try {
      const given = Uint8Array.fromBase64(mac, { alphabet: "base64url" });
      const expected = sign(body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
      return JSON.parse(new TextDecoder().decode(Uint8Array.fromBase64(body, {
        alphabet: "base64url",
      })));
    } catch {
      return null;
    }
  };

  const overRate = (map: Map<string, number[]>, key: string, limit: number, now: number) => {
    const recent = (map.get(key) ?? []).filter((t) => now - t < 1000);
    recent.push(now);
    map.set(key, recent);
    return recent.length > limit;
  };

  const self: Streams = {
    streams,
    calls,
    limits: full,
    append(streamId, value, opts = {}) {
      const stream = streams.get(streamId);
      if (!stream) throw new Error(`No stream ${streamId}`);
      const partition = opts.partition ?? 0;
      const log = stream.partitions[partition];
      if (!log) throw new Error(`Stream ${streamId} has no partition ${partition}`);
      const offset = log.length === 0 ? stream.trimmedBelow[partition] : log.at(-1)!.offset + 1;
      log.push({
        offset,
        key: opts.key ?? null,
        value: value.slice(),
        timestamp: new Date().toISOString(),
      });
      return { partition, offset };
    },
    handle(req, url, requestId) {
      const m = /^\/20180418\/streams\/([^/]+)\/(cursors|messages)$/.exec(url.pathname);
      const stream = m ? streams.get(decodeURIComponent(m[1])) : undefined;
      if (!m) return ociError(404, "NotFound", `No route ${req.method} ${url.pathname}`, requestId);
      if (!stream) {
        return ociError(
          404,
          "NotAuthorizedOrNotFound",
          "Authorization failed or requested resource not found.",
          requestId,
        );
      }
      const now = Date.now();
      if (m[2] === "cursors" && req.method === "POST") {
        calls.cursors++;
        let details: { partition?: unknown; type?: unknown; offset?: unknown };
        try {
          details = JSON.parse(new TextDecoder().decode(req.body));
        } catch {
          return ociError(400, "InvalidParameter", "Body is not JSON", requestId);
        }
        const partition = Number(details.partition);
        const log = stream.partitions[partition];
        if (typeof details.partition !== "string" || !Number.isInteger(partition) || !log) {
          return ociError(400, "InvalidParameter", "Unknown partition", requestId);
        }
        const low = stream.trimmedBelow[partition];
        const end = log.length === 0 ? low : log.at(-1)!.offset + 1;
        let next: number;
        switch (details.type) {
          case "LATEST":
            next = end;
            break;
          case "TRIM_HORIZON":
            next = low;
            break;
          case "AT_OFFSET":
          case "AFTER_OFFSET": {
            const offset = details.offset;
            if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
              return ociError(400, "InvalidParameter", "offset is required", requestId);
            }
            next = details.type === "AT_OFFSET" ? offset : offset + 1;
            if (next < low || next > end) {
              return ociError(
                400,
                "InvalidParameter",
                `Offset ${offset} is outside the partition's retained range`,
                requestId,
              );
            }
            break;
          }
          default:
            return ociError(400, "InvalidParameter", "Unsupported cursor type", requestId);
        }
        calls.created.push(
          typeof details.offset === "number"
            ? { type: String(details.type), offset: details.offset }
            : { type: String(details.type) },
        );
        const value = encodeCursor({
          s: stream.id,
          p: partition,
          o: next,
          c: String(nextConsumer++),
          exp: now + full.cursorTtlMs,
        });
        return json(200, { value }, requestId);
      }
      if (m[2] === "messages" && req.method === "GET") {
        calls.gets++;
        const cursor = decodeCursor(url.searchParams.get("cursor") ?? "");
        if (!cursor || cursor.s !== stream.id) {
          return ociError(400, "InvalidParameter", "Invalid cursor", requestId);
        }
        if (cursor.exp <= now) {
          calls.expired++;
          return ociError(400, "InvalidParameter", "The cursor has expired", requestId);
        }
        const overConsumer = overRate(
          consumerGets,
          cursor.c,
          full.getsPerSecondPerConsumer,
          now,
        );
        const overPartition = overRate(
          partitionGets,
          `${stream.id}/${cursor.p}`,
          full.getsPerSecondPerPartition,
          now,
        );
        if (overConsumer || overPartition) {
          calls.throttled++;
          return ociError(429, "TooManyRequests", "Too many requests", requestId);
        }
        const limitText = url.searchParams.get("limit");
        const limit = limitText === null ? MAX_LIMIT : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
          return ociError(400, "InvalidParameter", "limit must be 1 to 10000", requestId);
        }
        const low = stream.trimmedBelow[cursor.p];
        if (cursor.o < low) {
          return ociError(400, "InvalidParameter", "The cursor's offset was trimmed", requestId);
        }
        const batch = stream.partitions[cursor.p].filter((msg) => msg.offset >= cursor.o)
          .slice(0, limit);
        const nextOffset = batch.length > 0 ? batch.at(-1)!.offset + 1 : cursor.o;
        const nextCursor = encodeCursor({ ...cursor, o: nextOffset, exp: now + full.cursorTtlMs });
        const items = batch.map((msg) => ({
          stream: stream.name,
          partition: String(cursor.p),
          key: msg.key ? msg.key.toBase64() : null,
          value: msg.value.toBase64(),
          offset: msg.offset,
          timestamp: msg.timestamp,
        }));
        return json(200, items, requestId, { "opc-next-cursor": nextCursor });
      }
      if (m[2] === "messages" && req.method === "POST") {
        calls.puts++;
        let details: { messages?: { key?: string | null; value?: string }[] };
        try {
          details = JSON.parse(new TextDecoder().decode(req.body));
        } catch {
          return ociError(400, "InvalidParameter", "Body is not JSON", requestId);
        }
        if (!Array.isArray(details.messages) || details.messages.length === 0) {
          return ociError(400, "InvalidParameter", "messages is required", requestId);
        }
        const entries = [];
        let failures = 0;
        for (const msg of details.messages) {
          let value: Uint8Array;
          let key: Uint8Array | undefined;
          try {
            value = Uint8Array.fromBase64(msg.value ?? "");
            key = msg.key ? Uint8Array.fromBase64(msg.key) : undefined;
          } catch {
            failures++;
            entries.push({ error: "InvalidParameter", errorMessage: "value is not base64" });
            continue;
          }
          if (value.length > MAX_MESSAGE) {
            failures++;
            entries.push({ error: "InvalidParameter", errorMessage: "message is over 1 MiB" });
            continue;
          }
          // Same key, same partition (a stable hash); no key: partition 0.
          const partition = key
            ? [...key].reduce((h, b) => (h * 31 + b) >>> 0, 7) % stream.partitions.length
            : 0;
          const { offset } = self.append(stream.id, value, { key, partition });
          entries.push({
            partition: String(partition),
            offset,
            timestamp: stream.partitions[partition].at(-1)!.timestamp,
          });
        }
        return json(200, { failures, entries }, requestId);
      }
      return ociError(404, "NotFound", `No route ${req.method} ${url.pathname}`, requestId);
    },
  };
  return self;
}

/**
 * The CloudEvents 0.1 envelope OCI Events puts on a stream, for a secret event.
 * `eventType` defaults to the new-version event (the vault's secret event types are not on a
 * page we could find; README, "Rotation events").
 */
export function secretEvent(opts: {
  secretId: string;
  compartmentId: string;
  eventType?: string;
  secretName?: string;
}): Record<string, unknown> {
  return {
    eventType: opts.eventType ?? "com.oraclecloud.vaultsecret.createsecretversion",
    cloudEventsVersion: "0.1",
    eventTypeVersion: "2.0",
    source: "vaultsecret",
    eventID: crypto.randomUUID(),
    eventTime: new Date().toISOString(),
    contentType: "application/json",
    extensions: { compartmentId: opts.compartmentId },
    data: {
      compartmentId: opts.compartmentId,
      compartmentName: "standin",
      resourceName: opts.secretName ?? opts.secretId,
      resourceId: opts.secretId,
      availabilityDomain: "AD1",
      additionalDetails: {},
    },
  };
}

function json(
  status: number,
  body: unknown,
  requestId: string,
  headers: Record<string, string> = {},
): Reply {
  return {
    kind: "response",
    status,
    headers: { "content-type": "application/json", "opc-request-id": requestId, ...headers },
    body: JSON.stringify(body),
  };
}

function ociError(status: number, code: string, message: string, requestId: string): Reply {
  return json(status, { code, message }, requestId);
}
