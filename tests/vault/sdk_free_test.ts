/**
 * The instance principal sync path never waits for the OCI SDK: with `--auth-endpoint` and
 * `--endpoint` a run imports none of it (counted in sdk.ts, in a child process that runs the
 * real `sync`), and no module of the CLI imports it statically (the module graph).
 */
import assert from "node:assert/strict";
import { instancePrincipalArgs, makeWorkspace, secretValue } from "../e2e/harness.ts";
import { startOciStandIn } from "../oci/standin.ts";

const CHILD = new URL("./_sdk_free_child.ts", import.meta.url).pathname;
const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const ID = "ocid1.vaultsecret.oc1.iad.sdkfree";

async function syncInChild(args: string[]): Promise<{ code: number; sdkImports: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CHILD, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const line = stdout.split("\n").findLast((l) => l.startsWith("RESULT "));
  assert.ok(line, `no RESULT line; stderr: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(line.slice("RESULT ".length));
}

Deno.test("sync with instance principal, federation and Secrets endpoints given: no SDK", async (t) => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const dir = await Deno.makeTempDir();
  try {
    oci.setSecret(ID, secretValue("sdkfree"));
    await ws.writeMap([`${ID},${ws.root}/one,0600`]);
    await t.step("instance principal: none imported", async () => {
      const r = await syncInChild([...ws.args(), ...instancePrincipalArgs(oci)]);
      assert.equal(r.code, 3, "the file was written");
      assert.equal(r.sdkImports, 0);
      assert.equal(oci.calls.federation, 1);
    });
    await t.step("api_key (the control): imported", async () => {
      const { configFile } = await oci.writeApiKeyConfig(dir);
      oci.setSecret(ID, secretValue("sdkfree-2"));
      const r = await syncInChild([
        ...ws.args(),
        ...["--auth", "api_key", "--oci-config", configFile, "--endpoint", oci.secretsEndpoint],
      ]);
      assert.equal(r.code, 3);
      assert.equal(r.sdkImports, 1);
    });
    assert.equal(oci.calls.rejected, 0, oci.rejections.join("; "));
  } finally {
    await ws.cleanup();
    await Deno.remove(dir, { recursive: true });
    await oci.close();
  }
});

Deno.test("no CLI module imports the OCI SDK statically (only sdk.ts, dynamically)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", MAIN],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  type Dependency = { specifier: string; code?: { specifier?: string }; isDynamic?: boolean };
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; dependencies?: Dependency[] }[];
  };
  const staticSdk: string[] = [];
  const dynamicSdk: string[] = [];
  for (const m of graph.modules) {
    for (const d of m.dependencies ?? []) {
      if (!/^npm:oci-/.test(d.code?.specifier ?? "")) continue;
      (d.isDynamic ? dynamicSdk : staticSdk).push(`${m.specifier} -> ${d.code!.specifier}`);
    }
  }
  assert.deepEqual(staticSdk, []);
  assert.ok(dynamicSdk.length > 0 && dynamicSdk.every((d) => d.includes("/src/vault/sdk.ts ")));
});
