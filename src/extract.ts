/**
 * One key of a JSON secret: what a map line ending in `#key.path` writes.
 *
 * @module
 */
import { formatKeyPath } from "./reference.ts";

/**
 * The bytes to write for `keys` of a secret that holds a JSON object: a string value as its
 * UTF-8 text (no quotes), any other value (number, boolean, null, object, array) as compact
 * JSON, numbers spelled exactly as in the secret. Throws `Error` when the secret is not a JSON object or a key is missing; the message
 * names the key, never the content (a JSON parser's message quotes the text, so it is dropped).
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode('{"db":{"password":"hunter2"}}');
 * new TextDecoder().decode(selectKey(bytes, ["db", "password"])); // "hunter2"
 * ```
 */
export function selectKey(bytes: Uint8Array, keys: readonly string[]): Uint8Array {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes), keepNumberText);
  } catch {
    throw new Error(`the secret is not JSON, so it has no key "${formatKeyPath(keys)}"`);
  }
  if (!isObject(value)) {
    throw new Error(
      `the secret is JSON but not an object, so it has no key "${formatKeyPath(keys)}"`,
    );
  }
  for (let i = 0; i < keys.length; i++) {
    const at = formatKeyPath(keys.slice(0, i + 1));
    if (!isObject(value)) {
      throw new Error(
        `key "${formatKeyPath(keys.slice(0, i))}" is not an object, so it has no "${at}"`,
      );
    }
    if (!Object.hasOwn(value, keys[i])) throw new Error(`the secret has no key "${at}"`);
    value = value[keys[i]];
  }
  if (typeof value === "string" && !value.isWellFormed()) {
    // TextEncoder would write U+FFFD in its place: a different value, silently.
    throw new Error(
      `key "${formatKeyPath(keys)}" is a string with an unpaired \\u surrogate escape, ` +
        "which has no UTF-8 form",
    );
  }
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return new TextEncoder().encode(text);
}

/** `JSON.rawJSON` and friends (ES2026; V8 has them), which Deno's lib does not type yet. */
const RawJson = JSON as unknown as {
  rawJSON(text: string): object;
  isRawJSON(value: unknown): boolean;
};

/**
 * A `JSON.parse` reviver that keeps each number as the secret spells it: a float64 round trip
 * would write 12345678901234567890 as 12345678901234567000, and 1.10 as 1.1.
 */
function keepNumberText(_key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === "number" && context?.source !== undefined
    ? RawJson.rawJSON(context.source)
    : value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !RawJson.isRawJSON(value);
}
