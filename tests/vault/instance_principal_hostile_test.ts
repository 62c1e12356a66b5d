/**
 * Instance principal authentication (src/vault/instance_principal.ts, region.ts) against a
 * hostile IMDS and a hostile federation endpoint on loopback: garbage, HTML, huge and slow
 * bodies, tokens that are no JWT, without `exp`, or expired on arrival, a tenancy that changes
 * on refresh. Each fails promptly with a reason, and no failure names key material or a token.
 */
import assert from "node:assert/strict";
import { InstancePrincipal } from "../../src/vault/instance_principal.ts";
import { readImdsRegion } from "../../src/vault/region.ts";
import { loadSdk } from "../../src/vault/sdk.ts";
import { generateSessionKeyPair } from "../../src/vault/session_key.ts";
import { getPki } from "../oci/_pki.ts";
import { startOciStandIn } from "../oci/standin.ts";
import { rejectsVault as failure } from "./_vault_error.ts";

/** What a hostile server answers a request with. */
type Answer = (path: string) => Response | Promise<Response>;

/** A loopback server answering every request with `answer` (switchable). */
function hostile(answer: Answer) {
  const state = { answer };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => state.answer(new URL(req.url).pathname),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    set(a: Answer) {
      state.answer = a;
    },
    close: () => server.shutdown(),
  };
}

function b64url(s: string): string {
  return new TextEncoder().encode(s).toBase64({ alphabet: "base64url", omitPadding: true });
}

function jwt(claims: Record<string, unknown>): string {
  return `${b64url('{"alg":"RS256"}')}.${b64url(JSON.stringify(claims))}.c2lnbmF0dXJl`;
}

/** Body that never ends: `chunk` every `everyMs`. */
function endless(chunk: string, everyMs = 0): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(chunk);
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream({
    async pull(c) {
      if (everyMs) await new Promise((r) => timer = setTimeout(r, everyMs));
      c.enqueue(bytes);
    },
    cancel() {
      clearTimeout(timer);
    },
  });
}

/** The base64 lines of a PEM, each of which must never appear in a message. */
function pemLines(pem: string): string[] {
  return pem.split("\n").filter((l) => l && !l.startsWith("-----"));
}

Deno.test("instance principal: a hostile federation endpoint fails promptly, naming no token", async (t) => {
  const oci = await startOciStandIn();
  const secretToken = "SECRET-TOKEN-VALUE";
  const fed = hostile(() => new Response("unset", { status: 500 }));
  const keys = await generateSessionKeyPair();
  const pki = await getPki(oci.tenancyId, "ocid1.instance.oc1.iad.aaaastandininstance");
  const messages: string[] = [];
  const authenticate = (timeoutMs = 5_000) =>
    failure(
      InstancePrincipal.authenticate({
        imdsUrl: oci.imdsUrl,
        federationEndpoint: fed.url,
        timeoutMs,
        sessionKeys: () => Promise.resolve(keys),
      }),
    ).then((e) => {
      messages.push(e.message);
      return e;
    });
  try {
    await t.step("200 with an HTML page", async () => {
      fed.set(() =>
        new Response(`<html><body>token ${secretToken}</body></html>`, {
          headers: { "content-type": "text/html" },
        })
      );
      const e = await authenticate();
      assert.match(e.message, /\/v1\/x509 failed: the answer holds no session token$/);
    });
    await t.step("a token that is no JWT", async () => {
      fed.set(() => Response.json({ token: secretToken }));
      const e = await authenticate();
      assert.match(e.message, /failed: the session token is no JWT with an expiry \(exp claim\)$/);
    });
    await t.step("a JWT without exp", async () => {
      fed.set(() => Response.json({ token: jwt({ sub: secretToken }) }));
      const e = await authenticate();
      assert.match(e.message, /failed: the session token is no JWT with an expiry \(exp claim\)$/);
    });
    await t.step("a JWT whose exp has passed", async () => {
      const exp = Math.floor(Date.now() / 1000) - 3600;
      fed.set(() => Response.json({ token: jwt({ sub: secretToken, exp }) }));
      const e = await authenticate();
      assert.match(
        e.message,
        /failed: the session token had expired when it arrived \(exp [0-9T:.-]+Z\); is this machine's clock right\?$/,
      );
    });
    await t.step("a huge answer is refused, not buffered", async () => {
      fed.set(() => new Response(endless(`{"token":"${"x".repeat(60_000)}`)));
      const started = Date.now();
      const e = await authenticate();
      assert.match(e.message, /failed: the answer is larger than 262144 bytes$/);
      assert.ok(Date.now() - started < 3_000, `${Date.now() - started} ms`);
    });
    await t.step("a body that trickles in: the phase's timeout, named as such", async () => {
      fed.set(() => new Response(endless(" ", 50)));
      const started = Date.now();
      const e = await authenticate(600);
      assert.match(e.message, /failed: timed out after 600 ms$/);
      assert.ok(Date.now() - started < 3_000, `${Date.now() - started} ms`);
    });
    await t.step("no message names the token or any key", () => {
      const secrets = [secretToken, ...pemLines(pki.leafKeyPem), ...pemLines(keys.getPrivate())];
      for (const m of messages) {
        for (const s of secrets) assert.ok(!m.includes(s), `${m} names ${s.slice(0, 8)}…`);
      }
    });
  } finally {
    await fed.close();
    await oci.close();
  }
});

