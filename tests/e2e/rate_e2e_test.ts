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
/**
 * Scheduling delay allowed between the CLI sending and the stand-in receiving, at either end of
 * a span (a loaded machine delays single requests by tens of milliseconds).
 */
const JITTER_MS = 150;

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

    await t.step("--rate 50: the requests are spread over at least 20 ms each", async () => {
      const at = await run();
      assert.equal(at.length, COUNT);
      // Unlimited, 16 requests at concurrency 16 arrive within a few milliseconds.
      const span = at[COUNT - 1] - at[0];
      assert.ok(span >= 20 * (COUNT - 1) - JITTER_MS, `${COUNT} requests within ${span} ms`);
    });

    await t.step("the first request answered 429: every later one comes at 25/s", async () => {
      oci.fault({ path: "secrets" }, { status: 429, times: 1 });
      const at = await run();
      // The throttled secret was asked again and got its file (exit 3 above): one more request.
      assert.equal(at.length, COUNT + 1);
      // Slots booked at 50/s before the 429 are booked again at 25/s: 40 ms apart from the 429
      // on (16 × 40 ms = 640 ms, before the rate starts recovering after a second); at 50/s the
      // same requests would span 320 ms.
      const span = at[COUNT] - at[0];
      assert.ok(
        span >= 40 * COUNT - JITTER_MS,
        `${COUNT} requests after the 429 within ${span} ms`,
      );
    });
  } finally {
    oci.clearFaults();
    await oci.close();
  }
});
