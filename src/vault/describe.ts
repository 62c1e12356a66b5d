/**
 * Turning failures into short, single-line reasons for error messages. Server- and SDK-supplied
 * text is flattened, made printable and bounded, since it ends up in log lines.
 *
 * @module
 */
import { errorMessage, oneLine as textOneLine } from "../text.ts";

/** A one-line description of anything thrown (the SDK throws strings and plain objects too). */
export function describe(e: unknown): string {
  // The SDK appends a long generic hint about compute instances; it hides the actual reason.
  const s = errorMessage(e).replace(
    /\s*Instance principals authentication can only be used[^]*$/,
    "",
  );
  return textOneLine(s, 300);
}

/** Names a network failure in words an operator recognises. */
export function describeNetworkError(e: unknown): string {
  // Deno's fetch throws "TypeError: fetch failed" and puts the real reason in `cause`.
  const chain: string[] = [];
  for (let x: unknown = e, depth = 0; x !== undefined && x !== null && depth < 5; depth++) {
    chain.push(errorMessage(x));
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

/** Server- or SDK-supplied text (or a thrown value's message) as one sanitised, bounded line. */
export function oneLine(e: unknown, maxChars = 200): string {
  return textOneLine(typeof e === "string" ? e : errorMessage(e), maxChars);
}
