/**
 * A minimal HTTP/1.1 server on raw TCP: one request per connection, or with `keepAlive` one
 * after another on a connection (as OCI's endpoints keep connections open; no pipelining).
 *
 * `Deno.serve` cannot drop a connection without answering, and the stand-in has to be able to
 * (fault `reset`), so the stand-in speaks HTTP itself. Without `keepAlive` every response
 * carries `Connection: close`.
 *
 * @module
 */

/** One parsed request, with the request-target exactly as the client sent it. */
export interface RawRequest {
  method: string;
  /** Path and query as on the request line (what `(request-target)` signs). */
  target: string;
  headers: Headers;
  body: Uint8Array;
}

/** What the handler wants done with the connection. */
export type Reply =
  | {
    kind: "response";
    status: number;
    headers?: Record<string, string>;
    body?: string | Uint8Array;
  }
  /** Close the connection without a response. */
  | { kind: "reset" }
  /** Never answer; the connection is closed when the server closes. */
  | { kind: "hang" };

/** A running raw server. */
export interface RawServer {
  port: number;
  /** Aborted when `close()` starts; hung handlers wait on it. */
  closing: AbortSignal;
  close(): Promise<void>;
}

const MAX_HEAD = 64 * 1024;
const MAX_BODY = 4 * 1024 * 1024;
const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Starts a server on 127.0.0.1 on a free port (`keepAlive`: see the module doc). */
export function serveRaw(
  handler: (req: RawRequest) => Promise<Reply>,
  port = 0,
  options: { keepAlive?: boolean } = {},
): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const closer = new AbortController();
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();

  const acceptLoop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      conns.add(conn);
      const task = handleConn(conn, handler, closer.signal, options.keepAlive ?? false).finally(
        () => {
          conns.delete(conn);
          tasks.delete(task);
        },
      );
      tasks.add(task);
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    closing: closer.signal,
    async close() {
      if (closer.signal.aborted) return;
      closer.abort();
      listener.close();
      for (const c of conns) tryClose(c);
      await acceptLoop;
      await Promise.allSettled([...tasks]);
    },
  };
}

async function handleConn(
  conn: Deno.Conn,
  handler: (req: RawRequest) => Promise<Reply>,
  closing: AbortSignal,
  keepAlive: boolean,
): Promise<void> {
  try {
    // Bytes read past one request (a client may send the next one early) start the next.
    let carry: Uint8Array = new Uint8Array(0);
    for (;;) {
      const read = await readRequest(conn, carry);
      if (read === null) return;
      const { req } = read;
      carry = read.rest;
      let reply: Reply;
      try {
        reply = await handler(req);
      } catch (e) {
        reply = {
          kind: "response",
          status: 500,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ code: "InternalServerError", message: String(e) }),
        };
      }
      if (reply.kind === "reset") return;
      if (reply.kind === "hang") {
        if (!closing.aborted) {
          await new Promise<void>((resolve) =>
            closing.addEventListener("abort", () => resolve(), { once: true })
          );
        }
        return;
      }
      const close = !keepAlive || closing.aborted ||
        /\bclose\b/i.test(req.headers.get("connection") ?? "");
      await writeAll(conn, encodeResponse(reply, close));
      if (close) return;
    }
  } catch {
    // The peer went away (for example an aborted client); nothing to answer.
  } finally {
    tryClose(conn);
  }
}

function tryClose(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed: close() on shutdown races the per-connection finally.
  }
}

async function readRequest(
  conn: Deno.Conn,
  carry: Uint8Array,
): Promise<{ req: RawRequest; rest: Uint8Array } | null> {
  let buf: Uint8Array = carry;
  let headEnd = indexOfCrlfCrlf(buf);
  while (headEnd < 0) {
    const chunk = await readSome(conn);
    if (chunk === null) return null;
    buf = concat(buf, chunk);
    headEnd = indexOfCrlfCrlf(buf);
    if (headEnd < 0 && buf.length > MAX_HEAD) throw new Error("Request head too large");
  }
  const head = new TextDecoder("latin1").decode(buf.subarray(0, headEnd));
  let rest: Uint8Array = buf.subarray(headEnd + 4);
  const [requestLine, ...lines] = head.split("\r\n");
  const [method, target] = requestLine.split(" ");
  const headers = new Headers();
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i <= 0) throw new Error("Malformed header line");
    headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  let body: Uint8Array;
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    // Chunked bodies end the connection's reuse: what follows them is not tracked.
    body = await readChunked(conn, rest);
    return { req: { method, target, headers: closing(headers), body }, rest: new Uint8Array() };
  } else {
    const len = Number(headers.get("content-length") ?? "0");
    if (!Number.isSafeInteger(len) || len < 0 || len > MAX_BODY) throw new Error("Bad length");
    while (rest.length < len) {
      const chunk = await readSome(conn);
      if (chunk === null) throw new Error("Body truncated");
      rest = concat(rest, chunk);
    }
    body = rest.subarray(0, len);
  }
  return { req: { method, target, headers, body }, rest: rest.slice(body.length) };
}

/** `headers` with `connection: close`: the connection ends after this request's answer. */
function closing(headers: Headers): Headers {
  headers.set("connection", "close");
  return headers;
}

async function readChunked(conn: Deno.Conn, start: Uint8Array): Promise<Uint8Array> {
  let buf: Uint8Array = start;
  const parts: Uint8Array[] = [];
  let total = 0;
  const need = async (n: number) => {
    while (buf.length < n) {
      const chunk = await readSome(conn);
      if (chunk === null) throw new Error("Body truncated");
      buf = concat(buf, chunk);
    }
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const i = buf.findIndex((b, k) => b === 13 && buf[k + 1] === 10);
      if (i >= 0) {
        const s = new TextDecoder().decode(buf.subarray(0, i));
        buf = buf.subarray(i + 2);
        return s;
      }
      await need(buf.length + 1);
    }
  };
  for (;;) {
    const size = parseInt((await line()).split(";")[0], 16);
    if (!Number.isFinite(size) || size < 0) throw new Error("Bad chunk");
    if (size === 0) {
      while ((await line()) !== "");
      return concat(...parts);
    }
    total += size;
    if (total > MAX_BODY) throw new Error("Body too large");
    await need(size + 2);
    parts.push(buf.slice(0, size));
    buf = buf.subarray(size + 2);
  }
}

async function readSome(conn: Deno.Conn): Promise<Uint8Array | null> {
  const b = new Uint8Array(16 * 1024);
  const n = await conn.read(b);
  return n === null ? null : b.subarray(0, n);
}

function indexOfCrlfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function concat(...arrays: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let off = 0;
  for (const a of arrays) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

function encodeResponse(r: Extract<Reply, { kind: "response" }>, close: boolean): Uint8Array {
  const body = typeof r.body === "string"
    ? new TextEncoder().encode(r.body)
    : r.body ?? new Uint8Array();
  const lines = [`HTTP/1.1 ${r.status} ${REASONS[r.status] ?? "Status"}`];
  for (const [k, v] of Object.entries(r.headers ?? {})) lines.push(`${k}: ${v}`);
  lines.push(
    `content-length: ${body.length}`,
    `connection: ${close ? "close" : "keep-alive"}`,
    `date: ${new Date().toUTCString()}`,
  );
  return concat(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"), body);
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}