Deno.test("instance principal: a hostile IMDS fails promptly, naming no key", async (t) => {
  const oci = await startOciStandIn();
  const pki = await getPki(oci.tenancyId, "ocid1.instance.oc1.iad.aaaastandininstance");
  const real = (path: string) =>
    fetch(`${oci.imdsUrl}${path.replace(/^\/opc\/v2\//, "")}`, {
      headers: { Authorization: "Bearer Oracle" },
    });
  const imds = hostile(real);
  const messages: string[] = [];
  const authenticate = (timeoutMs = 5_000) =>
    failure(
      InstancePrincipal.authenticate({
        imdsUrl: `${imds.url}/opc/v2/`,
        federationEndpoint: oci.authEndpoint,
        timeoutMs,
        sessionKeys: generateSessionKeyPair,
      }),
    ).then((e) => {
      messages.push(e.message);
      return e;
    });
  try {
    await t.step(
      "an endless certificate is refused at 64 KB, long before the timeout",
      async () => {
        imds.set((path) =>
          path.endsWith("cert.pem") ? new Response(endless("A".repeat(4096))) : real(path)
        );
        const started = Date.now();
        const e = await authenticate(10_000);
        assert.match(
          e.message,
          /failed: IMDS answered identity\/cert\.pem with more than 65536 bytes$/,
        );
        assert.ok(Date.now() - started < 3_000, `${Date.now() - started} ms`);
      },
    );
    await t.step("a huge key with a length is refused unread", async () => {
      imds.set((path) =>
        path.endsWith("key.pem")
          ? new Response(pki.leafKeyPem.repeat(100), {
            headers: { "content-length": String(pki.leafKeyPem.length * 100) },
          })
          : real(path)
      );
      const e = await authenticate();
      assert.match(
        e.message,
        /failed: IMDS answered identity\/key\.pem with more than 65536 bytes$/,
      );
    });
    await t.step("half a key: no usable private key, and none of it in the message", async () => {
      imds.set((path) =>
        path.endsWith("key.pem")
          ? new Response(pki.leafKeyPem.slice(0, pki.leafKeyPem.length / 2))
          : real(path)
      );
      const e = await authenticate();
      assert.match(
        e.message,
        /failed: IMDS answered identity\/key\.pem with no usable private key$/,
      );
    });
    await t.step("HTML instead of a certificate", async () => {
      imds.set((path) =>
        path.endsWith("intermediate.pem")
          ? new Response("<html>maintenance</html>", { headers: { "content-type": "text/html" } })
          : real(path)
      );
      const e = await authenticate();
      assert.match(e.message, /IMDS answered identity\/intermediate\.pem with no certificate$/);
    });
    await t.step("no message names the leaf key", () => {
      for (const m of messages) {
        for (const line of pemLines(pki.leafKeyPem)) assert.ok(!m.includes(line), m);
      }
    });
  } finally {
    await imds.close();
    await oci.close();
  }
});

