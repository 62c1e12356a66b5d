// What the reload recipes rely on, shown against the real servers (Debian 12's nginx 1.22,
// HAProxy 2.6, Postfix 3.7, Dovecot 2.3) in containers, with the certificate rotated the way
// secretsync rotates it: each file written to a temporary name and renamed in the same
// directory, a directory (never a single file) mounted read-only at /run/secrets.
//
// For each server: the reload action makes the same container (same PID 1, same StartedAt)
// serve the new certificate; and what the validation command and the reload do when the new
// certificate is broken. Run: `deno test -A tests/containers/servers_test.ts` (as root).
//
// These are the servers' own behaviours, with files written behind secretsync's back. They are
// why secretsync checks PEM content before a write (src/pem.ts): Postfix and Dovecot validate
// without reading the certificate and then drop TLS; through secretsync the same broken files
// are refused before the write and a reload keeps the old certificate (recipes_e2e_test.ts).
import assert from "node:assert/strict";
import { waitForLog } from "./podman.ts";
import {
  type CertPair,
  ensureNginxImage,
  installCertPair,
  makeCertPair,
  type RunIdentity,
  startNginx,
  type TlsServer,
} from "./nginx.ts";
import { ensureHaproxyImage, HAPROXY_CFG, startHaproxy } from "./haproxy.ts";
import { ensurePostfixImage, startPostfix } from "./postfix.ts";
import { ensureDovecotImage, startDovecot } from "./dovecot.ts";

/** Two certificates, made once (openssl), shared by every test. */
const certs = Promise.all([makeCertPair("cert-a"), makeCertPair("cert-b")]);

/** Ways a rotated certificate can be broken; `good` is what the server serves before. */
const BROKEN: { what: string; pair: (good: CertPair, other: CertPair) => CertPair }[] = [
  { what: "not PEM", pair: (good) => ({ ...good, cert: "this is not a certificate\n" }) },
  { what: "key of another certificate", pair: (good, other) => ({ ...good, key: other.key }) },
  { what: "truncated certificate", pair: (good) => ({ ...good, cert: good.cert.slice(0, 100) }) },
];

