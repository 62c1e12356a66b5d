import assert from "node:assert/strict";
import {
  applyAttributes,
  atomicWrite,
  ensureParent,
  fileChange,
  removeStaleTempFiles,
  syncDirectory,
  TEMP_FILE,
  UnsafePathError,
} from "../src/write.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (s: string) => new TextEncoder().encode(s);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-write-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const item of Deno.readDir(dir)) found.push(item.name);
  return found.sort();
}

Deno.test("atomicWrite() writes exact bytes: NUL, 0xff and trailing newlines survive", () =>
  withDir(async (dir) => {
    const value = bytes(0, 0xff, 0x41, 0x0a, 0x0a, 0);
    await atomicWrite(`${dir}/s`, value, { mode: 0o600 });
    assert.deepEqual(await Deno.readFile(`${dir}/s`), value);
    assert.deepEqual(await names(dir), ["s"], "no temp file is left behind");
  }));

Deno.test("atomicWrite() sets the exact mode whatever the umask", () =>
  withDir(async (dir) => {
    const previous = Deno.umask(0o077);
    try {
      await atomicWrite(`${dir}/a`, text("x"), { mode: 0o440 });
      await atomicWrite(`${dir}/b`, text("x"), { mode: 0o644 });
    } finally {
      Deno.umask(previous);
    }
    assert.equal((await Deno.stat(`${dir}/a`)).mode! & 0o7777, 0o440);
    assert.equal((await Deno.stat(`${dir}/b`)).mode! & 0o7777, 0o644);
  }));

Deno.test("atomicWrite() replaces the file with a new inode, so readers see old or new", () =>
  withDir(async (dir) => {
    await atomicWrite(`${dir}/s`, text("old"), { mode: 0o600 });
    const before = (await Deno.stat(`${dir}/s`)).ino;
    await atomicWrite(`${dir}/s`, text("new"), { mode: 0o600 });
    assert.notEqual((await Deno.stat(`${dir}/s`)).ino, before);
    assert.equal(await Deno.readTextFile(`${dir}/s`), "new");
  }));

Deno.test("atomicWrite() leaves the old file and no temp file when the write fails", () =>
  withDir(async (dir) => {
    await atomicWrite(`${dir}/s`, text("old"), { mode: 0o600 });
    // A directory cannot be renamed over: the last step fails after the temp file was written.
    await Deno.mkdir(`${dir}/d`);
    await Deno.writeTextFile(`${dir}/d/keep`, "");
    await assert.rejects(() => atomicWrite(`${dir}/d`, text("new"), { mode: 0o600 }));
    assert.equal(await Deno.readTextFile(`${dir}/s`), "old");
    assert.deepEqual(await names(dir), ["d", "s"]);
  }));

Deno.test("fileChange() tells content, metadata and no change apart", async (t) => {
  await withDir(async (dir) => {
    const path = `${dir}/s`;
    await t.step("a missing file is a content change", async () => {
      assert.equal(await fileChange(path, text("v1"), { mode: 0o600 }), "content");
    });
    await atomicWrite(path, text("v1"), { mode: 0o600 });
    const inode = (await Deno.stat(path)).ino;
    await t.step("equal bytes and mode: none, and the file is not touched", async () => {
      assert.equal(await fileChange(path, text("v1"), { mode: 0o600 }), "none");
      assert.equal((await Deno.stat(path)).ino, inode);
    });
    await t.step("other bytes of the same length: content", async () => {
      assert.equal(await fileChange(path, text("v2"), { mode: 0o600 }), "content");
    });
    await t.step("a trailing newline more: content", async () => {
      assert.equal(await fileChange(path, text("v1\n"), { mode: 0o600 }), "content");
    });
    await t.step("only the mode differs: metadata", async () => {
      assert.equal(await fileChange(path, text("v1"), { mode: 0o400 }), "metadata");
    });
    await t.step("only the owner differs: metadata", async () => {
      const { uid, gid } = await Deno.stat(path);
      assert.equal(
        await fileChange(path, text("v1"), { mode: 0o600, owner: { uid: uid!, gid: gid! } }),
        "none",
      );
      assert.equal(
        await fileChange(path, text("v1"), { mode: 0o600, owner: { uid: uid! + 1, gid: gid! } }),
        "metadata",
      );
    });
    await t.step("applyAttributes() fixes the mode in place, same inode", async () => {
      await applyAttributes(path, { mode: 0o400 });
      assert.equal((await Deno.stat(path)).ino, inode);
      assert.equal(await fileChange(path, text("v1"), { mode: 0o400 }), "none");
    });
  });
});

Deno.test("fileChange() refuses a symlink at the target and leaves its target alone", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/victim`, "precious");
    await Deno.symlink(`${dir}/victim`, `${dir}/s`);
    await assert.rejects(() => fileChange(`${dir}/s`, text("x"), { mode: 0o600 }), UnsafePathError);
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "precious");
  }));

Deno.test("ensureParent() creates missing directories 0700 and refuses symlinks on the way", () =>
  withDir(async (dir) => {
    assert.equal(await ensureParent(`${dir}/a/b/s`, dir, { create: false }), false);
    assert.deepEqual(await names(dir), [], "without create nothing is made");
    assert.equal(await ensureParent(`${dir}/a/b/s`, dir), true);
    assert.equal((await Deno.stat(`${dir}/a/b`)).mode! & 0o777, 0o700);
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/link`);
    await assert.rejects(() => ensureParent(`${dir}/link/s`, dir), UnsafePathError);
    await assert.rejects(
      () => ensureParent(`${dir}/link/deeper/s`, dir),
      /"[^"]*\/link" is a symlink/,
    );
    assert.deepEqual(await names(`${dir}/elsewhere`), []);
  }));

Deno.test("ensureParent() called concurrently for one missing directory creates it once", () =>
  withDir(async (dir) => {
    // Sixteen writers into two new directories under one new parent, all at once.
    const paths = Array.from({ length: 16 }, (_, i) => `${dir}/new/d${i % 2}/s${i}`);
    const made = await Promise.all(paths.map((p) => ensureParent(p, dir)));
    assert.deepEqual(made, paths.map(() => true));
    assert.deepEqual(await names(`${dir}/new`), ["d0", "d1"]);
    // A concurrent writer finding a symlink where the directory should be still refuses it.
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/new/link`);
    await assert.rejects(() => ensureParent(`${dir}/new/link/s`, dir), UnsafePathError);
  }));

Deno.test("atomicWrite() with syncDirectory: false still replaces the file atomically", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/s`, "old");
    await atomicWrite(`${dir}/s`, text("new"), { mode: 0o600 }, { syncDirectory: false });
    await syncDirectory(dir);
    assert.equal(await Deno.readTextFile(`${dir}/s`), "new");
    assert.deepEqual(await names(dir), ["s"]);
  }));

Deno.test("removeStaleTempFiles() removes only secretsync temp files", () =>
  withDir(async (dir) => {
    const stale = ".db.secretsync-1234-abc12.tmp";
    assert.match(stale, TEMP_FILE);
    for (const name of [stale, "db", ".db", "x.tmp"]) {
      await Deno.writeTextFile(`${dir}/${name}`, "");
    }
    assert.deepEqual(await removeStaleTempFiles(dir), [`${dir}/${stale}`]);
    assert.deepEqual(await names(dir), [".db", "db", "x.tmp"]);
  }));
