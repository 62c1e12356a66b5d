/**
 * The engine defects of issue 8, through the CLI against the OCI stand-in: an owed reload that
 * cannot be recorded, one entry aborting the run, uncaught errors on the final state write, the
 * stale-temp clean-up following a symlink, a state directory inside a root, a hard link out of
 * the root, a dry run's exit code with an owed reload, and SIGTERM/SIGINT mid-run.
 *
 * Reloads go to a `podman` stand-in first on PATH that records its calls: no container needed.
 */
import assert from "node:assert/strict";
import { type OciStandIn, startOciStandIn } from "../oci/standin.ts";
import {
  cli,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
  type Workspace,
} from "./harness.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaaengine1";
const ID2 = "ocid1.vaultsecret.oc1.iad.amaaaaaaengine2";

/** A `podman` that records each call in `<ws>/podman-calls` and succeeds. */
async function fakePodman(
  ws: Workspace,
): Promise<{ env: Record<string, string>; calls: () => Promise<string> }> {
  const bin = `${ws.dir}/bin`;
  const calls = `${ws.dir}/podman-calls`;
  await Deno.mkdir(bin);
  await Deno.writeTextFile(`${bin}/podman`, `#!/bin/sh\necho "$*" >> ${calls}\nexit 0\n`, {
    mode: 0o755,
  });
  return {
    env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
    calls: () => Deno.readTextFile(calls).catch(() => ""),
  };
}

function syncArgs(ws: Workspace, oci: OciStandIn, ...more: string[]): string[] {
  return ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman", ...more];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function assertNoStackTrace(text: string): void {
  assert.doesNotMatch(text, /Uncaught| {4}at /, `a stack trace: ${text}`);
}

Deno.test("an owed reload that cannot be recorded: its file is not replaced, so the next run reloads", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const podman = await fakePodman(ws);
    oci.setSecret(ID, secretValue("token"));
    oci.setSecret(ID2, secretValue("plain"));
    await ws.writeMap([`${ID},${ws.root}/token,0600,web,HUP`, `${ID2},${ws.root}/plain,0600`]);
    await Deno.mkdir(`${ws.stateDir}/state.json`, { recursive: true, mode: 0o700 });
    await Deno.chmod(ws.stateDir, 0o700);

    const first = await runCli(syncArgs(ws, oci), { env: podman.env });
    assertNoStackTrace(first.stderr);
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stderr, new RegExp(`Not writing ${ws.root}/token: .*cannot be recorded`));
    assert.equal(await exists(`${ws.root}/token`), false, "a write whose reload is not owed");
    assert.equal(await exists(`${ws.root}/plain`), true, "an entry with no reload is written");
    assert.equal(await podman.calls(), "", "nothing reloaded");

    await Deno.remove(`${ws.stateDir}/state.json`);
    const second = await runCli(syncArgs(ws, oci), { env: podman.env });
    assert.equal(second.code, 3, second.stderr);
    assert.equal(await exists(`${ws.root}/token`), true);
    assert.match(await podman.calls(), /kill --signal=HUP -- web/);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("an entry whose parent is a regular file fails alone; the others are written", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("a"));
    oci.setSecret(ID2, secretValue("b"));
    await Deno.writeTextFile(`${ws.root}/f`, "");
    await ws.writeMap([`${ID},${ws.root}/f/a,0600`, `${ID2},${ws.root}/b,0600`]);
    const result = await runCli(syncArgs(ws, oci));
    assertNoStackTrace(result.stderr);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`Refusing to write "${ws.root}/f/a": .* not a directory`),
    );
    assert.equal(await exists(`${ws.root}/b`), true, "the other entry is written");
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("the final state write failing is an error line and exit 1, never a stack trace", async (t) => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(ID, secretValue("a"));
    for (const json of [false, true]) {
      await t.step(`state.json is a directory${json ? ", --json" : ""}`, async () => {
        const ws = await makeWorkspace();
        try {
          await ws.writeMap([`${ID},${ws.root}/a,0600`]);
          await Deno.mkdir(`${ws.stateDir}/state.json`, { recursive: true, mode: 0o700 });
          await Deno.chmod(ws.stateDir, 0o700);
          const result = await runCli(syncArgs(ws, oci, ...(json ? ["--json"] : [])));
          assertNoStackTrace(result.stderr);
          assert.equal(result.code, 1, result.stderr);
          assert.equal(await exists(`${ws.root}/a`), true, "the entry itself was done");
          if (json) {
            const lines = result.stderr.trim().split("\n").map((line) => JSON.parse(line));
            assert.ok(lines.some((l) => l.event === "state_unwritable"), result.stderr);
          } else {
            assert.match(result.stderr, /\[ERROR\] \(state\) Cannot record this run in /);
          }
        } finally {
          await ws.cleanup();
        }
      });
    }
    await t.step({
      name: "the state directory's filesystem is full",
      ignore: Deno.uid() !== 0,
      fn: async () => {
        const ws = await makeWorkspace();
        await Deno.mkdir(ws.stateDir, { mode: 0o700 });
        const mounted = await new Deno.Command("mount", {
          args: ["-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", ws.stateDir],
        }).output();
        assert.ok(mounted.success, new TextDecoder().decode(mounted.stderr));
        try {
          await Deno.writeTextFile(`${ws.stateDir}/lock`, "");
          // Fill every block, so state.json's temp file cannot grow.
          await Deno.writeFile(`${ws.stateDir}/filler`, new Uint8Array(64 * 1024)).catch(() => {});
          await ws.writeMap([`${ID},${ws.root}/a,0600`]);
          const result = await runCli(syncArgs(ws, oci));
          assertNoStackTrace(result.stderr);
          assert.equal(result.code, 1, result.stderr);
          assert.match(result.stderr, /Cannot record this run in .*(space|ENOSPC)/i);
        } finally {
          await new Deno.Command("umount", { args: [ws.stateDir] }).output();
          await ws.cleanup();
        }
      },
    });
  } finally {
    await oci.close();
  }
});

