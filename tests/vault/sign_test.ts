import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import type { HttpRequest } from "oci-common";
import { SigningHeaders } from "../../src/vault/http.ts";
import { CachedKeySigner } from "../../src/vault/sign.ts";
import {
  contentSha256,
  parseAuthorization,
  signingString,
  verifyRsaSha256,
} from "../oci/_signature.ts";

function keyPair(format: "pkcs1" | "pkcs8") {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    pem: privateKey.export({ format: "pem", type: format }) as string,
    pub: publicKey,
  };
}

function request(method: string, uri: string, body?: string): HttpRequest {
  return { method, uri, headers: new Headers(), body } as HttpRequest;
}

function verify(req: HttpRequest, pub: ReturnType<typeof keyPair>["pub"]) {
  const params = parseAuthorization(req.headers.get("authorization"));
  assert(params, "an Authorization header in OCI's format");
  const url = new URL(req.uri);
  const data = signingString(req.method, url.pathname + url.search, req.headers, params.headers);
  return { params, valid: verifyRsaSha256(data, params.signature, pub) };
}

Deno.test("CachedKeySigner signs like the SDK and re-imports the key only when it changes", async (t) => {
  const a = keyPair("pkcs1");
  const b = keyPair("pkcs8");
  let current = a;
  let keyIds = 0;
  const signer = new CachedKeySigner({
    keyId: () => Promise.resolve(`ST$token-${++keyIds}`),
    privateKeyPem: () => current.pem,
  });

  await t.step("a GET signs x-date, (request-target) and host with the key id", async () => {
    const req = request("GET", "http://127.0.0.1:9/20190301/secretbundles/ocid1.x?stage=CURRENT");
    await signer.signHttpRequest(req);
    const { params, valid } = verify(req, a.pub);
    assert(valid, "the signature verifies with the provider's public key");
    assert.deepEqual(params.keyId, "ST$token-1");
    assert.deepEqual(params.headers, ["x-date", "(request-target)", "host"]);
    assert.deepEqual(req.headers.get("host"), "127.0.0.1:9");
    assert(req.headers.get("authorization")!.startsWith('Signature version="1",'));
  });

  await t.step("a POST also signs the body's type, length and hash", async () => {
    const body = '{"name":"db"}';
    const req = request(
      "POST",
      "http://127.0.0.1:9/20190301/secretbundles/actions/getByName",
      body,
    );
    await signer.signHttpRequest(req);
    const { params, valid } = verify(req, a.pub);
    assert(valid);
    assert.deepEqual(params.headers.slice(3), [
      "content-type",
      "content-length",
      "x-content-sha256",
    ]);
    assert.deepEqual(req.headers.get("content-length"), String(body.length));
    assert.deepEqual(
      req.headers.get("x-content-sha256"),
      contentSha256(new TextEncoder().encode(body)),
    );
  });

  await t.step("after a refresh changed the key, the new key signs", async () => {
    current = b;
    const req = request("GET", "http://127.0.0.1:9/20190301/secretbundles/ocid1.y");
    await signer.signHttpRequest(req);
    assert(verify(req, b.pub).valid, "signed with the new key");
    assert(!verify(req, a.pub).valid, "not with the old one");
  });
});

Deno.test("CachedKeySigner refuses a key id a header cannot carry, without quoting it", async () => {
  const { pem } = keyPair("pkcs8");
  for (
    const keyId of ["ST$tok\r\nx-evil: 1", 'ST$tok"x', "ST$tok\\x", "ST$tok en", "ST$tökén", ""]
  ) {
    const signer = new CachedKeySigner({
      keyId: () => Promise.resolve(keyId),
      privateKeyPem: () => pem,
    });
    const req = request("GET", "http://127.0.0.1:9/20190301/secretbundles/ocid1.x");
    const error = await signer.signHttpRequest(req).then(() => undefined, (e: Error) => e);
    assert(error, `${JSON.stringify(keyId)} is refused`);
    assert.match(error.message, /key id has characters an Authorization header cannot carry/);
    assert(!error.message.includes("tok"), "the key id is not quoted");
    assert.equal(req.headers.get("authorization"), null);
  }
});

