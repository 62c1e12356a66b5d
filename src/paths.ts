/**
 * Pure helpers for POSIX paths as the map file uses them. Deno's `@std/path` is not
 * reachable from these machines, and the map only needs these few rules.
 *
 * @module
 */

/** True for an absolute path with no empty, `.` or `..` segment and no trailing slash. */
export function isNormalizedAbsolute(path: string): boolean {
  if (!path.startsWith("/") || path.includes("\0") || /[\r\n]/.test(path)) return false;
  if (path === "/") return true;
  return path.slice(1).split("/").every((segment) =>
    segment !== "" && segment !== "." && segment !== ".."
  );
}

/** True when `path` lies strictly inside directory `root` (both normalized, absolute). */
export function isInside(path: string, root: string): boolean {
  const prefix = root === "/" ? "/" : `${root}/`;
  return path.startsWith(prefix) && path.length > prefix.length;
}

/** The parent directory of a normalized absolute path (`/` for `/x`). */
export function dirname(path: string): string {
  const cut = path.lastIndexOf("/");
  return cut <= 0 ? "/" : path.slice(0, cut);
}

/** The last segment of a normalized absolute path. */
export function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** The innermost of `roots` holding `path`; `undefined` when none does. */
export function innermostRoot(path: string, roots: readonly string[]): string | undefined {
  return roots.filter((root) => isInside(path, root)).sort((a, b) => b.length - a.length)[0];
}
