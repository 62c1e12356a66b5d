/**
 * Loads the OCI SDK so that it prints nothing to the user's terminal.
 *
 * The SDK writes to the console on its own: `oci-common`'s retrier calls `console.warn` on every
 * failed request even with retries off, the federation client calls `console.log`, and loading it
 * under Deno prints a `punycode` DeprecationWarning. `LOG.logger` does not govern any of these.
 * Two measures, both scoped to the SDK:
 *
 * 1. The SDK is imported lazily, with `process.noDeprecation` set only while its modules load
 *    (the warning is raised synchronously by `require("punycode")`).
 * 2. The console methods get a filter that drops a call only when its immediate caller is code
 *    inside the SDK or its dependencies (checked on the call's stack). Everyone else's console
 *    output is untouched, concurrency does not matter, and SDK code that runs after a request
 *    was abandoned stays quiet too. It is installed once and never removed for that reason.
 *
 * @module
 */
import process from "node:process";

/** The two SDK modules, as loaded. */
export interface Sdk {
  common: typeof import("oci-common");
  secrets: typeof import("oci-secrets");
}

// Packages whose console calls are dropped: the SDK and what it pulls in.
const SDK_FRAME =
  /[\\/](?:oci-common|oci-secrets|opossum|node-fetch|isomorphic-fetch|whatwg-fetch|sshpk|http-signature|jsonwebtoken|jssha|es6-promise)[\\/@]/;
const METHODS = ["log", "info", "warn", "error", "debug", "trace"] as const;

let loading: Promise<Sdk> | undefined;
let filterInstalled = false;
let imports = 0;

/**
 * How many times this process started importing the SDK (0 or 1, more after a failed load):
 * tests assert with it that a path never waits for the SDK.
 */
export function sdkImports(): number {
  return imports;
}

/** Loads (once) the SDK modules, quietly. */
export function loadSdk(): Promise<Sdk> {
  loading ??= (async () => {
    imports++;
    installConsoleFilter();
    const previous = process.noDeprecation;
    process.noDeprecation = true;
    try {
      const [common, secrets] = await Promise.all([import("oci-common"), import("oci-secrets")]);
      return { common, secrets };
    } finally {
      process.noDeprecation = previous;
    }
  })();
  loading.catch(() => {
    loading = undefined; // let a later call try again
  });
  return loading;
}

/** Installs the console filter described in the module doc. Idempotent. */
export function installConsoleFilter(): void {
  if (filterInstalled) return;
  filterInstalled = true;
  for (const name of METHODS) {
    const original = console[name] as (...args: unknown[]) => void;
    const filtered = (...args: unknown[]): void => {
      if (calledFromSdk(filtered)) return;
      original.apply(console, args);
    };
    console[name] = filtered;
  }
}

function calledFromSdk(fn: (...args: never[]) => unknown): boolean {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  // Only the caller's frame matters; someone may have set the limit to 0.
  Error.stackTraceLimit = 2;
  try {
    Error.captureStackTrace(holder, fn);
  } finally {
    Error.stackTraceLimit = limit;
  }
  const caller = holder.stack?.split("\n")[1] ?? "";
  return SDK_FRAME.test(caller);
}
