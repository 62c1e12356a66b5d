/**
 * The map file itself, through `secretsync check` (no network): who may own and write it, what
 * kind of file it is, how large it is, and how many of its problems are printed.
 */
import assert from "node:assert/strict";
import { makeWorkspace, runCli, type Workspace } from "./harness.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaamapfile";

Deno.test("issue 8 #9 #13: an unsafe or unusual map is refused with exit 2 and a reason", async (t) => {
  const cases: [string, (ws: Workspace) => Promise<void>, RegExp][] = [
    ["group-writable", (ws) => Deno.chmod(ws.map, 0o664), /mode 0664 lets group or others write/],
    ["world-writable", (ws) => Deno.chmod(ws.map, 0o646), /mode 0646 lets group or others write/],
    [
      "owned by another user",
      (ws) => Deno.chown(ws.map, 4242, 4242),
      /owned by uid 4242, not by (root or )?uid \d+/,
    ],
    ["a FIFO", async (ws) => {
      await Deno.remove(ws.map);
      const made = await new Deno.Command("mkfifo", { args: [ws.map] }).output();
      assert.equal(made.code, 0);
    }, /is a device, FIFO or socket, not a regular file/],
    ["a symlink to /dev/zero", async (ws) => {
      await Deno.remove(ws.map);
      await Deno.symlink("/dev/zero", ws.map);
    }, /is a device, FIFO or socket, not a regular file/],
    ["a directory", async (ws) => {
      await Deno.remove(ws.map);
      await Deno.mkdir(ws.map);
    }, /is a directory, not a regular file/],
    ["larger than the cap", async (ws) => {
      await Deno.truncate(ws.map, (8 << 20) + 1);
    }, /larger than the 8388608 bytes allowed/],
  ];
  // The runs go in parallel (each is a subprocess); the steps then check them one by one.
  const results = await Promise.all(cases.map(async ([, spoil]) => {
    const ws = await makeWorkspace();
    try {
      await ws.writeMap([`${ID},${ws.root}/a,0600`]);
      await spoil(ws);
      const started = Date.now();
      const result = await runCli(["check", "--map", ws.map, "--root", ws.root], {
        env: { NO_COLOR: "1" },
      });
      return { ...result, ms: Date.now() - started };
    } finally {
      await ws.cleanup();
    }
  }));
  for (const [i, [name, , pattern]] of cases.entries()) {
    await t.step(name, () => {
      const result = results[i];
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /\[ERROR\] \(map\) Cannot use map .*map\.csv: /);
      assert.match(result.stderr, pattern);
      assert.ok(result.ms < 10_000, "refused quickly, without reading");
    });
  }
});

Deno.test("issue 8 #13: a map with many bad lines prints 20 of them, then how many more", async () => {
  const ws = await makeWorkspace();
  try {
    await ws.writeMap(Array.from({ length: 1000 }, (_, i) => `bad${i},${ws.root}/s${i},0600`));
    const result = await runCli(["check", "--map", ws.map, "--root", ws.root]);
    assert.equal(result.code, 2);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 21, result.stderr);
    assert.match(lines[0], /line 1: "bad0" is not a secret OCID/);
    assert.match(lines[20], /^\[ERROR\] \(map\) … and 980 more problems in map /);
    const json = await runCli(["check", "--json", "--map", ws.map, "--root", ws.root]);
    const last = JSON.parse(json.stderr.trim().split("\n").at(-1)!);
    assert.equal(last.event, "map_invalid_more");
    assert.equal(last.more, 980);
  } finally {
    await ws.cleanup();
  }
});

Deno.test("issue 8 #9: a map owned by the running user (or root), mode 0644 or 0600, is accepted", async () => {
  const ws = await makeWorkspace();
  try {
    await ws.writeMap([`${ID},${ws.root}/a,0600`]);
    for (const mode of [0o644, 0o600, 0o400]) {
      await Deno.chmod(ws.map, mode);
      const result = await runCli(["check", "--map", ws.map, "--root", ws.root]);
      assert.equal(result.code, 0, result.stderr);
    }
  } finally {
    await ws.cleanup();
  }
});
