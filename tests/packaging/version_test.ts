import assert from "node:assert/strict";
import { gitCommit, stampCommit } from "../../scripts/compile.ts";
import { cliCommand, REPO_ROOT } from "../../scripts/permissions.ts";
import { COMMIT, VERSION, versionText } from "../../src/version.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("secretsync --version from a checkout says the commit is unknown", async () => {
  for (const flag of ["--version", "-V"]) {
    const { code, stdout, stderr } = await cliCommand([flag]).output();
    assert.equal(code, 0, decode(stderr));
    assert.equal(decode(stdout), `secretsync ${VERSION} (commit unknown)\n`);
    assert.equal(decode(stderr), "");
  }
});

Deno.test("versionText() names the version and the commit", () => {
  assert.equal(COMMIT, "unknown", "only a build copy of src/version.ts holds a commit");
  assert.equal(versionText(), `secretsync ${VERSION} (commit unknown)`);
});

Deno.test("VERSION matches deno.json's version", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`));
  assert.equal(VERSION, config.version);
});

Deno.test("stampCommit() replaces the COMMIT constant and nothing else", async () => {
  const source = await Deno.readTextFile(`${REPO_ROOT}/src/version.ts`);
  const stamped = stampCommit(source, "0123456789ab-dirty");
  assert.match(stamped, /^export const COMMIT: string = "0123456789ab-dirty";$/m);
  const changed = stamped.split("\n").filter((line, i) => line !== source.split("\n")[i]);
  assert.equal(changed.length, 1);
  assert.throws(() => stampCommit("export const COMMIT = 1;", "abc"), /no line/);
  assert.throws(() => stampCommit(source, 'x"; evil()'), /Cannot stamp/);
});

Deno.test("gitCommit() is a short hash, -dirty with local changes, or unknown outside git", async () => {
  assert.match(await gitCommit(REPO_ROOT), /^([0-9a-f]{12}(-dirty)?|unknown)$/);
  const dir = await Deno.makeTempDir({ prefix: "secretsync-nogit-" });
  try {
    assert.equal(await gitCommit(dir), "unknown");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
