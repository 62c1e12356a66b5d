import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { startOciStandIn } from "./standin.ts";
import { signRequest } from "./_signature.ts";

const SECRET_ID = "ocid1.vaultsecret.oc1.iad.standintest";

async function status(res: Promise<Response>): Promise<{ status: number; body: string }> {
  const r = await res;
  return { status: r.status, body: await r.text() };
}

Deno.test("startOciStandIn() verifies every signature on the secrets API", async (t) => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(SECRET_ID, "value-one");
    const { keyId, privateKeyPem } = oci.apiKey();
    const url = `${oci.secretsEndpoint}/20190301/secretbundles/${SECRET_ID}?stage=CURRENT`;

    await t.step("a correctly signed GET is answered", async () => {
      const r = await status(
        fetch(url, {
          headers: signRequest("GET", url, null, { keyId, privateKey: privateKeyPem }),
        }),
      );
      assert.equal(r.status, 200);
      const bundle = JSON.parse(r.body);
      assert.equal(bundle.secretId, SECRET_ID);
      assert.equal(bundle.versionNumber, 1);
      assert.equal(bundle.secretBundleContent.contentType, "BASE64");
      assert.deepEqual(bundle.stages.sort(), ["CURRENT", "LATEST"]);
      assert.equal(oci.calls.rejected, 0);
    });

    const rejected = async (label: string, res: Promise<Response>) => {
      const before = oci.calls.rejected;
      const r = await status(res);
      assert.equal(r.status, 401, label);
      assert.equal(JSON.parse(r.body).code, "NotAuthenticated", label);
      assert.equal(oci.calls.rejected, before + 1, label);
    };

    await t.step("an unsigned request gets 401", async () => {
      await rejected("unsigned", fetch(url));
    });

    await t.step("a signature for another path gets 401", async () => {
      const other = url.replace("stage=CURRENT", "stage=PREVIOUS");
      const h = signRequest("GET", other, null, { keyId, privateKey: privateKeyPem });
      await rejected("tampered target", fetch(url, { headers: h }));
    });

    await t.step("a tampered signature gets 401", async () => {
      const h = signRequest("GET", url, null, { keyId, privateKey: privateKeyPem });
      const auth = h.get("authorization")!;
      const sig = /signature="([^"]+)"/.exec(auth)![1];
      const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
      h.set("authorization", auth.replace(sig, flipped));
      await rejected("tampered signature", fetch(url, { headers: h }));
    });

    await t.step("a changed signed header gets 401", async () => {
      const h = signRequest("GET", url, null, { keyId, privateKey: privateKeyPem });
      h.set("x-date", new Date(Date.now() + 1000).toUTCString());
      await rejected("changed x-date", fetch(url, { headers: h }));
    });

    await t.step("a stale date gets 401 even when the signature is valid", async () => {
      const h = signRequest("GET", url, null, {
        keyId,
        privateKey: privateKeyPem,
        date: new Date(Date.now() - 6 * 60_000),
      });
      await rejected("stale date", fetch(url, { headers: h }));
    });

    await t.step("a signature that leaves out host gets 401", async () => {
      const h = signRequest("GET", url, null, {
        keyId,
        privateKey: privateKeyPem,
        headers: ["x-date", "(request-target)"],
      });
      await rejected("host not signed", fetch(url, { headers: h }));
    });

    await t.step("a key the stand-in does not know gets 401", async () => {
      const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
      await rejected(
        "wrong key, right keyId",
        fetch(url, { headers: signRequest("GET", url, null, { keyId, privateKey: pem }) }),
      );
      await rejected(
        "unknown keyId",
        fetch(url, {
          headers: signRequest("GET", url, null, { keyId: "t/u/00:11", privateKey: pem }),
        }),
      );
    });

    await t.step("a session token the stand-in did not issue gets 401", async () => {
      const fake = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.c2lnbmF0dXJl";
      const h = signRequest("GET", url, null, { keyId: `ST$${fake}`, privateKey: privateKeyPem });
      await rejected("forged token", fetch(url, { headers: h }));
    });

    await t.step("POST: signed body hash must match the body", async () => {
      const byName = `${oci.secretsEndpoint}/20190301/secretbundles/actions/getByName` +
        `?secretName=${SECRET_ID}&vaultId=${oci.vaultId}`;
      const body = new TextEncoder().encode("{}");
      const ok = signRequest("POST", byName, body, { keyId, privateKey: privateKeyPem });
      const r = await status(fetch(byName, { method: "POST", headers: ok, body }));
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).secretId, SECRET_ID);

      const h = signRequest("POST", byName, body, { keyId, privateKey: privateKeyPem });
      await rejected(
        "body differs from x-content-sha256",
        fetch(byName, { method: "POST", headers: h, body: "{ }" }),
      );

      const partial = signRequest("POST", byName, body, {
        keyId,
        privateKey: privateKeyPem,
        headers: ["x-date", "(request-target)", "host"],
      });
      await rejected(
        "POST without body headers signed",
        fetch(byName, { method: "POST", headers: partial, body }),
      );
    });

    await t.step(
      "an unknown secret is 404 NotAuthorizedOrNotFound, after verification",
      async () => {
        const u = `${oci.secretsEndpoint}/20190301/secretbundles/ocid1.vaultsecret.oc1..nope`;
        const r = await status(
          fetch(u, { headers: signRequest("GET", u, null, { keyId, privateKey: privateKeyPem }) }),
        );
        assert.equal(r.status, 404);
        assert.equal(JSON.parse(r.body).code, "NotAuthorizedOrNotFound");
        assert.equal(oci.secretCalls("ocid1.vaultsecret.oc1..nope"), 1);
      },
    );
  } finally {
    await oci.close();
  }
});

