/**
 * Reads a file that tells root what to do (the map, a recipe file): a regular file, owned by
 * root or the running user, writable by nobody else, and of bounded size. Anything else is
 * refused before it is opened, so a FIFO, `/dev/zero` or a directory cannot hang or exhaust
 * the run.
 *
 * @module
 */
import { ownershipProblem } from "./ownership.ts";
import { errorMessage } from "./text.ts";

/** The text of a trusted file, or why it cannot be used. */
export type TrustedText = { ok: true; text: string } | { ok: false; reason: string };

/**
 * Reads `path` (following a symlink: the file it names is what is checked) when it is a
 * regular file owned by root or the running user, not writable by group or others, and at
 * most `maxBytes` long. The file opened is checked again, so one swapped in between the check
 * and the read is refused too. The reason reads after "Cannot use FILE: ".
 *
 * @example
 * ```ts
 * import { readTrustedText } from "./trusted_file.ts";
 * const map = await readTrustedText("/etc/oci-secretsync/map.csv", 4 << 20);
 * if (!map.ok) console.error(`Cannot use the map: ${map.reason}`);
 * ```
 */
export async function readTrustedText(path: string, maxBytes: number): Promise<TrustedText> {
  try {
    const why = refusal(await Deno.stat(path), maxBytes);
    if (why) return { ok: false, reason: why };
    using file = await Deno.open(path, { read: true });
    const opened = await file.stat();
    const again = refusal(opened, maxBytes);
    if (again) return { ok: false, reason: again };
    const bytes = await readAtMost(file, opened.size + 1);
    if (bytes.length > opened.size) return { ok: false, reason: "it grew while being read" };
    return { ok: true, text: new TextDecoder().decode(bytes) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { ok: false, reason: "no such file" };
    if (error instanceof Deno.errors.NotCapable) throw error;
    return { ok: false, reason: errorMessage(error) };
  }
}

function refusal(info: Deno.FileInfo, maxBytes: number): string | undefined {
  if (!info.isFile) {
    const what = info.isDirectory ? "a directory" : "a device, FIFO or socket";
    return `it is ${what}, not a regular file`;
  }
  const why = ownershipProblem(info, { owners: "root-or-self" });
  if (why) return why;
  if (info.size > maxBytes) return tooLong(info.size, maxBytes);
  return undefined;
}

function tooLong(size: number, maxBytes: number): string {
  return `${size} bytes or more, larger than the ${maxBytes} bytes allowed`;
}

async function readAtMost(file: Deno.FsFile, limit: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(limit);
  let filled = 0;
  while (filled < limit) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}
