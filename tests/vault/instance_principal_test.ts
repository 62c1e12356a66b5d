/**
 * Instance principal authentication (src/vault/instance_principal.ts, region.ts) against the OCI
 * stand-in, which verifies the federation request's signature, keyId, certificates and purpose,
 * and every session-token signature after it.
 */
import assert from "node:assert/strict";
import { authenticate } from "../../src/vault/auth.ts";
import { InstancePrincipal, readIdentity } from "../../src/vault/instance_principal.ts";
import { openVault } from "../../src/vault/open.ts";
import { readImdsRegion } from "../../src/vault/region.ts";
import { loadSdk, type Sdk } from "../../src/vault/sdk.ts";
import { generateSessionKeyPair } from "../../src/vault/session_key.ts";
import { getPki } from "../oci/_pki.ts";
import { type OciStandIn, startOciStandIn } from "../oci/standin.ts";
import { rejectsVault } from "./_vault_error.ts";

const ID = "ocid1.vaultsecret.oc1.iad.iptest";

function principal(oci: OciStandIn, extra: { timeoutMs?: number; signal?: AbortSignal } = {}) {
  return InstancePrincipal.authenticate({
    imdsUrl: oci.imdsUrl,
    federationEndpoint: oci.authEndpoint,
    timeoutMs: extra.timeoutMs ?? 10_000,
    signal: extra.signal,
    sessionKeys: generateSessionKeyPair,
  });
}

/** A GET signed with the principal's token, as the vault client signs it; returns the status. */
async function signedGet(oci: OciStandIn, p: InstancePrincipal): Promise<number> {
  const { CachedKeySigner } = await import("../../src/vault/sign.ts");
  const signer = new CachedKeySigner(p);
  const uri = `${oci.secretsEndpoint}/20190301/secretbundles/${ID}`;
  const headers = new Headers();
  await signer.signHttpRequest({ method: "GET", uri, headers });
  const res = await fetch(uri, { headers });
  await res.body?.cancel();
  return res.status;
}