Deno.test("startOciStandIn() serves IMDS only with the v2 header, and federation only signed", async () => {
  const oci = await startOciStandIn({ region: "eu-frankfurt-1" });
  try {
    const plain = await status(fetch(`${oci.imdsUrl}instance/region`));
    assert.equal(plain.status, 401);
    const ok = await status(
      fetch(`${oci.imdsUrl}instance/region`, { headers: { Authorization: "Bearer Oracle" } }),
    );
    assert.deepEqual(ok, { status: 200, body: "eu-frankfurt-1" });
    const cert = await status(
      fetch(`${oci.imdsUrl}identity/cert.pem`, { headers: { Authorization: "Bearer Oracle" } }),
    );
    assert.match(cert.body, /BEGIN CERTIFICATE/);
    assert.equal(oci.calls.imds, 3);

    const fed = await status(
      fetch(`${oci.authEndpoint}/v1/x509`, { method: "POST", body: "{}" }),
    );
    assert.equal(fed.status, 401);
    assert.equal(oci.calls.federation, 1);
    assert.equal(oci.calls.rejected, 1);
  } finally {
    await oci.close();
  }
});

Deno.test("setSecret() rotates stages like OCI: CURRENT → PREVIOUS → DEPRECATED", async () => {
  const oci = await startOciStandIn();
  try {
    const { keyId, privateKeyPem } = oci.apiKey();
    const get = async (q: string) => {
      const u = `${oci.secretsEndpoint}/20190301/secretbundles/${SECRET_ID}?${q}`;
      const r = await fetch(u, {
        headers: signRequest("GET", u, null, { keyId, privateKey: privateKeyPem }),
      });
      const body = await r.json();
      return r.status === 200 ? { v: body.versionNumber, stages: body.stages.sort() } : r.status;
    };
    assert.equal(oci.setSecret(SECRET_ID, "a"), 1);
    assert.equal(oci.setSecret(SECRET_ID, "b"), 2);
    assert.equal(oci.setSecret(SECRET_ID, "c"), 3);
    assert.equal(oci.setSecret(SECRET_ID, "d", { stage: "PENDING" }), 4);
    assert.deepEqual(await get("stage=CURRENT"), { v: 3, stages: ["CURRENT"] });
    assert.deepEqual(await get("stage=PREVIOUS"), { v: 2, stages: ["PREVIOUS"] });
    assert.deepEqual(await get("stage=DEPRECATED"), { v: 1, stages: ["DEPRECATED"] });
    assert.deepEqual(await get("stage=PENDING"), { v: 4, stages: ["LATEST", "PENDING"] });
    assert.deepEqual(await get("stage=LATEST"), { v: 4, stages: ["LATEST", "PENDING"] });
    assert.deepEqual(await get("versionNumber=2"), { v: 2, stages: ["PREVIOUS"] });
    assert.equal(await get("versionNumber=9"), 404);
    assert.equal(await get("stage=BOGUS"), 400);
  } finally {
    await oci.close();
  }
});

