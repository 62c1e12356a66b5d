// checkContent(), pairingProblems() and expiresWithin() on certificates made in the test with
// openssl: expired, not yet valid, wrong key, truncated, a chain with a bad leaf, keys in
// PKCS#1, PKCS#8, SEC 1 (EC) and encrypted forms. Run: `deno test -A tests/content/pem_test.ts`.
import assert from "node:assert/strict";
import {
  checkContent,
  type ContentCheck,
  expiresWithin,
  pairingProblems,
  type PemContent,
  readPem,
} from "../../src/pem.ts";
import { parseDuration } from "../../src/duration.ts";
import { makeTestCert, reencode, stamp } from "./certs.ts";

const DAY = 86_400_000;
const now = new Date();
const bytes = (text: string) => new TextEncoder().encode(text);
const check = (text: string, options: { allowExpired?: boolean; previous?: string } = {}) =>
  checkContent(bytes(text), {
    now,
    allowExpired: options.allowExpired,
    previous: options.previous === undefined ? undefined : bytes(options.previous),
  });

function refused(verdict: ContentCheck, reason: RegExp): void {
  assert.equal(verdict.ok, false, "expected the content to be refused");
  if (!verdict.ok) assert.match(verdict.reason, reason);
}

function pem(verdict: ContentCheck): PemContent {
  assert.ok(verdict.ok, verdict.ok ? "" : verdict.reason);
  assert.ok(verdict.pem, "expected PEM");
  return verdict.pem;
}

const [rsa, ec, other, expired, future, ca] = await Promise.all([
  makeTestCert("rsa.example", { type: "rsa" }),
  makeTestCert("ec.example"),
  makeTestCert("other.example"),
  makeTestCert("expired.example", { start: "20200101000000Z", end: "20200102000000Z" }),
  makeTestCert("future.example", { start: stamp(10 * DAY), end: stamp(40 * DAY) }),
  makeTestCert("Test CA", { ca: true }),
]);

/** No reason may quote a key: the base64 body of every key in this file. */
const keyBodies = [rsa, ec, other, expired, future, ca].map((c) =>
  c.key.split("\n").filter((l) => l && !l.startsWith("-----")).join("")
);

function assertNoKeyIn(text: string): void {
  for (const body of keyBodies) {
    for (let i = 0; i + 40 <= body.length; i += 40) {
      assert.ok(!text.includes(body.slice(i, i + 40)), "a key leaked into a reason");
    }
  }
}

Deno.test("checkContent() accepts a valid certificate and reports its window", () => {
  const content = pem(check(ec.cert));
  assert.equal(content.certificates, 1);
  assert.equal(content.leaf?.subject, "CN=ec.example");
  assert.ok(content.leaf!.notAfter.getTime() > now.getTime() + 29 * DAY);
  assert.equal(content.leaf?.ca, false);
});

Deno.test("checkContent() refuses an expired certificate unless expired ones are allowed", () => {
  refused(
    check(expired.cert),
    /certificate "CN=expired.example" expired on 2020-01-02T00:00:00.000Z/,
  );
  assert.equal(check(expired.cert, { allowExpired: true }).ok, true);
});

Deno.test("checkContent() refuses a certificate that is not valid yet", () => {
  refused(check(future.cert), /"CN=future.example" is not valid before 20\d\d-/);
  assert.equal(check(future.cert, { allowExpired: true }).ok, true);
});

Deno.test("checkContent() refuses a truncated certificate or key", async (t) => {
  await t.step("cut inside the body: no END line", () => {
    refused(check(ec.cert.slice(0, 100)), /"CERTIFICATE" block has no END line/);
    refused(check(rsa.key.slice(0, 300)), /"PRIVATE KEY" block has no END line/);
  });
  await t.step("lines lost from the middle, END kept", () => {
    const lines = ec.cert.split("\n");
    const cut = [lines[0], ...lines.slice(3)].join("\n");
    refused(check(cut), /the certificate does not parse as an X.509 certificate/);
    const keyLines = rsa.key.split("\n");
    refused(
      check([keyLines[0], ...keyLines.slice(5)].join("\n")),
      /the private key \("PRIVATE KEY"\) does not parse/,
    );
  });
  await t.step("a second block starts before the first ends", () => {
    refused(check(ec.cert.slice(0, 100) + "\n" + ec.key), /"CERTIFICATE" block has no END line/);
  });
});

