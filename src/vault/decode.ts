/**
 * Turns a SecretBundle from the service into bytes and a version, strictly.
 *
 * @module
 */
import type { SecretBundle } from "./types.ts";
import { quoted } from "../text.ts";

/** Why a bundle was refused. The reason never quotes content. */
export class BadContent extends Error {}

/** The fields of an OCI SecretBundle that matter here. */
export interface RawBundle {
  secretId?: unknown;
  versionNumber?: unknown;
  secretBundleContent?: { contentType?: unknown; content?: unknown } | null;
}

// Canonical base64 only: no whitespace, no URL alphabet, padding to a multiple of 4. OCI sends
// exactly this; anything else means the bytes cannot be trusted to be the secret.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Options for `decodeBundle`. */
export interface DecodeOptions {
  /** Largest accepted decoded size. */
  maxBytes: number;
  /** When given, the bundle must be for this secret. */
  secretId?: string;
}

/**
 * Decodes a bundle. Throws `BadContent` when the content is missing, not BASE64, not valid
 * base64, decodes to more than `maxBytes`, or belongs to another secret.
 */
export function decodeBundle(
  bundle: RawBundle | null | undefined,
  opts: DecodeOptions,
): SecretBundle {
  const { maxBytes, secretId: expectedSecretId } = opts;
  const content = bundle?.secretBundleContent;
  if (!bundle || !content) throw new BadContent("response has no secret content");
  if (expectedSecretId !== undefined && bundle.secretId !== expectedSecretId) {
    throw new BadContent("response is for another secret");
  }
  if (content.contentType !== "BASE64") {
    throw new BadContent(`content type is ${describeType(content.contentType)}, expected BASE64`);
  }
  if (typeof content.content !== "string") throw new BadContent("response has no secret content");
  const b64 = content.content;
  // Size first, from the encoded length, so an oversized secret is never decoded.
  const size = Math.floor(b64.length / 4) * 3 -
    (b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0);
  if (size > maxBytes) {
    throw new BadContent(`secret is ${size} bytes, more than the limit of ${maxBytes} bytes`);
  }
  if (!BASE64.test(b64)) throw new BadContent("content is not valid base64");
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(b64, { lastChunkHandling: "strict" });
  } catch {
    throw new BadContent("content is not valid base64");
  }
  const version = bundle.versionNumber;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) {
    throw new BadContent("response has no valid version number");
  }
  return { bytes, version };
}

function describeType(t: unknown): string {
  if (typeof t !== "string") return "missing";
  // The content type is service metadata, not content; still cap what lands in a log line.
  return `"${quoted(t, 40)}"`;
}