Deno.test("instance principal: a refresh that fails is reported and tried again; a changed tenancy is refused", async () => {
  const oci = await startOciStandIn({ tokenTtlSeconds: 2 });
  const other = await getPki("ocid1.tenancy.oc1..aaaaother", "ocid1.instance.oc1.iad.other");
  const toStandIn = (req: Request, base: string) =>
    fetch(`${base}${new URL(req.url).pathname.replace(/^\/opc\/v2\//, "")}`, {
      method: req.method,
      headers: req.headers,
      body: req.body,
    });
  // IMDS through a proxy that can switch to another tenancy's identity; federation is the
  // stand-in's own (it checks the host it was signed for), faulted to answer garbage.
  let otherTenancy = false;
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (otherTenancy && path.endsWith("/identity/cert.pem")) {
      return new Response(other.leafCertPem);
    }
    if (otherTenancy && path.endsWith("/identity/key.pem")) return new Response(other.leafKeyPem);
    return toStandIn(req, oci.imdsUrl);
  });
  const url = `http://127.0.0.1:${proxy.addr.port}`;
  try {
    const p = await InstancePrincipal.authenticate({
      imdsUrl: `${url}/opc/v2/`,
      federationEndpoint: oci.authEndpoint,
      timeoutMs: 5_000,
      sessionKeys: generateSessionKeyPair,
    });
    const first = await p.keyId();
    await new Promise((r) => setTimeout(r, 2600));
    oci.fault({ path: "federation" }, { body: '{"token":"GARBAGE-TOKEN"}' });
    const failed = await Promise.allSettled([p.keyId(), p.keyId()]);
    for (const f of failed) {
      assert.equal(f.status, "rejected");
      const message = (f as PromiseRejectedResult).reason.message;
      assert.match(message, /no JWT with an expiry/);
      assert.doesNotMatch(message, /GARBAGE-TOKEN/);
    }
    oci.clearFaults();
    const renewed = await p.keyId();
    assert.notEqual(renewed, first, "the next call refreshes again");
    await new Promise((r) => setTimeout(r, 2600));
    otherTenancy = true;
    const e = await failure(p.keyId());
    assert.match(e.message, /the tenancy in the instance's certificate changed/);
    assert.equal(e.retryable, false);
  } finally {
    await proxy.shutdown();
    await oci.close();
  }
});

Deno.test("readImdsRegion(): a regionInfo whose realm domain is no domain name is not used", async (t) => {
  const info = {
    realmKey: "oc1",
    realmDomainComponent: "oraclecloud.com",
    regionKey: "IAD",
    regionIdentifier: "us-ashburn-1",
  };
  const imds = hostile(() => new Response("unset"));
  try {
    for (const domain of ["evil.example/steal?x=", "evil.example:8443", "oraclecloud", " "]) {
      await t.step(JSON.stringify(domain), async () => {
        imds.set((path) =>
          path.endsWith("/instance/regionInfo")
            ? Response.json({ ...info, realmDomainComponent: domain })
            : new Response("us-ashburn-1")
        );
        const region = await readImdsRegion(
          `${imds.url}/opc/v2/`,
          AbortSignal.timeout(5000),
          loadSdk,
        );
        // instance/region, looked up in the SDK's tables, instead.
        assert.deepEqual(region, {
          regionId: "us-ashburn-1",
          secondLevelDomain: "oraclecloud.com",
        });
      });
    }
    await t.step("a realm domain in capitals, with spaces around it, is used", async () => {
      imds.set(() => Response.json({ ...info, realmDomainComponent: " OracleCloud9.com " }));
      const region = await readImdsRegion(`${imds.url}/opc/v2/`, AbortSignal.timeout(5000), () => {
        throw new Error("no SDK needed");
      });
      assert.deepEqual(region, { regionId: "us-ashburn-1", secondLevelDomain: "oraclecloud9.com" });
    });
  } finally {
    await imds.close();
  }
});