Deno.test("checkContent() reads keys in PKCS#1, PKCS#8, SEC 1 and encrypted form", async (t) => {
  const rsaPublic = pem(check(rsa.cert)).leaf!.publicKey;
  const ecPublic = pem(check(ec.cert)).leaf!.publicKey;
  await t.step("RSA, PKCS#8", () => assert.deepEqual(pem(check(rsa.key)).keys, [rsaPublic]));
  await t.step("RSA, PKCS#1", () => {
    const pkcs1 = reencode(rsa.key, "pkcs1");
    assert.match(pkcs1, /^-----BEGIN RSA PRIVATE KEY-----/);
    assert.deepEqual(pem(check(pkcs1)).keys, [rsaPublic]);
  });
  await t.step("EC, PKCS#8", () => assert.deepEqual(pem(check(ec.key)).keys, [ecPublic]));
  await t.step("EC, SEC 1", () => {
    const sec1 = reencode(ec.key, "sec1");
    assert.match(sec1, /^-----BEGIN EC PRIVATE KEY-----/);
    assert.deepEqual(pem(check(sec1)).keys, [ecPublic]);
  });
  await t.step("encrypted PKCS#8: framing only, no pairing", () => {
    const encrypted = reencode(rsa.key, "encrypted");
    assert.match(encrypted, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    const content = pem(check(encrypted));
    assert.deepEqual(content.keys, []);
    assert.equal(content.encryptedKeys, 1);
    refused(
      check(encrypted.replace(/\n[A-Za-z0-9+/]{20}/, "\n!!")),
      /encrypted private key does not parse/,
    );
  });
  await t.step("garbage inside a key block", () => {
    refused(
      check("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n"),
      /the private key \("EC PRIVATE KEY"\) does not parse/,
    );
  });
});

Deno.test("checkContent() checks a chain by its leaf; every certificate must parse", async (t) => {
  await t.step("good leaf, CA after it", () => {
    const content = pem(check(ec.cert + ca.cert));
    assert.equal(content.certificates, 2);
    assert.equal(content.leaf?.subject, "CN=ec.example");
  });
  await t.step("expired leaf, good CA: refused", () => {
    refused(check(expired.cert + ca.cert), /"CN=expired.example" expired/);
  });
  await t.step("good CA first, expired leaf second: the first is the leaf", () => {
    assert.equal(check(ca.cert + expired.cert).ok, true);
  });
  await t.step("a broken second certificate", () => {
    const lines = ca.cert.split("\n");
    refused(
      check(ec.cert + [lines[0], ...lines.slice(4)].join("\n")),
      /certificate 2 does not parse/,
    );
  });
});

Deno.test("checkContent() refuses a combined PEM whose key is not its certificate's", () => {
  assert.equal(check(rsa.cert + rsa.key).ok, true);
  assert.equal(check(ec.cert + reencode(ec.key, "sec1")).ok, true);
  const verdict = check(ec.cert + other.key);
  refused(verdict, /private key in the file does not match its certificate "CN=ec.example"/);
  assertNoKeyIn(JSON.stringify(verdict));
});

Deno.test("checkContent() leaves content that is not PEM alone, unless it replaces a certificate or key", () => {
  assert.deepEqual(check("s3cret-password\n"), { ok: true });
  assert.deepEqual(check("s3cret-password\n", { previous: "old-password\n" }), { ok: true });
  refused(
    check("this is not a certificate\n", { previous: ec.cert }),
    /holds a certificate and the new content is not PEM/,
  );
  refused(check("", { previous: ec.key }), /holds a private key and the new content is not PEM/);
  // Other PEM labels are checked for framing only.
  assert.equal(
    check("-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n").ok,
    true,
  );
  refused(check("-----BEGIN DH PARAMETERS-----\nAAAA\n"), /"DH PARAMETERS" block has no END line/);
});

Deno.test("readPem() returns undefined for content without a BEGIN line", () => {
  assert.equal(readPem(bytes("just text")), undefined);
});

Deno.test("pairingProblems() checks a target's certificates against its keys", async (t) => {
  const p = (text: string) => pem(check(text));
  const crt = "/run/secrets/tls.crt";
  const key = "/run/secrets/tls.key";
  await t.step("a new certificate and its new key: fine", () => {
    assert.deepEqual(
      pairingProblems([{ path: crt, changed: true, pem: p(ec.cert) }, {
        path: key,
        changed: true,
        pem: p(ec.key),
      }]),
      [],
    );
  });
  // Before this run the target had the pair `other` on disk.
  const before = () => new Map([[crt, p(other.cert)], [key, p(other.key)]]);
  await t.step("a new certificate with the key of another one: both refused", () => {
    const problems = pairingProblems([
      { path: crt, changed: true, pem: p(ec.cert) },
      { path: key, changed: true, pem: p(rsa.key) },
    ], before());
    assert.deepEqual(problems.map((x) => x.path).sort(), [crt, key]);
    assert.match(problems[0].reason, /matches no/);
    assertNoKeyIn(JSON.stringify(problems));
  });
  await t.step("the first time, a non-CA certificate still needs its key", () => {
    const problems = pairingProblems([
      { path: crt, changed: true, pem: p(ec.cert) },
      { path: key, changed: true, pem: p(other.key) },
    ]);
    assert.ok(problems.some((x) => x.path === crt));
  });
  await t.step("a new certificate against the old key on disk: the certificate is refused", () => {
    const problems = pairingProblems([
      { path: crt, changed: true, pem: p(ec.cert) },
      { path: key, changed: false, pem: p(other.key) },
    ], before());
    assert.deepEqual(problems.map((x) => x.path), [crt]);
    assert.match(
      problems[0].reason,
      /private key in \/run\/secrets\/tls.key matches no certificate/,
    );
  });
  await t.step("a new key against the old certificate on disk: the key is refused", () => {
    const problems = pairingProblems([
      { path: crt, changed: false, pem: p(other.cert) },
      { path: key, changed: true, pem: p(reencode(ec.key, "sec1")) },
    ], before());
    assert.deepEqual(problems.map((x) => x.path), [key]);
  });
  await t.step(
    "a self-signed CA:TRUE server certificate that had its key keeps needing one",
    () => {
      const history = new Map([[crt, p(ca.cert)], [key, p(ca.key)]]);
      assert.deepEqual(
        pairingProblems([
          { path: crt, changed: false, pem: p(ca.cert) },
          { path: key, changed: true, pem: p(other.key) },
        ], history).map((x) => x.path),
        [key],
      );
      assert.deepEqual(
        pairingProblems([
          { path: crt, changed: true, pem: p(other.cert) },
          { path: key, changed: true, pem: p(other.key) },
        ], history),
        [],
      );
    },
  );
  await t.step(
    "a key for something else (a JWT signing key) beside the pair needs no certificate",
    () => {
      const jwt = "/run/secrets/jwt.key";
      assert.deepEqual(
        pairingProblems([
          { path: crt, changed: true, pem: p(ec.cert) },
          { path: key, changed: true, pem: p(ec.key) },
          { path: jwt, changed: false, pem: p(rsa.key) },
        ], before()),
        [],
      );
      assert.deepEqual(
        pairingProblems([
          { path: crt, changed: false, pem: p(other.cert) },
          { path: key, changed: false, pem: p(other.key) },
          { path: jwt, changed: true, pem: p(reencode(rsa.key, "pkcs1")) },
        ], new Map([[jwt, p(ec.key)]])),
        [],
      );
    },
  );
  await t.step(
    "a new key matching the old certificate on disk: fine (PKCS#1 vs certificate)",
    () => {
      assert.deepEqual(
        pairingProblems([
          { path: crt, changed: false, pem: p(rsa.cert) },
          { path: key, changed: true, pem: p(reencode(rsa.key, "pkcs1")) },
        ]),
        [],
      );
    },
  );
  await t.step("a CA file beside the pair needs no key", () => {
    assert.deepEqual(
      pairingProblems([
        { path: crt, changed: true, pem: p(ec.cert) },
        { path: key, changed: true, pem: p(ec.key) },
        { path: "/run/secrets/ca.crt", changed: true, pem: p(ca.cert) },
      ]),
      [],
    );
  });
  await t.step("two pairs on one target (two virtual hosts)", () => {
    assert.deepEqual(
      pairingProblems([
        { path: "/s/a.crt", changed: true, pem: p(ec.cert) },
        { path: "/s/a.key", changed: false, pem: p(ec.key) },
        { path: "/s/b.crt", changed: true, pem: p(rsa.cert) },
        { path: "/s/b.key", changed: true, pem: p(rsa.key) },
      ]),
      [],
    );
  });
  await t.step("a refused file falls back to its old content, which may clear the rest", () => {
    // New cert and key are both fine together, but the new cert is refused elsewhere... here:
    // new key refused (mismatch with an unchanged certificate) brings back the old key.
    const problems = pairingProblems(
      [
        { path: crt, changed: false, pem: p(ec.cert) },
        { path: key, changed: true, pem: p(other.key) },
      ],
      new Map([[key, p(ec.key)]]),
    );
    assert.deepEqual(problems.map((x) => x.path), [key]);
  });
  await t.step(
    "a key with a passphrase replacing a paired key: the certificate is not judged",
    () => {
      assert.deepEqual(
        pairingProblems([
          { path: crt, changed: true, pem: p(ec.cert) },
          { path: key, changed: true, pem: p(reencode(ec.key, "encrypted")) },
        ], before()),
        [],
      );
    },
  );
  await t.step("an encrypted key takes no part", () => {
    assert.deepEqual(
      pairingProblems([
        { path: crt, changed: true, pem: p(ec.cert) },
        { path: key, changed: true, pem: p(reencode(other.key, "encrypted")) },
      ]),
      [],
    );
  });
});

Deno.test("expiresWithin() and parseDuration()", () => {
  const at = new Date("2030-01-01T00:00:00Z");
  assert.equal(expiresWithin(new Date("2030-01-10T00:00:00Z"), parseDuration("14d")!, at), true);
  assert.equal(expiresWithin(new Date("2030-02-10T00:00:00Z"), parseDuration("14d")!, at), false);
  assert.equal(expiresWithin(new Date("2029-12-01T00:00:00Z"), 0, at), true);
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("12h"), 43_200_000);
  assert.equal(parseDuration("2w"), undefined);
  assert.equal(parseDuration("-1d"), undefined);
  assert.equal(parseDuration("d"), undefined);
});

