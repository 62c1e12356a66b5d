import assert from "node:assert/strict";
import { readUnits, renderAssetsModule, syncAssets, UNIT_NAMES } from "../../scripts/assets.ts";
import { REPO_ROOT } from "../../scripts/permissions.ts";
import { UNIT_NAMES as EMBEDDED_NAMES, UNITS } from "../../src/assets.ts";

Deno.test("src/assets.ts is up to date with systemd/", async () => {
  const current = await syncAssets({ root: REPO_ROOT });
  assert.ok(
    current,
    "src/assets.ts differs from systemd/: run " +
      "`deno run --allow-read=. --allow-write=src/assets.ts scripts/assets.ts`",
  );
  assert.deepEqual([...EMBEDDED_NAMES], [...UNIT_NAMES]);
  assert.deepEqual({ ...UNITS }, await readUnits(REPO_ROOT));
});

Deno.test("renderAssetsModule() keeps backslashes, backticks and ${ exact", async () => {
  const tricky = "ExecStart=/bin/sh -c 'echo `date` ${HOME} \\\\n %h'\n\n";
  const units = Object.fromEntries(UNIT_NAMES.map((name) => [name, `${name}\n${tricky}`]));
  const source = renderAssetsModule(units);
  const module = await import(`data:application/typescript,${encodeURIComponent(source)}`);
  assert.deepEqual(module.UNITS, units);
  assert.deepEqual(module.UNIT_NAMES, [...UNIT_NAMES]);
});