Deno.test("fault() applies `times` times, then the stand-in answers normally", async () => {
  const oci = await startOciStandIn();
  try {
    const { keyId, privateKeyPem } = oci.apiKey();
    oci.setSecret(SECRET_ID, "x");
    const u = `${oci.secretsEndpoint}/20190301/secretbundles/${SECRET_ID}`;
    const get = async () =>
      (await status(
        fetch(u, { headers: signRequest("GET", u, null, { keyId, privateKey: privateKeyPem }) }),
      ))
        .status;
    oci.fault({ secretId: SECRET_ID }, { status: 503, times: 2 });
    oci.fault({ path: "imds" }, { status: 500 }); // other paths are not affected
    assert.deepEqual([await get(), await get(), await get()], [503, 503, 200]);
    assert.equal(oci.secretCalls(SECRET_ID), 3);

    oci.fault({ secretId: SECRET_ID }, { reset: true, times: 1 });
    await assert.rejects(
      fetch(u, { headers: signRequest("GET", u, null, { keyId, privateKey: privateKeyPem }) }),
    );

    oci.fault({ secretId: SECRET_ID }, { hang: true, times: 1 });
    const started = Date.now();
    await assert.rejects(
      fetch(u, {
        headers: signRequest("GET", u, null, { keyId, privateKey: privateKeyPem }),
        signal: AbortSignal.timeout(200),
      }),
      (e: Error) => e.name === "TimeoutError",
    );
    assert.ok(Date.now() - started < 2000);

    oci.fault({ secretId: SECRET_ID }, { body: "{not json", times: 1 });
    const bad = await status(
      fetch(u, { headers: signRequest("GET", u, null, { keyId, privateKey: privateKeyPem }) }),
    );
    assert.deepEqual(bad.status, 200);
    assert.equal(bad.body, "{not json");
  } finally {
    await oci.close();
  }
});

Deno.test("close() ends hung requests", async () => {
  const oci = await startOciStandIn();
  oci.fault({}, { hang: true });
  const pending = fetch(`${oci.imdsUrl}instance/region`).then((r) => r.text(), (e) => e);
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  await oci.close();
  await pending;
  assert.ok(Date.now() - started < 1000);
});

Deno.test("latency, time-boxed faults and the content endpoint (for benchmarks)", async (t) => {
  const oci = await startOciStandIn({ control: true, latencyMs: 400, latencyPaths: ["secrets"] });
  try {
    oci.setSecret(SECRET_ID, "value-one");
    const content = `${oci.url}/_standin/content/${SECRET_ID}`;

    await t.step("every request of a listed family waits the latency; others do not", async () => {
      let started = performance.now();
      const r = await status(fetch(content));
      assert.ok(performance.now() - started >= 395, "content waited");
      assert.equal(r.body, `${btoa("value-one")}\n`);
      started = performance.now();
      await status(
        fetch(`${oci.imdsUrl}instance/region`, { headers: { Authorization: "Bearer Oracle" } }),
      );
      assert.ok(performance.now() - started < 300, "IMDS did not wait");
      oci.setLatency(0);
    });

    await t.step("a fault with forMs stops after that long", async () => {
      const { keyId, privateKeyPem } = oci.apiKey();
      const url = `${oci.secretsEndpoint}/20190301/secretbundles/${SECRET_ID}`;
      const get = () =>
        status(
          fetch(url, {
            headers: signRequest("GET", url, null, { keyId, privateKey: privateKeyPem }),
          }),
        );
      oci.fault({ path: "secrets" }, { status: 429, forMs: 150 });
      assert.equal((await get()).status, 429);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await get()).status, 200);
      assert.equal(oci.calls.secretsAt.length, 2);
    });

    await t.step("an unknown secret is a 404 on the content endpoint", async () => {
      assert.equal((await status(fetch(`${oci.url}/_standin/content/nope`))).status, 404);
    });
  } finally {
    await oci.close();
  }
});

