/**
 * Path safety, ownership, a full tmpfs and the run lock, through the CLI.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaapaths";
const ID2 = "ocid1.vaultsecret.oc1.iad.amaaaaaapaths2";

Deno.test("symlinks at or above a target are refused and what they point at is untouched", async (t) => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(ID, secretValue("v"));
    for (const where of ["at the target", "between the root and the target"]) {
      await t.step(where, async () => {
        const ws = await makeWorkspace();
        try {
          await Deno.mkdir(`${ws.dir}/outside`);
          await Deno.writeTextFile(`${ws.dir}/outside/victim`, "precious");
          const path = where === "at the target" ? `${ws.root}/victim` : `${ws.root}/sub/victim`;
          if (where === "at the target") await Deno.symlink(`${ws.dir}/outside/victim`, path);
          else await Deno.symlink(`${ws.dir}/outside`, `${ws.root}/sub`);
          await ws.writeMap([`${ID},${path},0600`]);
          const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
          assert.equal(result.code, 1, result.stderr);
          assert.match(result.stderr, /Refusing to write .* is a symlink/);
          assert.equal(await Deno.readTextFile(`${ws.dir}/outside/victim`), "precious");
          assert.equal(((await Deno.stat(`${ws.dir}/outside/victim`)).mode ?? 0) & 0o777, 0o644);
        } finally {
          await ws.cleanup();
        }
      });
    }
  } finally {
    await oci.close();
  }
});

Deno.test("with many files in a directory (listed once, checked once) links are still refused", async (t) => {
  // Past a few files a directory is listed once instead of asking for each file, and each
  // directory is checked once per run: the planted links must be found all the same.
  const oci = await startOciStandIn();
  const ids = Array.from({ length: 8 }, (_, i) => `${ID}many${i}`);
  const values = ids.map((_, i) => secretValue(`v${i}`));
  try {
    ids.forEach((id, i) => oci.setSecret(id, values[i]));
    await t.step("at targets: a link, a dangling link, a directory; the rest written", async () => {
      const ws = await makeWorkspace();
      try {
        await Deno.mkdir(`${ws.dir}/outside`);
        await Deno.writeTextFile(`${ws.dir}/outside/victim`, "precious");
        await Deno.symlink(`${ws.dir}/outside/victim`, `${ws.root}/s1`);
        await Deno.symlink(`${ws.dir}/outside/nothing`, `${ws.root}/s2`);
        await Deno.mkdir(`${ws.root}/s3`);
        await ws.writeMap(ids.map((id, i) => `${id},${ws.root}/s${i},0600`));
        const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /Refusing to write "[^"]*\/s1": it is a symlink/);
        assert.match(result.stderr, /Refusing to write "[^"]*\/s2": it is a symlink/);
        assert.match(result.stderr, /Refusing to write "[^"]*\/s3": it is not a regular file/);
        assert.equal(await Deno.readTextFile(`${ws.dir}/outside/victim`), "precious");
        await assert.rejects(Deno.lstat(`${ws.dir}/outside/nothing`), Deno.errors.NotFound);
        for (const i of [0, 4, 5, 6, 7]) {
          assert.equal(await Deno.readTextFile(`${ws.root}/s${i}`), values[i]);
        }
      } finally {
        await ws.cleanup();
      }
    });
    await t.step(
      "a linked directory: every file in it refused, nothing written through it",
      async () => {
        const ws = await makeWorkspace();
        try {
          await Deno.mkdir(`${ws.dir}/outside`);
          await Deno.symlink(`${ws.dir}/outside`, `${ws.root}/sub`);
          await ws.writeMap(ids.map((id, i) => `${id},${ws.root}/sub/s${i},0600`));
          const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
          assert.equal(result.code, 1, result.stderr);
          const refusals = result.stderr.match(
            /Refusing to write "[^"]*": "[^"]*\/sub" is a symlink/g,
          );
          assert.equal(refusals?.length, ids.length, result.stderr);
          // Each file's line names that file, though its directory was checked once.
          for (const i of ids.keys()) {
            assert.match(
              result.stderr,
              new RegExp(`Cannot write [^\n]*/sub/s${i} [^\n]*Refusing to write "[^"]*/sub/s${i}"`),
            );
          }
          assert.deepEqual([...Deno.readDirSync(`${ws.dir}/outside`)], []);
        } finally {
          await ws.cleanup();
        }
      },
    );
  } finally {
    await oci.close();
  }
});