Deno.test("the stale-temp clean-up never follows a symlinked directory out of the root", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("v"));
    await Deno.mkdir(`${ws.dir}/outside`);
    const bystander = `${ws.dir}/outside/.victim.secretsync-1-abc.tmp`;
    await Deno.writeTextFile(bystander, "not secretsync's");
    await Deno.symlink(`${ws.dir}/outside`, `${ws.root}/sub`);
    await ws.writeMap([`${ID},${ws.root}/sub/victim,0600`]);
    const result = await runCli(syncArgs(ws, oci));
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /is a symlink/);
    assert.equal(await Deno.readTextFile(bystander), "not secretsync's");
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a state directory inside a root is refused (exit 2) by check and sync", async (t) => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(ID, secretValue("v"));
    for (const where of ["inside the root", "the root itself", "inside it through a symlink"]) {
      await t.step(where, async () => {
        const ws = await makeWorkspace();
        try {
          await ws.writeMap([`${ID},${ws.root}/a,0600`]);
          let stateDir = where === "the root itself" ? ws.root : `${ws.root}/state`;
          if (where === "inside it through a symlink") {
            await Deno.symlink(ws.root, `${ws.dir}/link`);
            stateDir = `${ws.dir}/link/state`;
          }
          const base = ["--map", ws.map, "--root", ws.root, "--state-dir", stateDir];
          for (const command of ["check", "sync"]) {
            const args = command === "sync"
              ? ["sync", ...base, ...instancePrincipalArgs(oci)]
              : ["check", ...base];
            const result = await runCli(args);
            assert.equal(result.code, 2, `${command}: ${result.stderr}`);
            assert.match(result.stderr, /State directory ".*" cannot be inside root/);
          }
          assert.equal(oci.secretCalls(ID), 0, "nothing fetched");
          assert.equal(await exists(`${ws.root}/a`), false);
        } finally {
          await ws.cleanup();
        }
      });
    }
  } finally {
    await oci.close();
  }
});

