/**
 * Turning failures into short, single-line reasons for error messages. Server- and SDK-supplied
 * text is flattened, made printable and bounded, since it ends up in log lines.
 *
 * @module
 */

/** A one-line description of anything thrown (the SDK throws strings and plain objects too). */
export function describe(e: unknown): string {
  let s: string;
  if (typeof e === "string") s = e;
  else if (e instanceof Error) s = e.message;
  else if (e && typeof e === "object" && typeof (e as { message?: unknown }).message === "string") {
    s = (e as { message: string }).message;
  } else s = String(e);
  // The SDK appends a long generic hint about compute instances; it hides the actual reason.
  s = s.replace(/\s*Instance principals authentication can only be used[^]*$/, "");
  return s.replace(/\s+/g, " ").trim().slice(0, 300);
}

/** Names a network failure in words an operator recognises. */
export function describeNetworkError(e: unknown): string {
  // Deno's fetch throws "TypeError: fetch failed" and puts the real reason in `cause`.
  const chain: string[] = [];
  for (let x: unknown = e, depth = 0; x !== undefined && x !== null && depth < 5; depth++) {
    chain.push(messageOf(x));
    x = (x as { cause?: unknown }).cause;
  }
  const lower = chain.join(" ").toLowerCase();
  if (lower.includes("reset")) return "connection reset";
  if (lower.includes("connection closed before message completed") || lower.includes("eof")) {
    return "connection reset (closed by the server before it answered)";
  }
  if (lower.includes("refused")) return "connection refused";
  if (lower.includes("dns error") || lower.includes("failed to lookup")) return "DNS lookup failed";
  // The innermost message, minus Deno's "error sending request from A for URL (B): " preamble.
  const inner = chain[chain.length - 1].replace(
    /^error sending request from \S+ for \S+ \(\S+\): /,
    "",
  );
  if (lower.includes("certificate") || lower.includes("tls")) return `TLS error: ${oneLine(inner)}`;
  return `network error: ${oneLine(inner)}`;
}

/** The message of anything thrown (the SDK throws strings and plain objects too). */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "object" && e !== null && "message" in e) {
    return String((e as { message: unknown }).message);
  }
  return String(e ?? "");
}

export function oneLine(e: unknown): string {
  // Server-supplied text lands in log lines: one line, printable, bounded.
  return messageOf(e).replace(/\s+/g, " ").replace(/[^\x20-\x7e]/g, "?").trim().slice(0, 200);
}