Deno.test("an unusable root is a usage error (exit 2) and nothing is fetched", async (t) => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(ID, secretValue("v"));
    const cases: [string, (ws: { dir: string; root: string }) => Promise<void>, RegExp][] = [
      ["missing", (ws) => Deno.remove(ws.root), /does not exist/],
      ["world-writable", (ws) => Deno.chmod(ws.root, 0o777), /lets group or others write/],
      ["a symlink", async (ws) => {
        await Deno.remove(ws.root);
        await Deno.mkdir(`${ws.dir}/real`, { mode: 0o700 });
        await Deno.symlink(`${ws.dir}/real`, ws.root);
      }, /not a directory/],
      ["owned by someone else", (ws) => Deno.chown(ws.root, 4242, 4242), /owned by uid 4242/],
    ];
    for (const [name, spoil, pattern] of cases) {
      await t.step(name, async () => {
        const ws = await makeWorkspace();
        try {
          await ws.writeMap([`${ID},${ws.root}/s,0600`]);
          await spoil(ws);
          const before = oci.calls.imds;
          const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
          assert.equal(result.code, 2, result.stderr);
          assert.match(result.stderr, pattern);
          assert.equal(oci.calls.imds, before, "nothing was fetched");
        } finally {
          await ws.cleanup();
        }
      });
    }
  } finally {
    await oci.close();
  }
});

Deno.test("owner and mode are applied; a change of them alone needs no reload", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("v"));
    // A container that does not exist: any reload attempt would fail the run with exit 1.
    const line = (mode: string, owner: string) =>
      `${ID},${ws.root}/s,${mode},no-such-container-x,HUP,${owner}`;
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman"];
    await ws.writeMap([line("0600", "1234:2345")]);
    assert.equal((await runCli(args)).code, 1, "the first write does try to reload");
    let info = await Deno.stat(`${ws.root}/s`);
    assert.deepEqual([info.uid, info.gid, info.mode! & 0o7777], [1234, 2345, 0o600]);
    const inode = info.ino;
    await Deno.remove(`${ws.stateDir}/state.json`); // forget the owed reload

    await ws.writeMap([line("0440", "3456:4567")]);
    const adjusted = await runCli(args);
    assert.equal(adjusted.code, 3, adjusted.stderr);
    assert.match(adjusted.stdout, /Set mode 0440 and owner 3456:4567 on /);
    assert.doesNotMatch(adjusted.stdout + adjusted.stderr, /reload/i);
    info = await Deno.stat(`${ws.root}/s`);
    assert.deepEqual([info.uid, info.gid, info.mode! & 0o7777, info.ino], [
      3456,
      4567,
      0o440,
      inode,
    ]);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a full tmpfs (ENOSPC) keeps the old file, removes the temp file, exits 1", {
  ignore: Deno.uid() !== 0,
}, async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", ws.root],
  }).output();
  assert.ok(mounted.success, new TextDecoder().decode(mounted.stderr));
  try {
    const [oldValue, newValue] = ["a".repeat(40_000), "b".repeat(40_000)];
    oci.setSecret(ID, oldValue);
    oci.setSecret(ID2, secretValue("small"));
    await ws.writeMap([`${ID},${ws.root}/big,0600`, `${ID2},${ws.root}/small,0600`]);
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci)];
    assert.equal((await runCli(args)).code, 3);
    oci.setSecret(ID, newValue); // old + temp = 80 KB > 64 KB
    const result = await runCli(args);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`Cannot write ${ws.root}/big from ${ID}: .*(space|ENOSPC)`, "i"),
    );
    assert.equal(await Deno.readTextFile(`${ws.root}/big`), oldValue);
    assert.deepEqual([...Deno.readDirSync(ws.root)].map((e) => e.name).sort(), ["big", "small"]);
  } finally {
    await new Deno.Command("umount", { args: [ws.root] }).output();
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a second run waits for the first, then gives up with exit 1", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("v"));
    await ws.writeMap([`${ID},${ws.root}/s,0600`]);
    await Deno.mkdir(ws.stateDir, { mode: 0o700 });
    // Hold the lock from another process, as a long first run would.
    const holder = new Deno.Command("flock", { args: ["-o", `${ws.stateDir}/lock`, "sleep", "30"] })
      .spawn();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const result = await runCli([
        "sync",
        ...ws.args(),
        ...instancePrincipalArgs(oci),
        "--lock-timeout",
        "1",
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /Another secretsync run has held .*lock/);
      assert.equal(oci.calls.imds, 0, "nothing was fetched");
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }
    const after = await runCli([
      "sync",
      ...ws.args(),
      ...instancePrincipalArgs(oci),
      "--lock-timeout",
      "1",
    ]);
    assert.equal(after.code, 3, after.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a state directory others can write to is refused (exit 2) before anything is fetched", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(ID, secretValue("v"));
    await ws.writeMap([`${ID},${ws.root}/s,0600`]);
    await Deno.mkdir(ws.stateDir);
    await Deno.chmod(ws.stateDir, 0o777);
    const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /State directory ".*" cannot be used: mode 0777 lets group or others write/,
    );
    assert.equal(oci.calls.imds, 0);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
