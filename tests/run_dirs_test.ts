/**
 * What one sync learns of its directories (src/run_dirs.ts): listings that spare failing
 * lookups, and a check per directory per run, on real directories.
 */
import assert from "node:assert/strict";
import { RunDirectories } from "../src/run_dirs.ts";
import { UnsafePathError } from "../src/write.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("knownAbsent(): a directory of several files is listed once; present names are not absent", () =>
  withDir(async (dir) => {
    const paths = Array.from({ length: 6 }, (_, i) => `${dir}/s${i}`);
    await Deno.writeTextFile(paths[1], "x");
    await Deno.symlink("/nowhere", paths[2]); // a dangling link is there too
    await Deno.mkdir(paths[3]);
    const dirs = new RunDirectories(paths);
    assert.deepEqual(paths.map((p) => dirs.knownAbsent(p)), [
      true,
      false,
      false,
      false,
      true,
      true,
    ]);
    // The listing is this run's: a file made afterwards is still "absent" to it (the write's
    // rename replaces whatever is there without following it); a new run sees the file.
    await Deno.writeTextFile(paths[0], "y");
    assert.equal(dirs.knownAbsent(paths[0]), true);
    assert.equal(new RunDirectories(paths).knownAbsent(paths[0]), false);
  }));

Deno.test("knownAbsent(): never true for a directory of few files, a crowded one or a missing one", () =>
  withDir(async (dir) => {
    const few = [`${dir}/a`, `${dir}/b`, `${dir}/c`];
    assert.deepEqual(few.map((p) => new RunDirectories(few).knownAbsent(p)), [false, false, false]);

    await Deno.mkdir(`${dir}/crowded`);
    for (let i = 0; i < 30; i++) await Deno.writeTextFile(`${dir}/crowded/other${i}`, "");
    const crowded = Array.from({ length: 5 }, (_, i) => `${dir}/crowded/s${i}`);
    assert(crowded.every((p) => !new RunDirectories(crowded).knownAbsent(p)));

    const missing = Array.from({ length: 5 }, (_, i) => `${dir}/missing/s${i}`);
    assert(missing.every((p) => !new RunDirectories(missing).knownAbsent(p)));
  }));

Deno.test("parentReady(): each directory is checked once per run, and its refusal holds for every file in it", () =>
  withDir(async (dir) => {
    const root = `${dir}/root`;
    await Deno.mkdir(`${root}/sub`, { recursive: true });
    const dirs = new RunDirectories([`${root}/sub/a`, `${root}/sub/b`]);
    assert.equal(await dirs.parentReady(`${root}/sub/a`, root, { create: false }), true);
    // The answer is the run's: the check guards against links planted before it.
    await Deno.remove(`${root}/sub`);
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.symlink(`${dir}/elsewhere`, `${root}/sub`);
    assert.equal(await dirs.parentReady(`${root}/sub/b`, root, { create: false }), true);

    const next = new RunDirectories([`${root}/sub/a`, `${root}/sub/b`]);
    for (const file of ["a", "b"]) {
      // Each file's refusal names that file (not the first one the directory was checked for).
      await assert.rejects(
        next.parentReady(`${root}/sub/${file}`, root, { create: true }),
        (e) =>
          e instanceof UnsafePathError &&
          e.message === `Refusing to write "${root}/sub/${file}": "${root}/sub" is a symlink`,
      );
    }
    // At once too (as the writes ask): each waits for the check and still gets its own refusal.
    const together = new RunDirectories([`${root}/sub/c`, `${root}/sub/d`]);
    const refusals = await Promise.all(
      ["c", "d"].map((file) =>
        together.parentReady(`${root}/sub/${file}`, root, { create: false }).then(
          () => "",
          (e: Error) => e.message,
        )
      ),
    );
    assert.deepEqual(refusals, [
      `Refusing to write "${root}/sub/c": "${root}/sub" is a symlink`,
      `Refusing to write "${root}/sub/d": "${root}/sub" is a symlink`,
    ]);
    // A missing directory is made once, by the first write that needs it.
    const made = new RunDirectories([`${root}/new/a`, `${root}/new/b`]);
    assert.equal(await made.parentReady(`${root}/new/a`, root, { create: false }), false);
    assert.equal(await made.parentReady(`${root}/new/a`, root, { create: true }), true);
    assert.equal(await made.parentReady(`${root}/new/b`, root, { create: true }), true);
    assert.equal(((await Deno.lstat(`${root}/new`)).mode ?? 0) & 0o777, 0o700);
  }));
