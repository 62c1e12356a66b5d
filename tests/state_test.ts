import assert from "node:assert/strict";
import { acquireRunLock } from "../src/lock.ts";
import { readState, stateFile, writeState } from "../src/state.ts";

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
    assert.deepEqual(await readState(dir), { state: { pendingReloads: [] } });
    await writeState(dir, {
      pendingReloads: ["/run/secrets/b", "/run/secrets/a", "/run/secrets/a"],
    });
    assert.deepEqual(await readState(dir), {
      state: { pendingReloads: ["/run/secrets/a", "/run/secrets/b"] },
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
      '{"version":2,"pendingReloads":[]}',
    ], ["empty", ""]]
  ) {
    await t.step(name, () =>
      withDir(async (dir) => {
        await Deno.writeTextFile(stateFile(dir), body);
        const { state, warning } = await readState(dir);
        assert.deepEqual(state, { pendingReloads: [] });
        assert.match(warning ?? "", /corrupt state file/);
      }));
  }
});

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
