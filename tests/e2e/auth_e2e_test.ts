/**
 * `--auth security_token` and `--auth resource_principal` end to end: the CLI as a subprocess
 * against the OCI stand-in, which verifies every `ST$<token>` signature with the key the token
 * was issued for and refuses an expired token with 401 NotAuthenticated, as OCI does.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { assertNoLeak, makeWorkspace, runCli, secretValue } from "./harness.ts";

const DB = "ocid1.vaultsecret.oc1.iad.amaaaaaasessiondb";

/** The CLI's environment without any OCI_RESOURCE_PRINCIPAL_* of the test runner's own. */
const NO_RP = {
  OCI_RESOURCE_PRINCIPAL_VERSION: "",
  OCI_RESOURCE_PRINCIPAL_RPST: "",
  OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM: "",
  OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE: "",
  OCI_RESOURCE_PRINCIPAL_REGION: "",
};

Deno.test("--auth security_token signs with ST$<token> and the session key", async (t) => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const value = secretValue("session");
    oci.setSecret(DB, value);
    await ws.writeMap([`${DB},${ws.root}/db,0600`]);
    const run = (files: { configFile: string; profile: string }) =>
      runCli([
        "sync",
        ...ws.args(),
        "--auth",
        "security_token",
        "--oci-config",
        files.configFile,
        "--profile",
        files.profile,
        "--endpoint",
        oci.secretsEndpoint,
      ]);

    await t.step("a valid token: the secret is written", async () => {
      const files = await oci.writeSecurityTokenConfig(ws.dir);
      const result = await run(files);
      assert.equal(result.code, 3, result.stderr);
      assert.equal(await Deno.readTextFile(`${ws.root}/db`), value);
      assert.equal(oci.calls.rejected, 0, oci.rejections.join("\n"));
      assert.equal(oci.calls.imds + oci.calls.federation, 0, "no IMDS, no federation");
      assertNoLeak([value], result.stdout, result.stderr);
    });

    await t.step("an encrypted key with pass_phrase", async () => {
      await Deno.remove(`${ws.root}/db`);
      const files = await oci.writeSecurityTokenConfig(ws.dir, { passphrase: "correct horse" });
      const result = await run(files);
      assert.equal(result.code, 3, result.stderr);
      assert.equal(oci.calls.rejected, 0, oci.rejections.join("\n"));
    });

    await t.step("an expired token is refused before any request", async () => {
      await Deno.writeTextFile(`${ws.root}/db`, "old");
      const before = oci.calls.log.length;
      const files = await oci.writeSecurityTokenConfig(ws.dir, { ttlSeconds: -60 });
      const result = await run(files);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(oci.calls.log.length, before, "no request was sent");
      assert.match(result.stderr, /the token in ".*\/token" expired at \d{4}-/);
      assert.match(result.stderr, /oci session refresh --profile SESSION/);
      assert.equal(await Deno.readTextFile(`${ws.root}/db`), "old", "the old file is kept");
    });

    await t.step(
      "a token the service refuses (401) is not retried and says to refresh",
      async () => {
        const files = await oci.writeSecurityTokenConfig(ws.dir);
        oci.expireSessionTokens();
        const before = oci.secretCalls(DB);
        const result = await run(files);
        assert.equal(result.code, 1, result.stderr);
        assert.equal(oci.secretCalls(DB) - before, 1, "a 401 is asked once, not three times");
        assert.match(result.stderr, /HTTP 401 NotAuthenticated/);
        assert.match(result.stderr, /oci session refresh --profile SESSION/);
        assert.equal(await Deno.readTextFile(`${ws.root}/db`), "old");
      },
    );

    await t.step("a profile without security_token_file is named", async () => {
      const { configFile } = await oci.writeApiKeyConfig(ws.dir);
      const result = await run({ configFile, profile: "DEFAULT" });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /profile "DEFAULT" .* has no security_token_file/);
    });
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("--auth resource_principal reads OCI_RESOURCE_PRINCIPAL_* values or files", async (t) => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const value = secretValue("rp");
    oci.setSecret(DB, value);
    await ws.writeMap([`${DB},${ws.root}/db,0600`]);
    const run = (env: Record<string, string>, extra: string[] = []) =>
      runCli(
        [
          "sync",
          ...ws.args(),
          "--auth",
          "resource_principal",
          "--endpoint",
          oci.secretsEndpoint,
          ...extra,
        ],
        { env: { ...NO_RP, ...env } },
      );
    const fresh = async () => {
      await Deno.remove(`${ws.root}/db`).catch(() => {});
    };

    await t.step("token and key as values", async () => {
      const result = await run(await oci.resourcePrincipalEnv());
      assert.equal(result.code, 3, result.stderr);
      assert.equal(await Deno.readTextFile(`${ws.root}/db`), value);
      assert.equal(oci.calls.rejected, 0, oci.rejections.join("\n"));
      assertNoLeak([value], result.stdout, result.stderr);
    });

    await t.step("token, key and passphrase as file paths", async () => {
      await fresh();
      const dir = await Deno.makeTempDir({ dir: ws.dir });
      const env = await oci.resourcePrincipalEnv({ filesIn: dir, passphrase: "s3cret pass" });
      assert.ok(env.OCI_RESOURCE_PRINCIPAL_RPST.startsWith("/"));
      const result = await run(env);
      assert.equal(result.code, 3, result.stderr);
      assert.equal(oci.calls.rejected, 0, oci.rejections.join("\n"));
    });

    await t.step("an encrypted key given as a value with its passphrase", async () => {
      await fresh();
      const result = await run(await oci.resourcePrincipalEnv({ passphrase: "pw" }));
      assert.equal(result.code, 3, result.stderr);
    });

    await t.step("a region short code is accepted", async () => {
      await fresh();
      const result = await run(await oci.resourcePrincipalEnv({ region: "iad" }));
      assert.equal(result.code, 3, result.stderr);
    });

    await t.step("an expired RPST is refused before any request", async () => {
      await Deno.writeTextFile(`${ws.root}/db`, "old");
      const before = oci.calls.log.length;
      const result = await run(await oci.resourcePrincipalEnv({ ttlSeconds: -5 }));
      assert.equal(result.code, 1);
      assert.equal(oci.calls.log.length, before);
      assert.match(result.stderr, /OCI_RESOURCE_PRINCIPAL_RPST expired at/);
      assert.equal(await Deno.readTextFile(`${ws.root}/db`), "old");
    });

    await t.step("a refused RPST (401) is asked once", async () => {
      const env = await oci.resourcePrincipalEnv();
      oci.expireSessionTokens();
      const before = oci.secretCalls(DB);
      const result = await run(env);
      assert.equal(result.code, 1);
      assert.equal(oci.secretCalls(DB) - before, 1);
      assert.match(result.stderr, /HTTP 401 NotAuthenticated.*resource principal session token/);
    });

    await t.step("missing variables and a wrong version are named", async () => {
      const env = await oci.resourcePrincipalEnv();
      const noKey = await run({ ...env, OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM: "" });
      assert.equal(noKey.code, 1);
      assert.match(noKey.stderr, /OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM is not set/);
      const v1 = await run({ ...env, OCI_RESOURCE_PRINCIPAL_VERSION: "1.1" });
      assert.match(v1.stderr, /OCI_RESOURCE_PRINCIPAL_VERSION is "1.1"; only 2.2 is supported/);
      const noRegion = await run({ ...env, OCI_RESOURCE_PRINCIPAL_REGION: "" }, []);
      assert.equal(noRegion.code, 3, "with --endpoint the region is not needed");
      const missing = await run({ ...env, OCI_RESOURCE_PRINCIPAL_RPST: `${ws.dir}/nope` });
      assert.match(
        missing.stderr,
        /cannot read OCI_RESOURCE_PRINCIPAL_RPST ".*\/nope": no such file/,
      );
    });
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
