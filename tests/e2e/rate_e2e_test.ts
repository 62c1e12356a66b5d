/**
 * `--rate` and the vault's 429s, end to end: the CLI against the stand-in, the spacing measured
 * where the requests arrive. Only lower bounds on the spacing are asserted, so a slow machine
 * cannot fail these tests; a limiter that does not hold requests back does.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

const COUNT = 16;
const ids = Array.from({ length: COUNT }, (_, i) => `ocid1.vaultsecret.oc1.iad.amaaaaaarate${i}`);
/** Clock and scheduling jitter allowed between the CLI sending and the stand-in receiving. */
const JITTER_MS = 10;

Deno.test("--rate spaces vault requests, and one 429 slows down every request of the run", async (t) => {
  const oci = await startOciStandIn();
  try {
    ids.forEach((id) => oci.setSecret(id, secretValue("rate")));
    const run = async () => {
      const ws = await makeWorkspace();
      try {
        await ws.writeMap(ids.map((id, i) => `${id},${ws.root}/s${i},0600`));
        oci.calls.secretsAt.length = 0;
        const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--rate", "50"];
        const result = await runCli([...args, "--concurrency", "16"]);
        assert.equal(result.code, 3, result.stderr);
        return oci.calls.secretsAt.map((a) => a.at);
      } finally {
        await ws.cleanup();
      }
    };

    await t.step("--rate 50: no two requests closer than 20 ms on average", async () => {
      const at = await run();
      assert.equal(at.length, COUNT);
      for (let k = 1; k < at.length; k++) {
        assert.ok(at[k] - at[0] >= 20 * k - JITTER_MS, `request ${k} came ${at[k] - at[0]} ms in`);
      }
    });

    await t.step("the first request answered 429: every later one comes at 25/s", async () => {
      oci.fault({ path: "secrets" }, { status: 429, times: 1 });
      const at = await run();
      // The throttled secret was asked again and got its file (exit 3 above): one more request.
      assert.equal(at.length, COUNT + 1);
      // Slots booked at 50/s before the 429 are booked again at 25/s: 40 ms apart from the 429
      // on (the rate starts recovering only after a second, past these requests).
      for (let k = 1; k <= 10; k++) {
        assert.ok(at[k] - at[0] >= 40 * k - JITTER_MS, `request ${k} came ${at[k] - at[0]} ms in`);
      }
    });
  } finally {
    oci.clearFaults();
    await oci.close();
  }
});
