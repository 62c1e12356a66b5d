import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { assertNoSecret, randomSecret } from "../oci/assert_secret.ts";

const CHILD = new URL("./_quiet_child.ts", import.meta.url).pathname;

async function runChild(
  mode: string,
  env: unknown,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CHILD, mode],
    env: { STANDIN: JSON.stringify(env), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return new Uint8Array(d).toHex();
}

Deno.test("the vault client prints nothing: SDK warnings, logs and deprecations are silenced", async () => {
  const oci = await startOciStandIn();
  const dir = await Deno.makeTempDir();
  try {
    const secret = randomSecret();
    const b64 = new TextEncoder().encode(secret).toBase64();
    const ids = {
      good: "ocid1.vaultsecret.oc1..good",
      flaky: "ocid1.vaultsecret.oc1..flaky",
      missing: "ocid1.vaultsecret.oc1..missing",
      hung: "ocid1.vaultsecret.oc1..hung",
      reset: "ocid1.vaultsecret.oc1..reset",
      throttled: "ocid1.vaultsecret.oc1..throttled",
      badjson: "ocid1.vaultsecret.oc1..badjson",
      badb64: "ocid1.vaultsecret.oc1..badb64",
    };
    for (const id of Object.values(ids)) if (id !== ids.missing) oci.setSecret(id, secret);
    oci.fault({ secretId: ids.flaky }, { status: 503, times: 2 });
    oci.fault({ secretId: ids.hung }, { hang: true });
    oci.fault({ secretId: ids.reset }, { reset: true });
    oci.fault({ secretId: ids.throttled }, { status: 429 });
    oci.fault({ secretId: ids.badjson }, { body: `{"content":"${b64}","raw":"${secret}` });
    oci.fault({ secretId: ids.badb64 }, { bundleContent: `${secret}%` });
    const { configFile } = await oci.writeApiKeyConfig(dir);
    const env = { ...oci, configFile, ids };

    const run = await runChild("quiet", env);
    assertNoSecret(run.stdout, secret, "stdout");
    assertNoSecret(run.stderr, secret, "stderr");
    assert.equal(run.stderr, "", "stderr must be empty");
    assert.equal(run.code, 0);
    const lines = run.stdout.split("\n").filter(Boolean);
    assert.equal(lines.length, 1, "stdout must hold only the child's RESULT line");
    assert.ok(lines[0].startsWith("RESULT "));
    const r = JSON.parse(lines[0].slice("RESULT ".length)) as Record<string, string>;

    const ok = `ok 1 ${secret.length} ${await sha256(secret)}`;
    assert.equal(r.good, ok);
    assert.equal(r.flaky, ok);
    assert.match(r.missing, /HTTP 404 NotAuthorizedOrNotFound/);
    assert.match(r.hung, /timed out after 300 ms \(3 attempts\)/);
    assert.match(r.reset, /connection reset/);
    assert.match(r.throttled, /HTTP 429 TooManyRequests.*\(3 attempts\)/);
    assert.match(r.badjson, /not valid JSON/);
    assert.match(r.badb64, /not valid base64/);
    assert.match(r.federationFails, /obtaining a session token .* failed: HTTP 404/);
    assert.match(r.apiKey404, /HTTP 404/);
    assert.equal(oci.secretCalls(ids.flaky), 3);
  } finally {
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("control: the raw SDK does print, so the capture above would catch it", async () => {
  const oci = await startOciStandIn();
  const dir = await Deno.makeTempDir();
  try {
    const { configFile } = await oci.writeApiKeyConfig(dir);
    const run = await runChild("raw", { ...oci, configFile, ids: { missing: "ocid1.x..missing" } });
    assert.equal(run.code, 0);
    assert.match(run.stderr, /DeprecationWarning|punycode/);
    assert.match(run.stderr, /Request cannot be retried/); // the retrier's console.warn
  } finally {
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
});