async function withSecrets(
  start: (secretsDir: string) => Promise<TlsServer>,
  fn: (server: TlsServer, secretsDir: string) => Promise<void>,
): Promise<void> {
  const secretsDir = await Deno.makeTempDir({ prefix: "secretsync-servers-test-" });
  try {
    const [a] = await certs;
    await installCertPair(secretsDir, a, { combined: "haproxy.pem" });
    const server = await start(secretsDir);
    try {
      await fn(server, secretsDir);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(secretsDir, { recursive: true });
  }
}

async function assertSameRun(server: TlsServer, before: RunIdentity): Promise<void> {
  const now = await server.identity();
  assert.deepEqual(now, before, "the container was restarted, not reloaded");
  assert.ok(now.running);
}

/** Polls until the server presents no certificate at all (the TLS handshake fails). */
async function waitForNoCert(server: TlsServer, what: string, waitMs = 10_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let served: string;
    try {
      served = await server.fingerprint();
    } catch {
      return;
    }
    if (Date.now() > deadline) assert.fail(`${what}: still serving ${served}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function assertExit(
  server: TlsServer,
  argv: string[],
  code: number,
  output?: RegExp,
): Promise<void> {
  const result = await server.exec(argv);
  const text = result.stdout + result.stderr;
  assert.equal(result.code, code, `${argv.join(" ")} exited ${result.code}:\n${text}`);
  if (output) assert.match(text, output);
}

// ---------------------------------------------------------------------------------------
// nginx: HUP to PID 1 (the master); validate with `nginx -t`

Deno.test("nginx: HUP makes the same container serve the rotated certificate", async () => {
  await ensureNginxImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startNginx({ secretsDir: dir }), async (server, dir) => {
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();

    await installCertPair(dir, b);
    // nginx read the files at start: nothing changes until the reload.
    assert.equal(await server.fingerprint(), a.fingerprint);
    await assertExit(server, ["nginx", "-t"], 0, /test is successful/);
    await server.kill("HUP");
    await server.waitForCert(b.fingerprint);
    await assertSameRun(server, before);

    // `nginx -s reload` (run in the container) does the same: it sends HUP to the master.
    await installCertPair(dir, a);
    await assertExit(server, ["nginx", "-s", "reload"], 0);
    await server.waitForCert(a.fingerprint);
    await assertSameRun(server, before);
  });
});

Deno.test("nginx: a broken certificate fails `nginx -t`; HUP keeps serving the old one", async () => {
  await ensureNginxImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startNginx({ secretsDir: dir }), async (server, dir) => {
    const before = await server.identity();
    let emerg = 0;
    for (const broken of BROKEN) {
      await installCertPair(dir, broken.pair(a, b));
      await assertExit(server, ["nginx", "-t"], 1, /test failed/);
      // `nginx -s reload` parses the configuration first: it fails too, and signals nothing.
      await assertExit(server, ["nginx", "-s", "reload"], 1);
      await server.kill("HUP"); // podman kill succeeds: the failure shows only in the log
      await waitForLog(server.name, /\[emerg\] 1#1: /, { count: ++emerg });
      assert.equal(await server.fingerprint(), a.fingerprint, broken.what);
      await assertSameRun(server, before);
    }
    const logs = await server.logs();
    assert.equal([...logs.matchAll(/signal 1 \(SIGHUP\) received/g)].length, BROKEN.length);

    await installCertPair(dir, b);
    await server.kill("HUP");
    await server.waitForCert(b.fingerprint);
    await assertSameRun(server, before);
  });
});

// ---------------------------------------------------------------------------------------
// HAProxy 2.6, master-worker (-W): HUP or USR2 to PID 1; validate with `haproxy -c -f`

Deno.test("haproxy: HUP and USR2 both reload the master with the rotated certificate", async (t) => {
  await ensureHaproxyImage();
  const [a, b] = await certs;
  for (const layout of ["split", "combined"] as const) {
    await t.step(`${layout} PEM`, async () => {
      await withSecrets(
        (dir) => startHaproxy({ secretsDir: dir, layout }),
        async (server, dir) => {
          assert.equal(await server.fingerprint(), a.fingerprint);
          const before = await server.identity();

          await installCertPair(dir, b, { combined: "haproxy.pem" });
          assert.equal(await server.fingerprint(), a.fingerprint);
          await assertExit(server, ["haproxy", "-c", "-f", HAPROXY_CFG], 0, /valid/);
          await server.kill("HUP");
          await server.waitForCert(b.fingerprint);
          await assertSameRun(server, before);

          await installCertPair(dir, a, { combined: "haproxy.pem" });
          await server.kill("USR2");
          await server.waitForCert(a.fingerprint);
          await assertSameRun(server, before);
        },
      );
    });
  }
});

Deno.test("haproxy: a broken certificate fails `haproxy -c`; a reload keeps the old worker", async () => {
  await ensureHaproxyImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startHaproxy({ secretsDir: dir }), async (server, dir) => {
    const before = await server.identity();
    let failures = 0;
    for (const broken of BROKEN) {
      await installCertPair(dir, broken.pair(a, b));
      await assertExit(server, ["haproxy", "-c", "-f", HAPROXY_CFG], 1, /Fatal errors/);
      await server.kill("HUP");
      await waitForLog(server.name, /Loading failure!/, { count: ++failures });
      assert.equal(await server.fingerprint(), a.fingerprint, broken.what);
      await assertSameRun(server, before);
    }
    await installCertPair(dir, b);
    await server.kill("HUP");
    await server.waitForCert(b.fingerprint);
    await assertSameRun(server, before);
  });
});

// ---------------------------------------------------------------------------------------
// Postfix: `postfix reload` in the container; `postfix check` does not look at certificates

Deno.test("postfix: `postfix reload` makes smtpd present the rotated certificate", async () => {
  await ensurePostfixImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startPostfix({ secretsDir: dir }), async (server, dir) => {
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();

    await installCertPair(dir, b);
    await assertExit(server, ["postfix", "check"], 0);
    await assertExit(server, ["postfix", "reload"], 0);
    await server.waitForCert(b.fingerprint);
    await assertSameRun(server, before);
  });
});

// secretsync refuses each of these before the write: see "recipe postfix" in recipes_e2e_test.ts.
Deno.test("postfix: `postfix check` passes a broken certificate; after reload STARTTLS fails", async () => {
  await ensurePostfixImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startPostfix({ secretsDir: dir }), async (server, dir) => {
    const before = await server.identity();
    for (const broken of BROKEN) {
      await installCertPair(dir, broken.pair(a, b));
      await assertExit(server, ["postfix", "check"], 0);
      await assertExit(server, ["postfix", "reload"], 0);
      // New smtpd processes cannot load the pair: they still offer STARTTLS, then answer
      // "454 4.7.0 TLS not available due to local problem"; nothing keeps the old certificate.
      await waitForNoCert(server, broken.what);
      assert.match(await server.logs(), /disabling TLS support/);
      await assertSameRun(server, before);
    }
    await installCertPair(dir, b);
    await assertExit(server, ["postfix", "reload"], 0);
    await server.waitForCert(b.fingerprint);
    await assertSameRun(server, before);
  });
});

// ---------------------------------------------------------------------------------------
// Dovecot: `doveadm reload` in the container; `doveconf -n` does not read the files

Deno.test("dovecot: `doveadm reload` makes the same container serve the rotated certificate", async () => {
  await ensureDovecotImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startDovecot({ secretsDir: dir }), async (server, dir) => {
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();

    await installCertPair(dir, b);
    // The config process read ssl_cert/ssl_key (`<file`) at start: no change until reload.
    assert.equal(await server.fingerprint(), a.fingerprint);
    await assertExit(server, ["doveconf", "-n"], 0);
    await assertExit(server, ["doveadm", "reload"], 0);
    await server.waitForCert(b.fingerprint);
    await assertSameRun(server, before);
  });
});

// secretsync refuses each broken one before the write: see "recipe dovecot" in recipes_e2e_test.ts.
Deno.test("dovecot: a broken certificate passes doveconf; after reload TLS fails; a missing one keeps the old", async () => {
  await ensureDovecotImage();
  const [a, b] = await certs;
  await withSecrets((dir) => startDovecot({ secretsDir: dir }), async (server, dir) => {
    const before = await server.identity();
    let reloads = 0;
    for (const broken of BROKEN) {
      await installCertPair(dir, broken.pair(a, b));
      await assertExit(server, ["doveconf", "-n"], 0);
      await assertExit(server, ["doveconf", "-x"], 0); // -x reads the files, not their contents
      await assertExit(server, ["doveadm", "reload"], 0);
      await waitForLog(server.name, /SIGHUP received - reloading configuration/, {
        count: ++reloads,
      });
      await waitForNoCert(server, broken.what);
      await assertSameRun(server, before);
    }

    await installCertPair(dir, b);
    await assertExit(server, ["doveadm", "reload"], 0);
    await server.waitForCert(b.fingerprint);

    // A missing file is caught: `doveconf -x` fails, and the master keeps its old config.
    await Deno.remove(`${dir}/tls.crt`);
    await assertExit(server, ["doveconf", "-n"], 0);
    await assertExit(server, ["doveconf", "-x"], 89, /Can't open file \/run\/secrets\/tls\.crt/);
    await assertExit(server, ["doveadm", "reload"], 0);
    await waitForLog(server.name, /Error reading configuration/);
    assert.equal(await server.fingerprint(), b.fingerprint);
    await assertSameRun(server, before);
  });
});