Deno.test("SigningHeaders: what the signer sets goes to fetch once, names in any case", async () => {
  const { pem, pub } = keyPair("pkcs8");
  const signer = new CachedKeySigner({
    keyId: () => Promise.resolve("ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb"),
    privateKeyPem: () => pem,
  });
  const received: Headers[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (r) => {
    received.push(r.headers);
    return new Response("{}");
  });
  try {
    const uri = `http://127.0.0.1:${server.addr.port}/20190301/secretbundles/ocid1.x?stage=CURRENT`;
    const headers = new SigningHeaders();
    headers.set("Accept", "application/json");
    const req = { method: "GET", uri, headers };
    await signer.signHttpRequest(req);
    const signed = { method: "GET", uri, headers: new Headers(headers.pairs()) } as HttpRequest;
    assert(verify(signed, pub).valid, "signed over the headers it set");
    assert.equal(headers.get("ACCEPT"), "application/json");
    assert(headers.has("X-Date") && headers.has("host"));
    const names = headers.pairs().map(([name]) => name);
    assert.deepEqual(names.toSorted(), ["accept", "authorization", "host", "x-date"]);
    // What fetch sends from the pairs verifies at the other end.
    await (await fetch(uri, { headers: headers.pairs() })).body?.cancel();
    assert.equal(received.length, 1);
    const sent = { method: "GET", uri, headers: received[0] } as HttpRequest;
    assert(verify(sent, pub).valid, "the request as sent verifies");
    // fetch still checks every value it is given: a bad one is refused and nothing is sent.
    const bad = new SigningHeaders();
    bad.set("x-test", "a\r\nb: c");
    await assert.rejects(() => fetch(uri, { headers: bad.pairs() }), /Invalid header value/);
    assert.equal(received.length, 1, "the refused request was not sent");
  } finally {
    await server.shutdown();
  }
});

Deno.test("CachedKeySigner.prepare() fails on a key that is not a key", async () => {
  const signer = new CachedKeySigner({
    keyId: () => Promise.resolve("k"),
    privateKeyPem: () => "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
  });
  let failed = false;
  await signer.prepare().catch(() => failed = true);
  assert(failed, "prepare() rejects");
});

Deno.test("CachedKeySigner signs with a passphrase-protected API key", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({
    format: "pem",
    type: "pkcs8",
    cipher: "aes-256-cbc",
    passphrase: "correct horse",
  }) as string;
  const signer = new CachedKeySigner({
    keyId: () => Promise.resolve("tenancy/user/fingerprint"),
    privateKeyPem: () => pem,
    passphrase: "correct horse",
  });
  const req = request("GET", "http://127.0.0.1:9/20190301/secretbundles/ocid1.z");
  await signer.signHttpRequest(req);
  assert.ok(verify(req, publicKey).valid);
});