// Found by the r-rotation review: valid content the checks refused, and non-PEM that slipped by.
Deno.test("checkContent() accepts RSA-PSS and Ed25519 certificates and pairs them", async (t) => {
  const [pss, ed] = await Promise.all([
    makeTestCert("pss.example", { type: "rsa-pss" }),
    makeTestCert("ed.example", { type: "ed25519" }),
  ]);
  for (const [name, cert] of [["RSA-PSS", pss], ["Ed25519", ed]] as const) {
    await t.step(name, () => {
      const leaf = pem(check(cert.cert)).leaf!;
      const key = pem(check(cert.key)).keys;
      assert.deepEqual(key, [leaf.publicKey]);
      assert.equal(check(cert.cert + cert.key).ok, true);
      refused(check(cert.cert + rsa.key), /does not match its certificate/);
      assert.deepEqual(
        pairingProblems([
          { path: "/run/secrets/a.crt", changed: true, pem: pem(check(cert.cert)) },
          { path: "/run/secrets/a.key", changed: true, pem: pem(check(cert.key)) },
        ]),
        [],
      );
    });
  }
});

Deno.test("checkContent() accepts a legacy encrypted key (Proc-Type: 4,ENCRYPTED)", () => {
  for (const source of [rsa.key, ec.key]) {
    const legacy = reencode(source, "encrypted-pkcs1");
    assert.match(legacy, /Proc-Type: 4,ENCRYPTED/);
    const content = pem(check(legacy));
    assert.equal(content.encryptedKeys, 1);
    assert.deepEqual(content.keys, []);
  }
  // Framing still counts: a cut-off body, or no DEK-Info, is refused.
  const legacy = reencode(rsa.key, "encrypted-pkcs1");
  refused(check(legacy.replace(/DEK-Info:.*\n/, "")), /encrypted private key does not parse/);
  refused(check(legacy.replace(/\n[A-Za-z0-9+/=]+\n-----END/, "\n!!\n-----END")), /does not parse/);
});