Deno.test("instance principal: identity from IMDS, one federation, a token the service accepts", async () => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(ID, "ip");
    const p = await principal(oci);
    assert.equal(p.tenancyId, oci.tenancyId);
    assert.deepEqual(oci.calls.log.toSorted(), [
      "GET /opc/v2/identity/cert.pem",
      "GET /opc/v2/identity/intermediate.pem",
      "GET /opc/v2/identity/key.pem",
      "POST /v1/x509",
    ]);
    assert.match(await p.keyId(), /^ST\$[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.match(p.privateKeyPem(), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(await signedGet(oci, p), 200);
    assert.equal(oci.calls.rejected, 0, oci.rejections.join("; "));
  } finally {
    await oci.close();
  }
});

Deno.test("instance principal: many concurrent requests share one token and one federation", async () => {
  const oci = await startOciStandIn({ latencyMs: 20, latencyPaths: ["federation"] });
  try {
    const ids = Array.from({ length: 32 }, (_, i) => `${ID}${i}`);
    ids.forEach((id, i) => oci.setSecret(id, `v${i}`));
    const vault = await openVault({
      auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      endpoint: oci.secretsEndpoint,
      stage: "CURRENT",
    });
    try {
      await Promise.all(ids.map((id) => vault.fetch(id)));
    } finally {
      vault.close();
    }
    assert.equal(oci.calls.federation, 1);
    assert.equal(oci.calls.rejected, 0, oci.rejections.join("; "));
  } finally {
    await oci.close();
  }
});

Deno.test("instance principal: an expired token is refreshed once, with a new key and a fresh identity", async () => {
  const oci = await startOciStandIn({ tokenTtlSeconds: 2, latencyMs: 20 });
  try {
    oci.setSecret(ID, "refresh");
    const p = await principal(oci);
    const first = await p.keyId();
    const firstKey = p.privateKeyPem();
    assert.equal(await p.keyId(), first, "a valid token is reused");
    const imdsBefore = oci.calls.imds;
    // exp is whole seconds, compared with the rounded time: past it for sure after 2.5 s.
    await new Promise((r) => setTimeout(r, 2600));
    const again = await Promise.all(Array.from({ length: 20 }, () => p.keyId()));
    assert.equal(new Set(again).size, 1, "concurrent callers share the refresh");
    assert.notEqual(again[0], first);
    assert.notEqual(p.privateKeyPem(), firstKey, "each token has its own key pair");
    assert.equal(oci.calls.federation, 2);
    assert.equal(oci.calls.imds - imdsBefore, 3, "the identity is read again for the refresh");
    assert.equal(await signedGet(oci, p), 200);
    assert.equal(oci.calls.rejected, 0, oci.rejections.join("; "));
  } finally {
    await oci.close();
  }
});

Deno.test("instance principal: a token refreshed in the middle of a vault's life", async () => {
  const oci = await startOciStandIn({ tokenTtlSeconds: 2 });
  try {
    oci.setSecret(ID, "mid-run");
    const vault = await openVault({
      auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      endpoint: oci.secretsEndpoint,
      stage: "CURRENT",
    });
    try {
      await vault.fetch(ID);
      await new Promise((r) => setTimeout(r, 2600));
      await Promise.all(Array.from({ length: 8 }, () => vault.fetch(ID)));
    } finally {
      vault.close();
    }
    assert.equal(oci.calls.federation, 2);
    assert.equal(oci.calls.rejected, 0, oci.rejections.join("; "));
  } finally {
    await oci.close();
  }
});

Deno.test("instance principal: IMDS failures name the file and the reason", async (t) => {
  const oci = await startOciStandIn();
  try {
    for (const status of [404, 401]) {
      await t.step(`IMDS answers ${status}`, async () => {
        oci.clearFaults();
        oci.fault({ path: "imds" }, { status });
        const e = await rejectsVault(principal(oci));
        assert.match(
          e.message,
          new RegExp(
            "^Cannot authenticate with instance principal: reading the instance identity from " +
              `IMDS at ${oci.imdsUrl} failed: IMDS answered HTTP ${status} for identity/cert.pem$`,
          ),
        );
        assert.equal(e.retryable, true);
      });
    }
    await t.step("one of the three reads fails: no federation", async () => {
      oci.clearFaults();
      const before = oci.calls.federation;
      // The three reads run at once; the fault takes whichever arrives first.
      oci.fault({ path: "imds" }, { status: 404, times: 1 });
      const e = await rejectsVault(principal(oci));
      assert.match(e.message, /failed: IMDS answered HTTP 404 for identity\/\w+\.pem$/);
      assert.equal(oci.calls.federation, before);
    });
    await t.step("IMDS hangs: bounded by timeoutMs", async () => {
      oci.clearFaults();
      oci.fault({ path: "imds" }, { hang: true });
      const started = Date.now();
      const e = await rejectsVault(principal(oci, { timeoutMs: 300 }));
      assert.match(e.message, /IMDS at .* failed: timed out after 300 ms$/);
      assert.ok(Date.now() - started < 2000);
    });
    await t.step("the run deadline ends it first", async () => {
      oci.clearFaults();
      oci.fault({ path: "imds" }, { hang: true });
      const e = await rejectsVault(principal(oci, { signal: AbortSignal.timeout(200) }));
      assert.match(e.message, /failed: run deadline reached$/);
    });
    await t.step("IMDS answers something that is no certificate", async () => {
      oci.clearFaults();
      oci.fault({ path: "imds" }, { body: "not a certificate", contentType: "text/plain" });
      const e = await rejectsVault(principal(oci));
      assert.match(e.message, /failed: IMDS answered identity\/cert\.pem with no certificate$/);
    });
  } finally {
    await oci.close();
  }
});

Deno.test("instance principal: federation 401 is final, 500 is tried three times", async (t) => {
  const oci = await startOciStandIn();
  try {
    await t.step("401", async () => {
      oci.clearFaults();
      oci.fault({ path: "federation" }, { status: 401 });
      const before = oci.calls.federation;
      const e = await rejectsVault(principal(oci));
      assert.equal(
        e.message,
        "Cannot authenticate with instance principal: obtaining a session token from " +
          `${oci.authEndpoint}/v1/x509 failed: HTTP 401 NotAuthenticated`,
      );
      assert.equal(e.status, 401);
      assert.equal(e.retryable, false);
      assert.equal(oci.calls.federation - before, 1);
    });
    await t.step("500", async () => {
      oci.clearFaults();
      oci.fault({ path: "federation" }, { status: 500 });
      const before = oci.calls.federation;
      const started = Date.now();
      const e = await rejectsVault(principal(oci));
      assert.match(e.message, /\/v1\/x509 failed: HTTP 500 InternalServerError \(3 attempts\)$/);
      assert.equal(e.status, 500);
      assert.equal(e.retryable, true);
      assert.equal(oci.calls.federation - before, 3);
      // The SDK's waits: 1–2 s before each retry.
      const took = Date.now() - started;
      assert.ok(took >= 2000 && took < 4500, `took ${took} ms`);
    });
    await t.step("500 then success", async () => {
      oci.clearFaults();
      oci.fault({ path: "federation" }, { status: 503, times: 1 });
      const before = oci.calls.federation;
      const p = await principal(oci);
      assert.equal(oci.calls.federation - before, 2);
      assert.match(await p.keyId(), /^ST\$/);
    });
    await t.step("retries stop at the phase deadline", async () => {
      oci.clearFaults();
      oci.fault({ path: "federation" }, { status: 500 });
      const started = Date.now();
      const e = await rejectsVault(principal(oci, { timeoutMs: 500 }));
      assert.match(e.message, /failed: timed out after 500 ms$/);
      assert.ok(Date.now() - started < 1500);
    });
  } finally {
    await oci.close();
  }
});

Deno.test("readIdentity(): the tenancy and keyId from the leaf certificate, as the SDK makes them", async () => {
  const oci = await startOciStandIn({ tenancyId: "ocid1.tenancy.oc1..aaaaother" });
  try {
    const id = await readIdentity(oci.imdsUrl, AbortSignal.timeout(5000));
    assert.equal(id.tenancyId, "ocid1.tenancy.oc1..aaaaother");
    // sshpk's fingerprint format: lower-case hex pairs joined by colons.
    assert.match(
      id.keyId,
      /^ocid1\.tenancy\.oc1\.\.aaaaother\/fed-x509\/([0-9a-f]{2}:){19}[0-9a-f]{2}$/,
    );
    // Armour gone; the line breaks go when the body is serialised (as the SDK does it).
    assert.doesNotMatch(id.certificate, /-----/);
  } finally {
    await oci.close();
  }
});

Deno.test("readImdsRegion(): regionInfo when IMDS serves it, else the SDK's tables", async (t) => {
  const oci = await startOciStandIn({ region: "eu-frankfurt-1" });
  let loads = 0;
  const countingLoad = (): Promise<Sdk> => {
    loads++;
    return loadSdk();
  };
  try {
    await t.step("regionInfo: no SDK", async () => {
      const r = await readImdsRegion(oci.imdsUrl, AbortSignal.timeout(5000), countingLoad);
      assert.deepEqual(r, { regionId: "eu-frankfurt-1", secondLevelDomain: "oraclecloud.com" });
      assert.equal(loads, 0);
    });
    await t.step("regionInfo 404: instance/region and the SDK", async () => {
      oci.setRegionInfo(false);
      const r = await readImdsRegion(oci.imdsUrl, AbortSignal.timeout(5000), countingLoad);
      assert.deepEqual(r, { regionId: "eu-frankfurt-1", secondLevelDomain: "oraclecloud.com" });
      assert.equal(loads, 1);
      assert.deepEqual(oci.calls.log.slice(-2), [
        "GET /opc/v2/instance/regionInfo",
        "GET /opc/v2/instance/region",
      ]);
    });
    await t.step("IMDS down: no fallback, the network error", async () => {
      oci.fault({ path: "imds" }, { reset: true });
      await assert.rejects(readImdsRegion(oci.imdsUrl, AbortSignal.timeout(5000), countingLoad));
      assert.equal(loads, 1);
    });
  } finally {
    await oci.close();
  }
});

Deno.test("authenticate(): an instance principal with a federation endpoint needs no SDK", async () => {
  const oci = await startOciStandIn();
  try {
    const auth = await authenticate(
      { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      { timeoutMs: 10_000, sdk: undefined },
    );
    assert.equal(auth.regionId, undefined, "the region is read only when needed");
    assert.deepEqual(await auth.imdsRegion!(AbortSignal.timeout(5000)), {
      regionId: oci.region,
      secondLevelDomain: "oraclecloud.com",
    });
    assert.match(await auth.provider.getKeyId(), /^ST\$/);
    auth.dispose();
  } finally {
    await oci.close();
  }
});

/** One federation request as it arrived. */
interface Captured {
  headers: Record<string, string>;
  body: string;
}

/**
 * Serves IMDS from the stand-in's PKI and records federation requests, answering a token; runs
 * `fn` with its URL.
 */
async function withCapture(fn: (url: string, got: Captured[]) => Promise<void>): Promise<void> {
  const pki = await getPki("ocid1.tenancy.oc1..aaaawire", "ocid1.instance.oc1.iad.wire");
  const got: Captured[] = [];
  const claims = { exp: Math.floor(Date.now() / 1000) + 3600 };
  const b64 = (o: unknown) =>
    new TextEncoder().encode(JSON.stringify(o)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
  const token = `${b64({ alg: "RS256" })}.${b64(claims)}.c2ln`;
  const files: Record<string, string> = {
    "/opc/v2/identity/cert.pem": pki.leafCertPem,
    "/opc/v2/identity/key.pem": pki.leafKeyPem,
    "/opc/v2/identity/intermediate.pem": pki.intermediateCertPem,
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/x509") {
      got.push({ headers: Object.fromEntries(req.headers), body: await req.text() });
      return Response.json({ token });
    }
    return files[path] ? new Response(files[path]) : new Response("", { status: 404 });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, got);
  } finally {
    await server.shutdown();
  }
}

Deno.test("the federation request is the SDK's, header for header and byte for byte", async () => {
  const sdk = await loadSdk();
  const keys = await generateSessionKeyPair();
  await withCapture(async (url, got) => {
    // The SDK's instance principal builder, as secretsync used it before (its own supplier).
    const builder = new sdk.common.InstancePrincipalsAuthenticationDetailsProviderBuilder();
    builder.metadataBaseUrl = `${url}/opc/v2/`;
    builder.federationEndpoint = url;
    builder.sessionKeySupplier = { getKeyPair: () => keys, refreshKeys() {} } as never;
    try {
      await (await builder.build()).getKeyId();
    } finally {
      type Circuit = { shutdown(): void };
      (builder.circuitBreaker as unknown as Circuit).shutdown();
      (builder.authCircuitBreaker as unknown as { circuit: Circuit }).circuit.shutdown();
    }
    await InstancePrincipal.authenticate({
      imdsUrl: `${url}/opc/v2/`,
      federationEndpoint: url,
      timeoutMs: 10_000,
      sessionKeys: () => Promise.resolve(keys),
    });
    assert.equal(got.length, 2);
    const [theirs, ours] = got;
    assert.equal(ours.body, theirs.body);
    // Everything but the time and the signature over it (RSA PKCS#1 v1.5 is deterministic:
    // equal when both were sent within the same second).
    const timeless = (c: Captured) => ({
      ...c.headers,
      date: Number.isFinite(Date.parse(c.headers.date)) ? "a date" : c.headers.date,
      "x-date": Number.isFinite(Date.parse(c.headers["x-date"])) ? "a date" : c.headers["x-date"],
      authorization: c.headers.authorization.replace(/signature="[^"]+"/, ""),
    });
    assert.deepEqual(timeless(ours), timeless(theirs));
    assert.equal(ours.headers.date, ours.headers["x-date"]);
    if (ours.headers.date === theirs.headers.date) {
      assert.equal(ours.headers.authorization, theirs.headers.authorization);
    }
    assert.match(ours.headers.authorization, /headers="date \(request-target\) host content-type/);
  });
});
