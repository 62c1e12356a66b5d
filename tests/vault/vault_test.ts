import assert from "node:assert/strict";
import { openVault, type VaultOptions } from "../../src/vault/mod.ts";
import { VaultError } from "../../src/vault/mod.ts";
import { type OciStandIn, startOciStandIn } from "../oci/standin.ts";
import { assertNoSecret, assertSameBytes, randomSecret } from "../oci/assert_secret.ts";

const ID = "ocid1.vaultsecret.oc1.iad.vaulttest";

function ipOptions(oci: OciStandIn, extra: Partial<VaultOptions> = {}): VaultOptions {
  return {
    auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
    endpoint: oci.secretsEndpoint,
    stage: "CURRENT",
    ...extra,
  };
}

/**
 * Runs `fn` with a fresh stand-in; `open` opens a vault on it (instance principal by default;
 * api_key is faster to open, for tests where the auth mode does not matter).
 */
async function withVault(
  fn: (
    oci: OciStandIn,
    open: (extra?: Partial<VaultOptions>) => Promise<SecretSourceLike>,
  ) => Promise<void>,
  mode: "instance_principal" | "api_key" = "instance_principal",
): Promise<void> {
  const oci = await startOciStandIn();
  const dir = await Deno.makeTempDir();
  const opened: SecretSourceLike[] = [];
  try {
    const { configFile } = await oci.writeApiKeyConfig(dir);
    await fn(oci, async (extra) => {
      const auth = mode === "api_key" ? { mode, configFile } : undefined;
      const v = await openVault({ ...ipOptions(oci, extra), ...(auth ? { auth } : {}) });
      opened.push(v);
      return v;
    });
  } finally {
    for (const v of opened) v.close();
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
}
type SecretSourceLike = Awaited<ReturnType<typeof openVault>>;

async function rejectsVault(p: Promise<unknown>): Promise<VaultError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof VaultError) return e;
    throw new Error(`Expected a VaultError, got ${(e as Error)?.name}`);
  }
  throw new Error("Expected a VaultError, got success");
}

const BINARY = new Uint8Array([0, 1, 0, 0xff, 0xfe, 0x80, 0x0d, 0x0a, 0x20, 0x0a]); // ends "\n"

Deno.test("openVault() with instance principal fetches binary bytes intact", async () => {
  await withVault(async (oci, open) => {
    const version = oci.setSecret(ID, BINARY);
    const vault = await open();
    const b = await vault.fetch(ID);
    assertSameBytes(b.bytes, BINARY);
    assert.equal(b.version, version);
    assert.equal(oci.calls.federation, 1);
    assert.equal(oci.calls.rejected, 0);
  });
});

