/**
 * Reading an HTTP response body with a size cap, for every client that talks to OCI (the vault,
 * the stream): an answer larger than expected is refused, never buffered whole.
 *
 * @module
 */

/** A response body over the cap; the rest of it was cancelled unread. */
export class BodyTooLarge extends Error {}

/**
 * Reads `res`'s body, at most `cap` bytes; throws {@linkcode BodyTooLarge} past that.
 *
 * @example
 * ```ts
 * import { readCappedBody } from "./http_body.ts";
 *
 * const bytes = await readCappedBody(new Response("hello"), 1024);
 * console.assert(bytes.length === 5);
 * ```
 */
export async function readCappedBody(res: Response, cap: number): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array();
  // With a length (OCI always sends one) the body is read in one go: reading it through a
  // stream reader left ~13 KB of buffers per response to the garbage collector, which at a
  // thousand secrets was most of the process's memory growth.
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isSafeInteger(length) && length >= 0) {
    if (length > cap) {
      await res.body.cancel().catch(() => {
        // Deliberately ignored: the response is refused either way.
      });
      throw new BodyTooLarge(`Response is larger than ${cap} bytes`);
    }
    return await res.bytes();
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > cap) {
      await reader.cancel().catch(() => {
        // Deliberately ignored: the response is refused either way.
      });
      throw new BodyTooLarge(`Response is larger than ${cap} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
