import assert from "node:assert/strict";
import { acquireRunLock } from "../src/lock.ts";
import { parseState, readState, type State, stateFile, writeState } from "../src/state.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-state-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readState() and writeState() round-trip pending reloads in a 0600 file", () =>
  withDir(async (dir) => {
    assert.deepEqual(await readState(dir), { state: { pendingReloads: [], entries: {} } });
    await writeState(dir, {
      pendingReloads: ["/run/secrets/b", "/run/secrets/a", "/run/secrets/a"],
    });
    assert.deepEqual(await readState(dir), {
      state: { pendingReloads: ["/run/secrets/a", "/run/secrets/b"], entries: {} },
    });
    assert.equal((await Deno.stat(stateFile(dir))).mode! & 0o777, 0o600);
  }));

Deno.test("readState() treats a corrupt state file as empty, with a warning", async (t) => {
  for (
    const [name, body] of [["not JSON", "{nope"], [
      "wrong shape",
      '{"version":1,"pendingReloads":"x"}',
    ], [
      "unknown version",
      '{"version":3,"pendingReloads":[]}',
    ], [
      "version 2 without entries",
      '{"version":2,"pendingReloads":[]}',
    ], [
      "an entry with a bad time",
      '{"version":2,"pendingReloads":[],"entries":{"/a":{"secretId":"o","changedAt":"soon"}}}',
    ], ["empty", ""]]
  ) {
    await t.step(name, () =>
      withDir(async (dir) => {
        await Deno.writeTextFile(stateFile(dir), body);
        const { state, warning } = await readState(dir);
        assert.deepEqual(state, { pendingReloads: [], entries: {} });
        assert.match(warning ?? "", /corrupt state file/);
      }));
  }
});

Deno.test("readState() reads a version 1 file as pending reloads with no entry records", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(stateFile(dir), '{"version":1,"pendingReloads":["/run/secrets/a"]}');
    assert.deepEqual(await readState(dir), {
      state: { pendingReloads: ["/run/secrets/a"], entries: {} },
    });
  }));

Deno.test("writeState() writes version 2 with entries and the last run, and reads it back", () =>
  withDir(async (dir) => {
    const state: State = {
      pendingReloads: ["/run/secrets/b"],
      entries: {
        "/run/secrets/b": {
          secretId: "ocid1.vaultsecret.oc1..b",
          version: 4,
          changedAt: "2026-12-02T06:00:00.000Z",
          checkedAt: "2026-12-02T06:30:00.000Z",
          error: "reload of container web failed: exit code 1",
        },
        "/run/secrets/a": { secretId: "ocid1.vaultsecret.oc1..a", version: "7" },
      },
      lastRun: {
        startedAt: "2026-12-02T06:30:00.000Z",
        endedAt: "2026-12-02T06:30:01.000Z",
        code: 1,
        outcome: "failed",
        trigger: "timer",
      },
    };
    await writeState(dir, state);
    const text = await Deno.readTextFile(stateFile(dir));
    assert.equal(JSON.parse(text).version, 2);
    assert.deepEqual(Object.keys(JSON.parse(text).entries), ["/run/secrets/a", "/run/secrets/b"]);
    assert.deepEqual(parseState(text), state);
    assert.deepEqual((await readState(dir)).state, state);
  }));

Deno.test("acquireRunLock() lets one run in at a time and gives up after the timeout", () =>
  withDir(async (dir) => {
    // flock locks belong to open file descriptions, so a second process is the honest test;
    // -o keeps the sleeping child from inheriting the lock, so killing flock frees it.
    const holder = new Deno.Command("flock", {
      args: ["-o", `${dir}/lock`, "sleep", "30"],
      stdout: "null",
    }).spawn();
    try {
      for (let i = 0; i < 50; i++) {
        const probe = await new Deno.Command("flock", { args: ["-n", `${dir}/lock`, "true"] })
          .output();
        if (!probe.success) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      // An abandoned flock() call cannot be cancelled and may still succeed later, so the
      // timeout is tested in a process of its own, as the CLI exits right after it.
      const lockModule = new URL("../src/lock.ts", import.meta.url).href;
      const code = `
        const { acquireRunLock, LockTimeoutError } = await import(${JSON.stringify(lockModule)});
        const started = Date.now();
        try { await acquireRunLock(${JSON.stringify(dir)}, 300); console.log("locked"); }
        catch (e) { console.log(e instanceof LockTimeoutError ? "timeout " + (Date.now() - started) : String(e)); }
        Deno.exit(0);`;
      const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
      const [word, ms] = new TextDecoder().decode(out.stdout).trim().split(" ");
      assert.equal(word, "timeout");
      assert.ok(Number(ms) >= 280 && Number(ms) < 3000, `waited ${ms} ms`);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }
    const lock = await acquireRunLock(dir, 1000);
    const busy = await new Deno.Command("flock", { args: ["-n", `${dir}/lock`, "true"] }).output();
    assert.equal(busy.success, false, "the lock is held while the run lasts");
    lock.release();
    const free = await new Deno.Command("flock", { args: ["-n", `${dir}/lock`, "true"] }).output();
    assert.equal(free.success, true, "release() frees it");
  }));
