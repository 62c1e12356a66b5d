/**
 * Map references end to end: secrets by name (GetSecretBundleByName), a stage or version per
 * line, and keys of JSON secrets, through the CLI against the OCI stand-in.
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

const DB = "ocid1.vaultsecret.oc1.iad.amaaaaaarefdb";
const CREDS = "ocid1.vaultsecret.oc1.iad.amaaaaaarefcreds";
const PLAIN = "ocid1.vaultsecret.oc1.iad.amaaaaaarefplain";
const ARRAY = "ocid1.vaultsecret.oc1.iad.amaaaaaarefarray";

Deno.test("references by name, per-line version and JSON keys, each fetched once", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const v1 = secretValue("db-v1");
    const v2 = secretValue("db-v2");
    const password = `p "w" ${secretValue("pw")}\n`;
    oci.setSecret(DB, v1, { name: "db-password" });
    oci.setSecret(DB, v2, { name: "db-password", stage: "PENDING" });
    oci.setSecret(
      CREDS,
      JSON.stringify({
        username: "app",
        password,
        db: { host: "db.internal", port: 5432, "tls.crt": "CERT" },
        "a.b": "dotted",
      }),
    );
    const vault = oci.vaultId;
    const r = ws.root;
    await ws.writeMap([
      `name:db-password@${vault},${r}/by_name,0600`,
      `name:db-password@${vault}?stage=PENDING,${r}/by_name_pending,0600`,
      `${DB}?stage=pending,${r}/pending,0600`,
      `${DB}?version=1,${r}/v1,0600`,
      `${DB},${r}/current,0600`,
      `${DB}?stage=CURRENT,${r}/current_again,0600`,
      `${CREDS}#password,${r}/password,0600`,
      `${CREDS}#username,${r}/username,0600`,
      `${CREDS}#db.port,${r}/port,0600`,
      `${CREDS}#db.tls\\.crt,${r}/crt,0600`,
      `${CREDS}#a\\.b,${r}/dotted,0600`,
      `${CREDS}#db,${r}/db.json,0600`,
      `name:nothing-here@${vault},${r}/missing_name,0600`,
    ]);
    await Deno.writeTextFile(`${r}/missing_name`, "old");
    const check = await runCli(["check", "--map", ws.map, "--root", r]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /13 files, 8 secrets/);

    const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 1, result.stderr);
    const read = (name: string) => Deno.readTextFile(`${r}/${name}`);
    assert.equal(await read("by_name"), v1);
    assert.equal(await read("by_name_pending"), v2);
    assert.equal(await read("pending"), v2);
    assert.equal(await read("v1"), v1);
    assert.equal(await read("current"), v1);
    assert.equal(await read("current_again"), v1);
    assert.equal(await read("password"), password, "a string value is written as is");
    assert.equal(await read("username"), "app");
    assert.equal(await read("port"), "5432", "other values are written as JSON");
    assert.equal(await read("crt"), "CERT");
    assert.equal(await read("dotted"), "dotted");
    assert.deepEqual(JSON.parse(await read("db.json")), {
      host: "db.internal",
      port: 5432,
      "tls.crt": "CERT",
    });
    assert.equal(
      await read("missing_name"),
      "old",
      "a name that resolves to nothing keeps the file",
    );
    assert.match(
      result.stderr,
      new RegExp(`no secret named "nothing-here" in vault ${vault.replaceAll(".", "\\.")}`),
    );

    // DB by OCID: CURRENT (shared by two lines), PENDING, version 1; by name: CURRENT, PENDING.
    assert.equal(oci.secretCalls(DB), 5, oci.calls.log.join("\n"));
    assert.equal(oci.secretCalls(CREDS), 1, "six keys of one secret: one fetch");
    assert.equal(oci.calls.rejected, 0);
    assert.match(
      result.stdout,
      new RegExp(`Updated ${r}/port from ${CREDS}#db\\.port \\(version 1\\)`),
    );
    assertNoLeak([v1, v2, password.trim(), "CERT"], result.stdout, result.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a missing key or a secret that is not a JSON object fails that entry only", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const plain = secretValue("plain");
    oci.setSecret(CREDS, JSON.stringify({ password: "pw", nested: { a: 1 } }));
    oci.setSecret(PLAIN, plain);
    oci.setSecret(ARRAY, JSON.stringify(["a", "b"]));
    const r = ws.root;
    await ws.writeMap([
      `${CREDS}#nope,${r}/nope,0600`,
      `${CREDS}#nested.a.b,${r}/deep,0600`,
      `${PLAIN}#password,${r}/plain,0600`,
      `${ARRAY}#0,${r}/array,0600`,
      `${CREDS}#password,${r}/ok,0600`,
    ]);
    for (const name of ["nope", "deep", "plain", "array"]) {
      await Deno.writeTextFile(`${r}/${name}`, "old");
    }
    const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(await Deno.readTextFile(`${r}/ok`), "pw");
    for (const name of ["nope", "deep", "plain", "array"]) {
      assert.equal(await Deno.readTextFile(`${r}/${name}`), "old", `${name} keeps its old file`);
    }
    assert.match(result.stderr, /Cannot write .*\/nope from .*#nope: the secret has no key "nope"/);
    assert.match(result.stderr, /key "nested\.a" is not an object, so it has no "nested\.a\.b"/);
    assert.match(
      result.stderr,
      /\/plain from .*: the secret is not JSON, so it has no key "password"/,
    );
    assert.match(result.stderr, /\/array from .*: the secret is JSON but not an object/);
    assertNoLeak([plain], result.stdout, result.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("check names every bad reference with its line, offline", async () => {
  const ws = await makeWorkspace();
  try {
    const r = ws.root;
    await ws.writeMap([
      `${DB}?stage=SOMETIME,${r}/a,0600`,
      `${DB}?version=0,${r}/b,0600`,
      `${DB}?verison=2,${r}/c,0600`,
      `${DB}#,${r}/d,0600`,
      `${DB}#a..b,${r}/e,0600`,
      `name:db@ocid1.vaultsecret.oc1.iad.aaaa,${r}/f,0600`,
      `name:db,${r}/g,0600`,
      `name:bad name@ocid1.vault.oc1.iad.aaaa,${r}/h,0600`,
      `${DB}#x\\y,${r}/i,0600`,
      `${DB}?stage=PENDING#ok,${r}/fine,0600`,
    ]);
    const result = await runCli(["check", "--map", ws.map, "--root", r]);
    assert.equal(result.code, 2);
    const expect = [
      /line 1: stage "SOMETIME" must be one of CURRENT, PENDING/,
      /line 2: version "0" must be a positive whole number/,
      /line 3: "\?verison=2" must be \?stage=STAGE or \?version=N/,
      /line 4: key path "" has an empty key/,
      /line 5: key path "a\.\.b" has an empty key/,
      /line 6: "ocid1\.vaultsecret\.oc1\.iad\.aaaa" is not a vault OCID/,
      /line 7: a reference by name needs its vault/,
      /line 8: secret name "bad name" must be/,
      /line 9: key path "x\\\\y": a backslash must be followed by "\." or a backslash/,
    ];
    for (const re of expect) assert.match(result.stderr, re);
    assert.doesNotMatch(result.stderr, /line 10/);
  } finally {
    await ws.cleanup();
  }
});
