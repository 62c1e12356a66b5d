/**
 * The `secretsync` executable's entry point: starts what takes longest, then loads the program.
 *
 * A run with an instance principal cannot make its first request before an RSA-2048 session key
 * pair exists (a random prime search: ~40 ms, 20–100, on the key's own worker thread). It starts
 * here, before the command line and its modules load (some 100 ms of start-up), which overlap it. Only `sync` and `watch` with the default auth
 * mode start it: anything else (help, another command or auth mode) must not pay for a key.
 *
 * @module
 */
import { startSessionKeyPair } from "./vault/session_key.ts";

/**
 * Whether these arguments run `sync` or `watch` with an instance principal, judged before the
 * command line is parsed (a wrong "yes" costs one unused key pair, a wrong "no" only time).
 *
 * @example
 * ```ts
 * usesInstancePrincipal(["sync", "--map", "m.csv"]); // true
 * usesInstancePrincipal(["sync", "--auth", "api_key"]); // false
 * ```
 */
export function usesInstancePrincipal(args: readonly string[]): boolean {
  if (args[0] !== "sync" && args[0] !== "watch") return false;
  const end = args.indexOf("--");
  const flags = end === -1 ? args.slice(1) : args.slice(1, end);
  let mode = "instance_principal";
  for (const [i, arg] of flags.entries()) {
    if (arg === "--help" || arg === "-h") return false;
    if (arg === "--auth") mode = flags[i + 1] ?? "";
    else if (arg.startsWith("--auth=")) mode = arg.slice("--auth=".length);
  }
  return mode.replaceAll("-", "_") === "instance_principal";
}

if (import.meta.main) {
  if (usesInstancePrincipal(Deno.args)) startSessionKeyPair();
  const { main } = await import("./cli.ts");
  Deno.exit(await main(Deno.args));
}