Deno.test("a hard-linked file: setting its mode never changes the file outside the root", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const value = secretValue("linked");
    oci.setSecret(ID, value);
    const outside = `${ws.dir}/outside-file`;
    await Deno.writeTextFile(outside, value, { mode: 0o644 });
    await Deno.chmod(outside, 0o644);
    await Deno.link(outside, `${ws.root}/a`);
    await ws.writeMap([`${ID},${ws.root}/a,0600`]);
    const result = await runCli(syncArgs(ws, oci));
    assert.equal(result.code, 3, result.stderr);
    const outsideInfo = await Deno.stat(outside);
    assert.equal(outsideInfo.mode! & 0o777, 0o644, "the other link keeps its mode");
    assert.equal(await Deno.readTextFile(outside), value);
    const inside = await Deno.stat(`${ws.root}/a`);
    assert.equal(inside.mode! & 0o777, 0o600);
    assert.notEqual(inside.ino, outsideInfo.ino, "replaced by a fresh file");
    assert.equal(inside.nlink, 1);
    assert.equal(await Deno.readTextFile(`${ws.root}/a`), value);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("--dry-run exits as the real run would: 3 for a reload owed from an earlier run", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const podman = await fakePodman(ws);
    const value = secretValue("owed");
    oci.setSecret(ID, value);
    await Deno.writeTextFile(`${ws.root}/token`, value, { mode: 0o600 });
    await Deno.chmod(`${ws.root}/token`, 0o600);
    await Deno.mkdir(ws.stateDir, { mode: 0o700 });
    await Deno.writeTextFile(
      `${ws.stateDir}/state.json`,
      JSON.stringify({ version: 1, pendingReloads: [`${ws.root}/token`] }),
    );
    await ws.writeMap([`${ID},${ws.root}/token,0600,web,HUP`]);
    const dry = await runCli(syncArgs(ws, oci, "--dry-run"), { env: podman.env });
    assert.equal(dry.code, 3, dry.stderr);
    assert.match(dry.stdout, /Would reload web with signal HUP/);
    assert.equal(await podman.calls(), "", "a dry run reloads nothing");
    const real = await runCli(syncArgs(ws, oci), { env: podman.env });
    assert.equal(real.code, dry.code, real.stderr);
    assert.match(await podman.calls(), /kill --signal=HUP -- web/);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("SIGTERM or SIGINT mid-run: a log line, no partial write, the lock released, exit 1", async (t) => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    await t.step(signal, async () => {
      const oci = await startOciStandIn();
      const ws = await makeWorkspace();
      try {
        oci.setSecret(ID, secretValue("slow"));
        oci.setSecret(ID2, secretValue("fast"));
        oci.fault({ secretId: ID, path: "secrets" }, { delayMs: 8_000 });
        await ws.writeMap([`${ID},${ws.root}/slow,0600`, `${ID2},${ws.root}/fast,0600`]);
        const child = cli(syncArgs(ws, oci), { stdout: "piped", stderr: "piped" }).spawn();
        for (let i = 0; i < 400 && oci.secretCalls(ID) === 0; i++) {
          await new Promise((r) => setTimeout(r, 25));
        }
        assert.ok(oci.secretCalls(ID) > 0, "the run reached the slow fetch");
        const sent = Date.now();
        child.kill(signal);
        const output = await child.output();
        const stderr = new TextDecoder().decode(output.stderr);
        assert.ok(Date.now() - sent < 4_000, `took ${Date.now() - sent} ms to stop`);
        assertNoStackTrace(stderr);
        assert.equal(output.code, 1, stderr);
        assert.match(stderr, new RegExp(`\\[WARN\\] \\(run\\) Received ${signal}`));
        assert.equal(await exists(`${ws.root}/slow`), false);
        const names = [...Deno.readDirSync(ws.root)].map((e) => e.name);
        assert.ok(names.every((n) => !n.endsWith(".tmp")), `temp files left: ${names}`);
        const free = await new Deno.Command("flock", {
          args: ["-n", `${ws.stateDir}/lock`, "true"],
        })
          .output();
        assert.ok(free.success, "the lock is free");
        const state = JSON.parse(await Deno.readTextFile(`${ws.stateDir}/state.json`));
        assert.equal(state.lastRun.code, 1);
      } finally {
        await ws.cleanup();
        await oci.close();
      }
    });
  }
});

Deno.test("SIGTERM while waiting for another run's lock: a log line and exit 1 at once", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("v"));
    await ws.writeMap([`${ID},${ws.root}/a,0600`]);
    await Deno.mkdir(ws.stateDir, { mode: 0o700 });
    const holder = new Deno.Command("flock", { args: ["-o", `${ws.stateDir}/lock`, "sleep", "30"] })
      .spawn();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const child = cli(syncArgs(ws, oci, "--lock-timeout", "30"), {
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await new Promise((r) => setTimeout(r, 1_500));
      const sent = Date.now();
      child.kill("SIGTERM");
      const output = await child.output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.ok(Date.now() - sent < 3_000, `took ${Date.now() - sent} ms to stop`);
      assert.equal(output.code, 1, stderr);
      assert.match(stderr, /\[WARN\] \(run\) Received SIGTERM/);
      assert.equal(await exists(`${ws.root}/a`), false);
      assert.equal(oci.secretCalls(ID), 0);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