Deno.test("CachedKeySigner.signAhead: a planned request goes out with the signature made ahead", async (t) => {
  const a = keyPair("pkcs8");
  const b = keyPair("pkcs8");
  let current = a;
  const uri = (i: number) =>
    `https://secrets.example/20190301/secretbundles/ocid${i}?stage=CURRENT`;
  const byName = "https://secrets.example/20190301/secretbundles/actions/getByName?secretName=db";
  const plan = [
    ...[0, 1, 2, 3].map((i) => ({ method: "GET", uri: uri(i) })),
    { method: "POST", uri: byName },
  ];
  const xDate = (req: HttpRequest) => Date.parse(req.headers.get("x-date")!);

  await t.step(
    "made when planned (its x-date is older than the send), and it verifies",
    async () => {
      const signer = new CachedKeySigner({
        keyId: () => Promise.resolve("ST$token"),
        privateKeyPem: () => current.pem,
      });
      signer.signAhead(plan, 2);
      const planned = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const req = request("GET", uri(0));
      await signer.signHttpRequest(req);
      assert.ok(verify(req, a.pub).valid);
      assert.ok(xDate(req) <= planned, "signed at planning time, not at sending time");
    },
  );

  await t.step("the window moves with the requests sent, a bodyless POST included", async () => {
    const signer = new CachedKeySigner({
      keyId: () => Promise.resolve("ST$token"),
      privateKeyPem: () => current.pem,
    });
    signer.signAhead(plan, 1);
    const planned = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // Sending 0 moves the window to 1 (signed now, at send time of 0, then used later).
    const sent = [];
    for (const { method, uri } of plan) {
      const req = request(method, uri);
      await signer.signHttpRequest(req);
      assert.ok(verify(req, a.pub).valid, uri);
      sent.push(req);
    }
    const post = sent.at(-1)!;
    assert.equal(post.headers.get("x-content-sha256"), contentSha256(new Uint8Array()));
    assert.equal(post.headers.get("content-length"), "0");
    assert.ok(xDate(sent[0]) <= planned, "the first was signed ahead at planning");
    assert.ok(xDate(sent[1]) > planned, "with a window of 1, the second only once the first went");
  });

  await t.step(
    "a signature made ahead is not used when too old, or when the key changed",
    async () => {
      const old = new CachedKeySigner({
        keyId: () => Promise.resolve("ST$token"),
        privateKeyPem: () => current.pem,
      }, { maxPresignedAgeMs: 0 });
      old.signAhead(plan, 5);
      const planned = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const req = request("GET", uri(0));
      await old.signHttpRequest(req);
      assert.ok(verify(req, a.pub).valid);
      assert.ok(xDate(req) > planned, "signed again at sending time");

      const refreshed = new CachedKeySigner({
        keyId: () => Promise.resolve("ST$token"),
        privateKeyPem: () => current.pem,
      });
      refreshed.signAhead(plan, 5);
      await new Promise((resolve) => setTimeout(resolve, 50));
      current = b; // a token refresh brings a new session key
      const after = request("GET", uri(1));
      await refreshed.signHttpRequest(after);
      assert.ok(verify(after, b.pub).valid, "signed with the new key");
      assert.ok(!verify(after, a.pub).valid);
      current = a;
    },
  );

  await t.step("requests outside the plan, or with a body, are signed as they go", async () => {
    const signer = new CachedKeySigner({
      keyId: () => Promise.resolve("ST$token"),
      privateKeyPem: () => current.pem,
    });
    signer.signAhead(plan, 5);
    const outside = request("GET", uri(9));
    await signer.signHttpRequest(outside);
    assert.ok(verify(outside, a.pub).valid);
    const withBody = request("POST", byName, '{"x":1}');
    await signer.signHttpRequest(withBody);
    assert.ok(verify(withBody, a.pub).valid);
    assert.equal(
      withBody.headers.get("x-content-sha256"),
      contentSha256(
        new TextEncoder().encode('{"x":1}'),
      ),
    );
  });
});

Deno.test("SecretSource.upcoming is a hint: a request it cannot plan throws nothing; the fetch reports", async () => {
  const { startOciStandIn } = await import("../oci/standin.ts");
  const { openVault, VaultError } = await import("../../src/vault/mod.ts");
  const oci = await startOciStandIn();
  try {
    const vault = await openVault({
      auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      endpoint: "http://[not a host",
      stage: "CURRENT",
      attempts: 1,
    });
    try {
      vault.upcoming?.([{ secretId: "ocid1.vaultsecret.oc1.iad.a" }], 4);
      await assert.rejects(vault.fetch("ocid1.vaultsecret.oc1.iad.a"), VaultError);
    } finally {
      vault.close();
    }
  } finally {
    await oci.close();
  }
});

Deno.test("signingWindow: as many as run at once, but never more than ~10 s of requests under --rate", async () => {
  const { signingWindow } = await import("../../src/vault/open.ts");
  assert.equal(signingWindow(16), 16);
  assert.equal(signingWindow(16, 100), 16);
  assert.equal(signingWindow(16, 0.5), 5);
  assert.equal(signingWindow(16, 0.01), 1);
});