Deno.test("checkContent() treats text with no PEM block as not PEM (it may not replace a certificate)", () => {
  for (
    const text of [
      "oops -----BEGIN nothing",
      JSON.stringify({ "tls.crt": ec.cert }),
      ec.cert.split("\n").map((line) => `  ${line}`).join("\n"),
    ]
  ) {
    refused(
      check(text, { previous: ec.cert }),
      /holds a certificate and the new content is not PEM/,
    );
    assert.deepEqual(check(text), { ok: true });
  }
});

Deno.test("pairingProblems() refuses both halves of a mismatched pair written the first time", () => {
  // Nothing on disk yet: writing the key alone would reload the server with half a pair.
  const p = (text: string) => pem(check(text));
  const problems = pairingProblems([
    { path: "/run/secrets/tls.crt", changed: true, pem: p(ec.cert) },
    { path: "/run/secrets/tls.key", changed: true, pem: p(other.key) },
    { path: "/run/secrets/ca.crt", changed: true, pem: p(ca.cert) },
  ]);
  assert.deepEqual(problems.map((x) => x.path).sort(), [
    "/run/secrets/tls.crt",
    "/run/secrets/tls.key",
  ]);
  // A second pair on the same target that matches is still written.
  assert.deepEqual(
    pairingProblems([
      { path: "/run/secrets/a.crt", changed: true, pem: p(ec.cert) },
      { path: "/run/secrets/a.key", changed: true, pem: p(other.key) },
      { path: "/run/secrets/b.crt", changed: true, pem: p(rsa.cert) },
      { path: "/run/secrets/b.key", changed: true, pem: p(rsa.key) },
    ]).map((x) => x.path).sort(),
    ["/run/secrets/a.crt", "/run/secrets/a.key"],
  );
});

