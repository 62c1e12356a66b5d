/**
 * SharedVault against the OCI stand-in: one federation for many runs, a fresh one after a
 * failure or when the connection is old, and a run abandoned at once when its stop fires.
 */
import assert from "node:assert/strict";
import { keysHeld } from "../../src/vault/key_worker.ts";
import { SharedVault } from "../../src/vault/shared.ts";
import { type OciStandIn, startOciStandIn } from "../oci/standin.ts";

const ID = "ocid1.vaultsecret.oc1.iad.sharedtest";

/** The stand-in's vault, by instance principal, at the CURRENT stage. */
function standInVault(oci: OciStandIn): ConstructorParameters<typeof SharedVault>[0] {
  return {
    auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
    endpoint: oci.secretsEndpoint,
    stage: "CURRENT",
  };
}

Deno.test("SharedVault: one federation for many runs; a failed run or an old connection reopens", async () => {
  const oci = await startOciStandIn();
  let now = 1_000_000;
  const vault = new SharedVault(standInVault(oci), {
    runTimeoutMs: 10_000,
    maxAgeMs: 60_000,
    now: () => now,
  });
  const run = async (stop = new AbortController().signal) => {
    const source = vault.forRun(stop);
    try {
      return (await source.fetch(ID)).version;
    } finally {
      source.close();
    }
  };
  try {
    oci.setSecret(ID, "shared-1");
    assert.equal(await run(), 1);
    oci.setSecret(ID, "shared-2");
    assert.equal(await run(), 2);
    assert.equal(await run(), 2);
    assert.equal(oci.calls.federation, 1, "three runs, one federation");

    oci.fault({ secretId: ID }, { status: 404, times: 1 });
    await assert.rejects(run());
    assert.equal(await run(), 2);
    assert.equal(oci.calls.federation, 2, "a run with a failure drops the connection");

    now += 60_000;
    assert.equal(await run(), 2);
    assert.equal(oci.calls.federation, 3, "an old connection is reopened");

    oci.fault({ secretId: ID }, { hang: true });
    const stop = new AbortController();
    const hanging = run(stop.signal);
    await new Promise((r) => setTimeout(r, 200));
    const stoppedAt = Date.now();
    stop.abort();
    await assert.rejects(hanging, /watch is stopping/);
    assert.ok(Date.now() - stoppedAt < 100, "the stop ends the run's fetch at once");
  } finally {
    vault.close();
    await oci.close();
  }
});

Deno.test("SharedVault: a run's deadline fails its fetches", async () => {
  const oci = await startOciStandIn();
  const vault = new SharedVault(standInVault(oci), { runTimeoutMs: 300 });
  try {
    oci.setSecret(ID, "deadline");
    oci.fault({ secretId: ID }, { hang: true, times: 1 });
    const slow = vault.forRun(new AbortController().signal);
    const started = Date.now();
    await assert.rejects(slow.fetch(ID), /deadline \(--timeout\) passed/);
    assert.ok(Date.now() - started < 2_000, "ended by the run's deadline, not the request's");
    slow.close();
  } finally {
    vault.close();
    await oci.close();
  }
});

Deno.test("SharedVault: upcoming() with nothing to fetch, or after the run stopped, opens no connection", async () => {
  const oci = await startOciStandIn();
  const vault = new SharedVault(standInVault(oci), { runTimeoutMs: 10_000 });
  try {
    const source = vault.forRun(new AbortController().signal);
    source.upcoming?.([], 16);
    const stop = new AbortController();
    stop.abort();
    const stopped = vault.forRun(stop.signal);
    stopped.upcoming?.([{ secretId: ID }], 16);
    await new Promise((r) => setTimeout(r, 300));
    source.close();
    stopped.close();
    assert.equal(oci.calls.imds, 0, oci.calls.log.join(", "));
    assert.equal(oci.calls.federation, 0);
  } finally {
    vault.close();
    await oci.close();
  }
});

Deno.test("SharedVault: reopening the connection again and again does not pile up session keys", async () => {
  // Each reopen authenticates anew (a new session key) while the next connection already holds
  // the key's worker, so the worker never stops: the ended session's key must be dropped.
  const oci = await startOciStandIn();
  let now = 1_000_000;
  const vault = new SharedVault(standInVault(oci), {
    runTimeoutMs: 10_000,
    maxAgeMs: 60_000,
    now: () => now,
  });
  try {
    oci.setSecret(ID, "keys");
    for (let cycle = 0; cycle < 5; cycle++) {
      now += 120_000; // older than maxAgeMs: reopened
      const source = vault.forRun(new AbortController().signal);
      await source.fetch(ID);
      source.close();
      await new Promise((r) => setTimeout(r, 20)); // the previous connection's close settles
      assert.equal(keysHeld(), 1, `cycle ${cycle}: only the open connection's key`);
    }
    assert.equal(oci.calls.federation, 5);
    assert.equal(oci.calls.rejected, 0, oci.rejections.join("; "));
  } finally {
    vault.close();
    await oci.close();
  }
});
