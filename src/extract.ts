/**
 * One key of a JSON secret: what a map line ending in `#key.path` writes.
 *
 * @module
 */
import { formatKeyPath } from "./reference.ts";

/**
 * The bytes to write for `keys` of a secret that holds a JSON object: a string value as its
 * UTF-8 text (no quotes), any other value (number, boolean, null, object, array) as compact
 * JSON. Throws `Error` when the secret is not a JSON object or a key is missing; the message
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
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
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
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return new TextEncoder().encode(text);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