Deno.test("checkContent() accepts EC keys on curves node:crypto cannot read (Brainpool), checking their DER", async () => {
  // OpenSSL (so nginx, HAProxy) loads Brainpool keys; Deno's createPrivateKey does not.
  const dir = await Deno.makeTempDir({ prefix: "secretsync-brainpool-" });
  try {
    const run = (args: string[]) =>
      new Deno.Command("openssl", { args, cwd: dir, stderr: "null" }).output();
    await run([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:brainpoolP256r1",
      "-nodes",
      "-keyout",
      "k.pem",
      "-out",
      "c.pem",
      "-subj",
      "/CN=brainpool",
      "-days",
      "2",
    ]);
    await run(["ec", "-in", "k.pem", "-out", "sec1.pem"]);
    const [cert, pkcs8, sec1] = await Promise.all(
      ["c.pem", "k.pem", "sec1.pem"].map((f) => Deno.readTextFile(`${dir}/${f}`)),
    );
    assert.match(sec1, /BEGIN EC PRIVATE KEY/);
    for (const key of [pkcs8, sec1]) {
      const content = pem(check(key));
      assert.deepEqual(content.keys, [], "not comparable: it takes no part in pairing");
      assert.equal(content.otherKeys, 1);
      // Made after `now`: checked against the clock as it is now.
      assert.equal(checkContent(bytes(cert + key), { now: new Date() }).ok, true);
      // Its DER must still be whole: a line lost from the middle is refused.
      const lines = key.split("\n");
      refused(check([...lines.slice(0, 2), ...lines.slice(3)].join("\n")), /does not parse/);
      // And it may not be replaced by what is not PEM.
      refused(check("oops\n", { previous: key }), /holds a private key/);
    }
    assert.deepEqual(
      pairingProblems([
        {
          path: "/run/secrets/bp.crt",
          changed: true,
          pem: pem(checkContent(bytes(cert), { now: new Date() })),
        },
        { path: "/run/secrets/bp.key", changed: true, pem: pem(check(pkcs8)) },
        { path: "/run/secrets/ec.crt", changed: true, pem: pem(check(ec.cert)) },
        { path: "/run/secrets/ec.key", changed: true, pem: pem(check(ec.key)) },
      ]),
      [],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkContent() still refuses a damaged P-256 key whose DER lengths hold", () => {
  const lines = ec.key.split("\n");
  // Flip characters in the middle of the key's body: same length, same structure, not a key.
  const body = lines[2].split("");
  for (let i = 10; i < 30; i++) body[i] = body[i] === "A" ? "B" : "A";
  lines[2] = body.join("");
  refused(check(lines.join("\n")), /private key \("PRIVATE KEY"\) does not parse/);
});

Deno.test("checkContent() reads a certificate with RFC 1421 headers, as OpenSSL does", () => {
  const withHeaders = ec.cert.replace(
    "-----BEGIN CERTIFICATE-----\n",
    "-----BEGIN CERTIFICATE-----\nComment: issued by a test\n\n",
  );
  assert.equal(pem(check(withHeaders)).leaf?.subject, "CN=ec.example");
});
