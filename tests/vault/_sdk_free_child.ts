/**
 * Child process for sdk_free_test.ts: runs `secretsync sync` in this process with the `sync`
 * arguments given (the parent points it at its stand-in) and prints, as its last line,
 * `RESULT {"code", "sdkImports"}`: whether anything made the run import the OCI SDK.
 */
import { parseSyncArgs, runSync } from "../../src/commands/sync.ts";
import { sdkImports } from "../../src/vault/sdk.ts";

const code = await runSync(parseSyncArgs(Deno.args));
console.log(`RESULT ${JSON.stringify({ code, sdkImports: sdkImports() })}`);
