/**
 * Assertions for tests that handle secret values: on failure they say what differs, never the
 * values (node:assert would print both sides).
 *
 * @module
 */

/** Throws unless `actual` and `expected` are the same bytes; the message shows no content. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) throw new Error(`${what}: differ at index ${i}`);
  }
}

/**
 * Throws if `text` contains the secret, as raw text or in base64 / base64url. The message names
 * where, not the secret.
 */
export function assertNoSecret(text: string, secret: Uint8Array | string, where: string): void {
  const bytes = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  const forms = [
    new TextDecoder().decode(bytes),
    bytes.toBase64(),
    bytes.toBase64({ alphabet: "base64url", omitPadding: true }),
  ].filter((f) => f.length >= 8);
  for (const f of forms) {
    if (text.includes(f)) throw new Error(`${where} contains the secret value`);
  }
}

/** A random printable secret value (base64url of random bytes), never reused between runs. */
export function randomSecret(bytes = 24): string {
  return crypto.getRandomValues(new Uint8Array(bytes)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}
