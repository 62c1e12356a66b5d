import assert from "node:assert/strict";
import { createLoopSync } from "../../src/stream/loop_sync.ts";

const A = "ocid1.vaultsecret.oc1.iad.a";
const B = "ocid1.vaultsecret.oc1.iad.b";

Deno.test("createLoopSync() settles a request when a cycle covering it ends", async () => {
  const triggered: (readonly string[] | undefined)[] = [];
  const bridge = createLoopSync({ trigger: (ids) => triggered.push(ids) });
  const settled: string[] = [];
  const ab = bridge.sync([A, B]).then((ok) => settled.push(`ab:${ok}`));
  const b = bridge.sync([B]).then((ok) => settled.push(`b:${ok}`));
  assert.deepEqual(triggered, [[A, B], [B]]);

  bridge.cycleEnded([A], 3); // covers neither: ab needs B too
  await Promise.resolve();
  assert.deepEqual(settled, []);
  bridge.cycleEnded([A, B], 1); // the merged cycle failed: both settle false
  await Promise.all([ab, b]);
  assert.deepEqual(settled.sort(), ["ab:false", "b:false"]);

  const full = bridge.sync(undefined);
  const a = bridge.sync([A]);
  bridge.cycleEnded(undefined, 0); // a full cycle covers everything
  assert.deepEqual(await Promise.all([full, a]), [true, true]);

  const open = bridge.sync([B]);
  bridge.cancel();
  assert.equal(await open, false);
  assert.equal(await bridge.sync([A]), false, "after cancel, at once");
});