Deno.test("issueSessionToken(): ST$<token> verifies only with its key, and only until it expires", async (t) => {
  const oci = await startOciStandIn();
  try {
    oci.setSecret(SECRET_ID, "value-one");
    const url = `${oci.secretsEndpoint}/20190301/secretbundles/${SECRET_ID}`;
    const get = (keyId: string, privateKey: string) =>
      status(fetch(url, { headers: signRequest("GET", url, null, { keyId, privateKey }) }));
    const { token, privateKeyPem } = oci.issueSessionToken();

    await t.step("signed with the session key: answered", async () => {
      assert.equal((await get(`ST$${token}`, privateKeyPem)).status, 200);
    });
    await t.step("the token with another key: 401", async () => {
      const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
        .export({ format: "pem", type: "pkcs8" }) as string;
      const r = await get(`ST$${token}`, other);
      assert.equal(r.status, 401);
      assert.equal(JSON.parse(r.body).code, "NotAuthenticated");
      assert.match(oci.rejections.at(-1)!, /signature does not verify/);
    });
    await t.step("a token the stand-in did not issue: 401", async () => {
      const [h, c] = token.split(".");
      const r = await get(`ST$${h}.${c}.${"A".repeat(43)}`, privateKeyPem);
      assert.equal(r.status, 401);
      assert.match(oci.rejections.at(-1)!, /not issued here/);
    });
    await t.step(
      "an expired token (by its exp claim, or expired early): 401 NotAuthenticated",
      async () => {
        const old = oci.issueSessionToken({ ttlSeconds: -1 });
        assert.equal((await get(`ST$${old.token}`, old.privateKeyPem)).status, 401);
        assert.match(oci.rejections.at(-1)!, /session token expired/);
        oci.expireSessionTokens();
        const r = await get(`ST$${token}`, privateKeyPem);
        assert.equal(r.status, 401);
        assert.equal(JSON.parse(r.body).code, "NotAuthenticated");
        assert.match(oci.rejections.at(-1)!, /session token expired/);
      },
    );
  } finally {
    await oci.close();
  }
});

Deno.test("workWithinLatency: the answer leaves the latency after arrival, with the state of then", async () => {
  const oci = await startOciStandIn({ latencyMs: 300, workWithinLatency: true });
  try {
    oci.setSecret(SECRET_ID, "value-one");
    const { keyId, privateKeyPem } = oci.apiKey();
    const url = `${oci.secretsEndpoint}/20190301/secretbundles/${SECRET_ID}`;
    const started = performance.now();
    const pending = status(
      fetch(url, { headers: signRequest("GET", url, null, { keyId, privateKey: privateKeyPem }) }),
    );
    await new Promise((r) => setTimeout(r, 100));
    oci.setSecret(SECRET_ID, "value-two"); // during the latency: not in this answer
    const r = await pending;
    assert.ok(performance.now() - started >= 295, "waited the latency");
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).versionNumber, 1);
  } finally {
    await oci.close();
  }
});

Deno.test("keepAlive: one connection serves requests one after another; `connection: close` ends it", async () => {
  const oci = await startOciStandIn({ keepAlive: true });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(oci.url).port) });
    const ask = (close: boolean) =>
      new TextEncoder().encode(
        "GET /opc/v2/instance/region HTTP/1.1\r\nhost: x\r\nauthorization: Bearer Oracle\r\n" +
          (close ? "connection: close\r\n" : "") + "\r\n",
      );
    const answers: string[] = [];
    const read = async () => {
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf);
      return n === null ? null : new TextDecoder().decode(buf.subarray(0, n));
    };
    await conn.write(ask(false));
    answers.push((await read())!);
    await conn.write(ask(true));
    answers.push((await read())!);
    assert.match(answers[0], /^HTTP\/1\.1 200 OK[\s\S]*connection: keep-alive/i);
    assert.match(answers[0], new RegExp(`\\r\\n\\r\\n${oci.region}$`));
    assert.match(answers[1], /^HTTP\/1\.1 200 OK[\s\S]*connection: close/i);
    assert.equal(await read(), null, "closed after the request that asked for it");
    conn.close();
  } finally {
    await oci.close();
  }
});
