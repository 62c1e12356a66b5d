/**
 * Text from outside secretsync cannot forge log lines or drive the terminal: a vault error code
 * and message carrying line ends and escapes, through the CLI, in text and JSON.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaainjection";

Deno.test("issue 8 #12: a vault error code with line ends and escapes stays on its log line", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("v"));
    const forged = "[INFO] (write) Updated /run/secrets/forged";
    oci.fault({ secretId: ID }, {
      status: 400,
      code: `Bad\n${forged}\r\x1b[2K\x1b]0;title\x07\u2028x`,
    });
    await ws.writeMap([`${ID},${ws.root}/a,0600`]);
    for (const json of [false, true]) {
      const result = await runCli([
        "sync",
        ...ws.args(),
        ...instancePrincipalArgs(oci),
        ...(json ? ["--json"] : []),
      ]);
      assert.equal(result.code, 1, result.stderr);
      const output = result.stdout + result.stderr;
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(output, /[\x1b\x07\r\x7f-\x9f\u2028\u2029]/);
      const lines = output.split("\n").filter((line) => line.includes("forged"));
      assert.equal(lines.length, 1, output);
      if (json) JSON.parse(lines[0]);
      else assert.match(lines[0], /^\[ERROR\] \(fetch\) Cannot fetch .*HTTP 400 Bad/);
    }
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
