/**
 * What `secretsync --version` prints. The commit comes from the build, never from git at run
 * time: `scripts/compile.ts` compiles a copy of the tree in which {@linkcode COMMIT} holds the
 * commit it was built from; run from a checkout, it stays `"unknown"`.
 *
 * @module
 */

/** The release version; `scripts/compile.ts` checks it against `version` in deno.json. */
export const VERSION = "0.1.0";

/** The git commit of the build (`-dirty` when the tree had changes), or `"unknown"`. */
export const COMMIT: string = "unknown";

/**
 * One line: `secretsync 0.1.0 (commit 3bcea91f4f46)`, or `(commit unknown)` from a checkout.
 */
export function versionText(): string {
  return `secretsync ${VERSION} (commit ${COMMIT})`;
}