Deno.test("openVault() with an API key config file fetches through the real SDK", async () => {
  const oci = await startOciStandIn();
  const dir = await Deno.makeTempDir();
  try {
    const secret = randomSecret();
    oci.setSecret(ID, secret + "\n");
    const { configFile, profile } = await oci.writeApiKeyConfig(dir);
    const vault = await openVault({
      auth: { mode: "api_key", configFile, profile },
      endpoint: oci.secretsEndpoint,
      stage: "current",
    });
    try {
      const b = await vault.fetch(ID);
      assertSameBytes(b.bytes, new TextEncoder().encode(secret + "\n"));
      assert.equal(b.version, 1);
      assert.equal(oci.calls.imds, 0);
      assert.equal(oci.calls.federation, 0);
      assert.equal(oci.calls.rejected, 0);
    } finally {
      vault.close();
    }
  } finally {
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openVault() with api_key takes the region option when the config has none", async () => {
  const oci = await startOciStandIn();
  const dir = await Deno.makeTempDir();
  try {
    oci.setSecret(ID, "regionless");
    const { configFile } = await oci.writeApiKeyConfig(dir);
    const text = await Deno.readTextFile(configFile);
    await Deno.writeTextFile(configFile, text.replace(/^region=.*\n/m, ""));
    const auth = { mode: "api_key" as const, configFile };
    const e = await rejectsVault(
      openVault({ auth, endpoint: oci.secretsEndpoint, stage: "CURRENT" }),
    );
    assert.match(e.message, /Region not specified/);
    const vault = await openVault({
      auth,
      region: "us-phoenix-1",
      endpoint: oci.secretsEndpoint,
      stage: "CURRENT",
    });
    try {
      assertSameBytes((await vault.fetch(ID)).bytes, new TextEncoder().encode("regionless"));
      assert.equal(oci.calls.rejected, 0);
    } finally {
      vault.close();
    }
  } finally {
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openVault() reads the region from IMDS only when it needs one", async () => {
  const oci = await startOciStandIn({ region: "eu-frankfurt-1" });
  try {
    // instance/regionInfo, or instance/region when IMDS does not serve regionInfo.
    const readsRegion = () =>
      oci.calls.log.filter((l) => /^GET \/opc\/v2\/instance\/region(Info)?$/.test(l));
    // No endpoint and no region: the Secrets endpoint is derived from IMDS's region.
    (await openVault({
      auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      stage: "CURRENT",
    })).close();
    assert.deepEqual(readsRegion(), ["GET /opc/v2/instance/regionInfo"]);
    // An explicit endpoint or region needs no lookup.
    (await openVault(ipOptions(oci))).close();
    (await openVault({ ...ipOptions(oci), endpoint: undefined, region: "eu-frankfurt-1" })).close();
    assert.equal(readsRegion().length, 1);
    // An IMDS without regionInfo: the region name, looked up in the SDK's tables.
    oci.setRegionInfo(false);
    (await openVault({
      auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      stage: "CURRENT",
    })).close();
    assert.deepEqual(readsRegion().slice(1), [
      "GET /opc/v2/instance/regionInfo",
      "GET /opc/v2/instance/region",
    ]);
  } finally {
    await oci.close();
  }
});

Deno.test("openVault() honours the stage and version number", async (t) => {
  await withVault(async (oci, open) => {
    const values = ["v1", "v2", "v3"].map((v) => new TextEncoder().encode(v));
    for (const v of values) oci.setSecret(ID, v);
    oci.setSecret(ID, "v4-pending", { stage: "PENDING" });
    const cases: [string, number, string][] = [
      ["CURRENT", 3, "v3"],
      ["PREVIOUS", 2, "v2"],
      ["DEPRECATED", 1, "v1"],
      ["PENDING", 4, "v4-pending"],
      ["LATEST", 4, "v4-pending"],
      ["1", 1, "v1"],
      ["2", 2, "v2"],
    ];
    for (const [stage, version, text] of cases) {
      await t.step(`stage ${stage}`, async () => {
        const b = await (await open({ stage })).fetch(ID);
        assert.equal(b.version, version);
        assertSameBytes(b.bytes, new TextEncoder().encode(text));
      });
    }
    await t.step("a version that does not exist is a 404", async () => {
      const e = await rejectsVault((await open({ stage: "9" })).fetch(ID));
      assert.equal(e.status, 404);
    });
  }, "api_key");
});

Deno.test("openVault() rejects invalid options with RangeError", async () => {
  const base = {
    auth: { mode: "api_key" as const, configFile: "/nonexistent" },
    stage: "CURRENT",
  };
  for (const bad of ["", "current-ish", "0", "-1", "1.5", "ACTIVE"]) {
    await assert.rejects(openVault({ ...base, stage: bad }), RangeError, `stage ${bad}`);
  }
  await assert.rejects(openVault({ ...base, attempts: 0 }), RangeError);
  await assert.rejects(openVault({ ...base, auth: { mode: "password" } as never }), RangeError);
  await assert.rejects(openVault({ ...base, timeoutMs: -1 }), RangeError);
  await assert.rejects(openVault({ ...base, maxBytes: 1.5 }), RangeError);
});

Deno.test("openVault() federates exactly once for 16 concurrent fetches", async () => {
  await withVault(async (oci, open) => {
    const ids = Array.from({ length: 16 }, (_, i) => `${ID}${i}`);
    ids.forEach((id, i) => oci.setSecret(id, `value ${i}`));
    const vault = await open();
    const got = await Promise.all(ids.map((id) => vault.fetch(id)));
    got.forEach((b, i) => assertSameBytes(b.bytes, new TextEncoder().encode(`value ${i}`)));
    assert.equal(oci.calls.federation, 1);
    for (const id of ids) assert.equal(oci.secretCalls(id), 1);
    assert.equal(oci.calls.rejected, 0);
  });
});

Deno.test("fetch() retries 503 and succeeds on the third attempt", async () => {
  await withVault(async (oci, open) => {
    oci.setSecret(ID, "after-outage");
    oci.fault({ secretId: ID }, { status: 503, times: 2 });
    const b = await (await open()).fetch(ID);
    assertSameBytes(b.bytes, new TextEncoder().encode("after-outage"));
    assert.equal(oci.secretCalls(ID), 3);
  });
});

Deno.test("fetch() retries 429, resets and 500 up to `attempts` and reports the last", async (t) => {
  await withVault(async (oci, open) => {
    oci.setSecret(ID, "x");
    await t.step("429 then success", async () => {
      oci.clearFaults();
      oci.fault({ secretId: ID }, { status: 429, times: 1 });
      const before = oci.secretCalls(ID);
      await (await open()).fetch(ID);
      assert.equal(oci.secretCalls(ID) - before, 2);
    });
    await t.step("connection reset every time", async () => {
      oci.clearFaults();
      oci.fault({ secretId: ID }, { reset: true });
      const before = oci.secretCalls(ID);
      const e = await rejectsVault((await open({ attempts: 2 })).fetch(ID));
      assert.equal(oci.secretCalls(ID) - before, 2);
      assert.match(e.message, /connection reset/);
      assert.match(e.message, new RegExp(ID.replaceAll(".", "\\.")));
      assert.equal(e.retryable, true);
      assert.equal(e.secretId, ID);
    });
    await t.step("500 every time", async () => {
      oci.clearFaults();
      oci.fault({ secretId: ID }, { status: 500, code: "InternalServerError" });
      const before = oci.secretCalls(ID);
      const e = await rejectsVault((await open()).fetch(ID));
      assert.equal(oci.secretCalls(ID) - before, 3);
      assert.equal(e.status, 500);
      assert.match(e.message, /HTTP 500 InternalServerError/);
      assert.match(e.message, /3 attempts/);
    });
  }, "api_key");
});

Deno.test("fetch() does not retry 400, 401, 403 or 404", async (t) => {
  await withVault(async (oci, open) => {
    oci.setSecret(ID, "x");
    const vault = await open();
    for (const status of [400, 401, 403, 404]) {
      await t.step(`HTTP ${status}`, async () => {
        oci.clearFaults();
        oci.fault({ secretId: ID }, { status });
        const before = oci.secretCalls(ID);
        const e = await rejectsVault(vault.fetch(ID));
        assert.equal(oci.secretCalls(ID) - before, 1);
        assert.equal(e.status, status);
        assert.equal(e.retryable, false);
        assert.match(e.message, new RegExp(`HTTP ${status}`));
      });
    }
    await t.step("unknown secret (real 404 from the service)", async () => {
      oci.clearFaults();
      const e = await rejectsVault(vault.fetch(`${ID}.unknown`));
      assert.equal(oci.secretCalls(`${ID}.unknown`), 1);
      assert.equal(e.code, "NotAuthorizedOrNotFound");
      assert.match(e.message, /HTTP 404 NotAuthorizedOrNotFound/);
      assert.match(e.message, /opc-request-id/);
    });
  }, "api_key");
});

Deno.test("fetch() times out a hung request per attempt and ends within the bound", async () => {
  await withVault(async (oci, open) => {
    oci.setSecret(ID, "x");
    oci.fault({ secretId: ID }, { hang: true });
    const vault = await open({ timeoutMs: 300, attempts: 3 });
    const started = Date.now();
    const e = await rejectsVault(vault.fetch(ID));
    const elapsed = Date.now() - started;
    assert.match(e.message, /timed out after 300 ms \(3 attempts\)/);
    assert.equal(oci.secretCalls(ID), 3);
    // 3 × 300 ms plus at most 200 + 400 ms of backoff, plus slack.
    assert.ok(elapsed >= 900 && elapsed < 2500, `took ${elapsed} ms`);
  }, "api_key"); // api_key: opening is instant, so a 300 ms timeout tests only the fetch
});

Deno.test("fetch() stops at the run deadline, abandoning the request in flight", async () => {
  await withVault(async (oci, open) => {
    oci.setSecret(ID, "x");
    const deadline = new AbortController();
    const vault = await open({ timeoutMs: 10_000, signal: deadline.signal });
    oci.fault({ secretId: ID }, { hang: true });
    setTimeout(() => deadline.abort(), 1000);
    const started = Date.now();
    const e = await rejectsVault(vault.fetch(ID));
    const elapsed = Date.now() - started;
    assert.match(e.message, /run deadline reached/);
    assert.ok(elapsed < 2500, `took ${elapsed} ms`);
    assert.equal(oci.secretCalls(ID), 1);
    // After the deadline no new attempt starts at all.
    const e2 = await rejectsVault(vault.fetch(ID));
    assert.match(e2.message, /before the first attempt/);
    assert.equal(oci.secretCalls(ID), 1);
  }, "api_key");
});

Deno.test("fetch() refuses bad content without retrying and without quoting it", async (t) => {
  await withVault(async (oci, open) => {
    const secret = randomSecret();
    oci.setSecret(ID, secret);
    const vault = await open({ maxBytes: 64 });
    const b64 = new TextEncoder().encode(secret).toBase64();
    const cases: [string, Parameters<OciStandIn["fault"]>[1], RegExp][] = [
      ["invalid base64", { bundleContent: `${secret}!` }, /not valid base64/],
      [
        "base64 with whitespace",
        { bundleContent: `${b64.slice(0, 4)}\n${b64.slice(4)}` },
        /not valid base64/,
      ],
      ["non-BASE64 content type", { bundleContentType: "TEXT" }, /content type is "TEXT"/],
      ["missing content", { bundleContent: null }, /no secret content/],
      [
        "oversize",
        { bundleContent: new Uint8Array(65).toBase64() },
        /65 bytes, more than the limit of 64/,
      ],
      [
        "malformed JSON containing the secret",
        { body: `{"secretBundleContent":{"content":"${b64}","x":"${secret}"` },
        /not valid JSON/,
      ],
      [
        "oversize response body",
        { body: JSON.stringify({ pad: "x".repeat(200_000), s: secret }) },
        /too large/,
      ],
    ];
    for (const [label, fault, pattern] of cases) {
      await t.step(label, async () => {
        oci.clearFaults();
        oci.fault({ secretId: ID }, fault);
        const before = oci.secretCalls(ID);
        const e = await rejectsVault(vault.fetch(ID));
        assertNoSecret(e.message, secret, "error message");
        assertNoSecret(String(e.stack), secret, "error stack");
        assert.equal(oci.secretCalls(ID) - before, 1);
        assert.equal(e.retryable, false);
        assert.match(e.message, pattern);
        assert.match(e.message, /ocid1\.vaultsecret\.oc1\.iad\.vaulttest/);
      });
    }
    await t.step("exactly maxBytes is accepted", async () => {
      oci.clearFaults();
      oci.setSecret(ID, new Uint8Array(64).fill(0xff));
      const b = await vault.fetch(ID);
      assertSameBytes(b.bytes, new Uint8Array(64).fill(0xff));
    });
  });
});

Deno.test("openVault() fails with a clear VaultError when IMDS or federation fails", async (t) => {
  const oci = await startOciStandIn();
  try {
    await t.step("IMDS answers 500", async () => {
      oci.clearFaults();
      oci.fault({ path: "imds" }, { status: 500 });
      const e = await rejectsVault(openVault(ipOptions(oci)));
      assert.match(
        e.message,
        /Cannot authenticate with instance principal: reading the instance identity from IMDS at .* failed: IMDS answered HTTP 500/,
      );
      assert.equal(e.secretId, "");
      assert.equal(oci.calls.federation, 0);
    });
    await t.step("IMDS is not there", async () => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      const e = await rejectsVault(
        openVault({
          ...ipOptions(oci),
          auth: { mode: "instance_principal", imdsUrl: `http://127.0.0.1:${port}/opc/v2/` },
        }),
      );
      assert.match(
        e.message,
        /IMDS at http:\/\/127\.0\.0\.1:\d+\/opc\/v2\/ failed: connection refused/,
      );
      assert.equal(e.retryable, true);
    });
    await t.step("IMDS hangs: bounded by timeoutMs", async () => {
      oci.clearFaults();
      oci.fault({ path: "imds" }, { hang: true });
      const started = Date.now();
      const e = await rejectsVault(openVault(ipOptions(oci, { timeoutMs: 400 })));
      assert.match(e.message, /IMDS .* failed: timed out after 400 ms/);
      assert.ok(Date.now() - started < 2000);
    });
    await t.step("federation answers 401", async () => {
      oci.clearFaults();
      oci.fault({ path: "federation" }, { status: 401 });
      const before = oci.calls.federation;
      const e = await rejectsVault(openVault(ipOptions(oci)));
      assert.match(e.message, /obtaining a session token from .*\/v1\/x509 failed: HTTP 401/);
      assert.equal(e.status, 401);
      assert.equal(e.retryable, false);
      assert.equal(oci.calls.federation - before, 1);
    });
    await t.step("federation hangs: bounded by timeoutMs", async () => {
      oci.clearFaults();
      oci.fault({ path: "federation" }, { hang: true });
      const started = Date.now();
      const e = await rejectsVault(openVault(ipOptions(oci, { timeoutMs: 400 })));
      assert.match(e.message, /timed out after 400 ms/);
      assert.ok(Date.now() - started < 2000);
    });
    await t.step("api_key config file missing", async () => {
      const e = await rejectsVault(
        openVault({ auth: { mode: "api_key", configFile: "/nonexistent/oci" }, stage: "CURRENT" }),
      );
      assert.match(e.message, /Cannot load OCI config "\/nonexistent\/oci"/);
    });
  } finally {
    await oci.close();
  }
});

Deno.test("close() abandons in-flight fetches and refuses new ones", async () => {
  await withVault(async (oci, open) => {
    oci.setSecret(ID, "x");
    oci.fault({ secretId: ID }, { hang: true });
    const vault = await open({ timeoutMs: 10_000 });
    const pending = rejectsVault(vault.fetch(ID));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    vault.close();
    const e = await pending;
    assert.match(e.message, /closed/);
    assert.ok(Date.now() - started < 500);
    assert.match((await rejectsVault(vault.fetch(ID))).message, /closed/);
  }, "api_key");
});
