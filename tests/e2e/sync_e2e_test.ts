/**
 * `secretsync sync` and `check` as subprocesses against the OCI stand-in, which verifies every
 * request's signature the way OCI does.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import {
  assertNoLeak,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
} from "./harness.ts";

const DB = "ocid1.vaultsecret.oc1.iad.amaaaaaadbpass";
const API = "ocid1.vaultsecret.oc1.iad.amaaaaaaapikey";
const BIN = "ocid1.vaultsecret.oc1.iad.amaaaaaabinary";

Deno.test("sync writes every secret, then does nothing, then rewrites only what rotated", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const values = [secretValue("db"), secretValue("api"), secretValue("db2")];
  try {
    oci.setSecret(DB, values[0]);
    oci.setSecret(API, values[1]);
    await ws.writeMap([
      "# ocid,path,mode,container,signal",
      `${DB},${ws.root}/db_password,0600,,`,
      `${API},${ws.root}/app/api_key,0440,,`,
      `${DB},${ws.root}/copy_of_db,0400,,`,
    ]);
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci)];

    const first = await runCli(args);
    assert.equal(first.code, 3, first.stderr);
    assert.equal(await Deno.readTextFile(`${ws.root}/db_password`), values[0]);
    assert.equal(await Deno.readTextFile(`${ws.root}/app/api_key`), values[1]);
    assert.equal(await Deno.readTextFile(`${ws.root}/copy_of_db`), values[0]);
    assert.equal((await Deno.stat(`${ws.root}/app/api_key`)).mode! & 0o7777, 0o440);
    assert.equal((await Deno.stat(`${ws.root}/copy_of_db`)).mode! & 0o7777, 0o400);
    assert.equal((await Deno.stat(`${ws.root}/app`)).mode! & 0o7777, 0o700);
    assert.match(
      first.stdout,
      new RegExp(`Updated ${ws.root}/db_password from ${DB} \\(version 1\\)`),
    );
    assert.equal(oci.calls.secrets.get(DB), 1, "one OCID written to two paths is fetched once");
    assert.equal(oci.calls.federation, 1, "one token for the whole run");

    const inode = (await Deno.stat(`${ws.root}/db_password`)).ino;
    const second = await runCli(args);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, "");
    assert.equal(
      (await Deno.stat(`${ws.root}/db_password`)).ino,
      inode,
      "an equal file is not touched",
    );

    assert.equal(oci.setSecret(DB, values[2]), 2);
    const third = await runCli(args);
    assert.equal(third.code, 3, third.stderr);
    assert.equal(await Deno.readTextFile(`${ws.root}/db_password`), values[2]);
    assert.match(third.stdout, /\(version 2\)/);
    assert.doesNotMatch(third.stdout, /api_key/, "an unchanged secret is not rewritten");
    assert.equal(oci.calls.rejected, 0, "every request the SDK made was correctly signed");
    assertNoLeak(values, first.stdout, first.stderr, second.stderr, third.stdout, third.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("sync with an API key from an OCI config file", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const value = secretValue("api");
    oci.setSecret(API, value);
    const { configFile, profile } = await oci.writeApiKeyConfig(ws.dir);
    await ws.writeMap([`${API},${ws.root}/api_key,0600`]);
    const result = await runCli([
      "sync",
      ...ws.args(),
      "--auth",
      "api_key",
      "--oci-config",
      configFile,
      "--profile",
      profile,
      "--endpoint",
      oci.secretsEndpoint,
    ]);
    assert.equal(result.code, 3, result.stderr);
    assert.equal(await Deno.readTextFile(`${ws.root}/api_key`), value);
    assert.equal(oci.calls.imds, 0, "API-key auth never asks instance metadata");
    assert.equal(oci.calls.rejected, 0);
    assertNoLeak([value], result.stdout, result.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("sync keeps binary secrets byte for byte (NUL, 0xff, trailing newlines)", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const bytes = new Uint8Array([0, 0xff, 0xfe, 0x41, 0, 0x0a, 0x0a]);
    oci.setSecret(BIN, bytes);
    await ws.writeMap([`${BIN},${ws.root}/blob,0600`]);
    const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 3, result.stderr);
    assert.deepEqual(await Deno.readFile(`${ws.root}/blob`), bytes);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a bad map exits 2 naming every bad line, and nothing is fetched or written", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(DB, secretValue("db"));
    await ws.writeMap([
      `${DB},${ws.root}/ok,0600`,
      `${DB},/etc/passwd,0600`,
      `# fine`,
      `${DB},${ws.root}/b,0666`,
      `${DB},${ws.root}/c,0600,--rm,HUP`,
    ]);
    for (const command of ["sync", "check"]) {
      const args = command === "sync"
        ? [...ws.args(), ...instancePrincipalArgs(oci)]
        : ws.args().slice(0, 4);
      const result = await runCli([command, ...args]);
      assert.equal(result.code, 2, `${command}: ${result.stderr}`);
      assert.match(result.stderr, /line 2: path "\/etc\/passwd" is not inside/);
      assert.match(result.stderr, /line 4: mode "0666" must not be group- or world-writable/);
      assert.match(result.stderr, /line 5: container "--rm" is not a valid container name/);
      assert.doesNotMatch(result.stderr, /line [13]:/);
      assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
    }
    assert.equal(oci.calls.imds + oci.calls.federation + [...oci.calls.secrets.values()].length, 0);
    assert.deepEqual([...Deno.readDirSync(ws.root)], []);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a failing secret leaves its old file; the others still sync; exit 1 names the OCID", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const [oldDb, newDb, api] = [secretValue("db-old"), secretValue("db-new"), secretValue("api")];
    oci.setSecret(DB, oldDb);
    oci.setSecret(API, api);
    await ws.writeMap([`${DB},${ws.root}/db,0600`, `${API},${ws.root}/api,0600`]);
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci)];
    assert.equal((await runCli(args)).code, 3);

    oci.setSecret(DB, newDb);
    oci.setSecret(API, secretValue("api2"));
    oci.fault({ secretId: DB }, { status: 404, code: "NotAuthorizedOrNotFound" });
    const result = await runCli(args);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(await Deno.readTextFile(`${ws.root}/db`), oldDb, "the old file is untouched");
    assert.notEqual(
      await Deno.readTextFile(`${ws.root}/api`),
      api,
      "the other secret still synced",
    );
    assert.match(result.stderr, new RegExp(`Cannot fetch ${DB}: .*404`));
    assertNoLeak([oldDb, newDb], result.stdout, result.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("--dry-run fetches and compares but writes nothing, and exits as a real run would", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(DB, secretValue("db"));
    await ws.writeMap([`${DB},${ws.root}/sub/db,0600,web,HUP`]);
    const result = await runCli(["sync", "--dry-run", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stdout, /Would update .*\/sub\/db from .* \(version 1\)/);
    assert.match(result.stdout, /Would reload web with signal HUP/);
    assert.deepEqual([...Deno.readDirSync(ws.root)], [], "not even the directory is created");
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("--json prints one JSON object per line", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(DB, secretValue("db"));
    await ws.writeMap([`${DB},${ws.root}/db,0600`]);
    const result = await runCli(["sync", "--json", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 3, result.stderr);
    const lines = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(
      lines.map(({ level, event, path, secretId, version }) => ({
        level,
        event,
        path,
        secretId,
        version,
      })),
      [{ level: "info", event: "updated", path: `${ws.root}/db`, secretId: DB, version: 1 }],
    );
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("--stage PREVIOUS and a version number fetch older versions", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const [v1, v2] = [secretValue("v1"), secretValue("v2")];
    oci.setSecret(DB, v1);
    oci.setSecret(DB, v2);
    await ws.writeMap([`${DB},${ws.root}/db,0600`]);
    const base = ["sync", ...ws.args(), ...instancePrincipalArgs(oci)];
    assert.equal((await runCli([...base, "--stage", "PREVIOUS"])).code, 3);
    assert.equal(await Deno.readTextFile(`${ws.root}/db`), v1);
    assert.equal((await runCli([...base, "--stage", "2"])).code, 3);
    assert.equal(await Deno.readTextFile(`${ws.root}/db`), v2);
    assert.equal((await runCli([...base, "--stage", "CURRENT"])).code, 0);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("usage errors exit 2 with a message, help and version exit 0", async (t) => {
  for (
    const [args, pattern] of [
      [["sync", "--concurrency", "0"], /--concurrency must be at least 1/],
      [["sync", "--stage", "NEWEST"], /--stage "NEWEST" must be/],
      [
        ["sync", "--auth", "password"],
        /--auth must be instance_principal, api_key, security_token or resource_principal/,
      ],
      [["sync", "--root", "relative/dir"], /--root "relative\/dir" must be an absolute/],
      [["sync", "--bogus"], /unknown option '--bogus'/],
      [["frobnicate"], /unknown command 'frobnicate'/],
    ] as [string[], RegExp][]
  ) {
    await t.step(args.join(" "), async () => {
      const result = await runCli(args);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, pattern);
    });
  }
  await t.step("--help and --version", async () => {
    const help = await runCli(["sync", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--dry-run/);
    const version = await runCli(["--version"]);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^secretsync \d+\.\d+\.\d+/);
  });
});

Deno.test("a map with only comments syncs nothing and never contacts OCI (exit 0)", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    await ws.writeMap(["# nothing here yet", "", "ocid,path,mode,container,signal"]);
    // A trailing slash on --root names the same directory.
    const args = ["--map", ws.map, "--root", `${ws.root}/`, "--state-dir", ws.stateDir];
    const result = await runCli(["sync", ...args, ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout + result.stderr, "");
    assert.equal(oci.calls.imds + oci.calls.federation, 0);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
