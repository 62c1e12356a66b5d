/**
 * Reload recipes proven against real servers: `secretsync sync` (the CLI, as an operator runs
 * it) against the OCI stand-in, writing a TLS certificate and key into a directory that a
 * podman container serves them from, and reloading that container with a recipe.
 *
 * - nginx and HAProxy (master-worker): the stand-in rotates the certificate; one sync later
 *   `openssl s_client` sees the new one, from the same container run (same PID 1, same
 *   StartedAt), after exactly one reload. A broken certificate pushed as the new version is
 *   refused before the write. A pair only the server can judge (a key with a passphrase, which
 *   nginx cannot load) fails validation: nothing is signalled, the files written are rolled
 *   back, and a restart of the container serves the old certificate.
 * - Postfix and Dovecot: the recipe's validation and reload command run in the container, and
 *   the next STARTTLS / IMAPS handshake presents the new certificate. Their validation cannot
 *   see a broken certificate (servers_test.ts shows TLS failing after a reload): secretsync
 *   refuses it before the write, so a reload keeps serving the old one.
 * - openldap-style `none` recipes, `unit:` targets (a fake systemctl first on PATH: there is no
 *   systemd here) and `pidfile:` targets (a real host process) through the same CLI.
 *
 * Certificates are made at test time with openssl; no key ever reaches the test output.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { containerLogs, podman } from "../containers/podman.ts";
import { reencode } from "../content/certs.ts";
import {
  type CertPair,
  ensureNginxImage,
  makeCertPair,
  startNginx,
  type TlsServer,
} from "../containers/nginx.ts";
import { ensureHaproxyImage, startHaproxy } from "../containers/haproxy.ts";
import { ensurePostfixImage, startPostfix } from "../containers/postfix.ts";
import { ensureDovecotImage, startDovecot } from "../containers/dovecot.ts";
import {
  assertNoLeak,
  type CliResult,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  type Workspace,
} from "./harness.ts";

const CERT = "ocid1.vaultsecret.oc1.iad.amaaaaaarecipecert";
const KEY = "ocid1.vaultsecret.oc1.iad.amaaaaaarecipekey";

/** Three certificates for every test in this file, made once. */
const certs = Promise.all([makeCertPair("recipe-a"), makeCertPair("recipe-b"), makeCertPair("c")]);

/** A stand-in, a workspace holding cert A, and a server started on it; cleaned up after `fn`. */
async function withServer(
  start: (secretsDir: string) => Promise<TlsServer>,
  recipe: string,
  fn: (ctx: {
    server: TlsServer;
    ws: Workspace;
    sync: () => Promise<CliResult>;
    push: (pair: Pick<CertPair, "cert" | "key">) => void;
    outputs: string[];
  }) => Promise<void>,
): Promise<void> {
  const [a] = await certs;
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const outputs: string[] = [];
  let server: TlsServer | undefined;
  try {
    const push = (pair: Pick<CertPair, "cert" | "key">) => {
      oci.setSecret(CERT, pair.cert);
      oci.setSecret(KEY, pair.key);
    };
    const sync = async () => {
      const result = await runCli([
        "sync",
        ...ws.args(),
        ...instancePrincipalArgs(oci),
        "--runtime",
        "podman",
      ]);
      outputs.push(result.stdout, result.stderr);
      return result;
    };
    // First the files alone, so the server can start on them; then the map names it.
    push(a);
    await ws.writeMap([`${CERT},${ws.root}/tls.crt,0644`, `${KEY},${ws.root}/tls.key,0600`]);
    assert.equal((await sync()).code, 3);
    server = await start(ws.root);
    await ws.writeMap([
      `${CERT},${ws.root}/tls.crt,0644,${server.name},${recipe}`,
      `${KEY},${ws.root}/tls.key,0600,${server.name},${recipe}`,
    ]);
    const settled = await sync();
    assert.equal(settled.code, 0, settled.stderr);
    await fn({ server, ws, sync, push, outputs });
    const [, b, c] = await certs;
    assertNoLeak([a.key, b.key, c.key].map(keyBody), ...outputs, await server.logs());
  } finally {
    await server?.stop();
    await ws.cleanup();
    await oci.close();
  }
}

/** The base64 body of a PEM key: what a leak would show. */
function keyBody(pem: string): string {
  return pem.split("\n").filter((line) => line && !line.startsWith("-----")).join("\n");
}

/**
 * Pushes the broken versions of servers_test.ts (not PEM, the key of another certificate, a
 * truncated certificate) one by one: each run exits 1 naming the file, and the files on disk
 * stay `current`.
 */
async function assertRefusedBeforeWrite(
  ctx: {
    ws: Workspace;
    sync: () => Promise<CliResult>;
    push: (pair: Pick<CertPair, "cert" | "key">) => void;
  },
  current: CertPair,
  other: CertPair,
): Promise<void> {
  const broken: [string, Pick<CertPair, "cert" | "key">, RegExp][] = [
    ["not PEM", { cert: "this is not a certificate\n", key: current.key }, /tls.crt .*not PEM/],
    [
      "key of another certificate",
      { cert: current.cert, key: other.key },
      /tls.key .*matches no certificate/,
    ],
    [
      "truncated certificate",
      { cert: current.cert.slice(0, 100), key: current.key },
      /tls.crt .*no END line/,
    ],
  ];
  for (const [what, pair, reason] of broken) {
    ctx.push(pair);
    const run = await ctx.sync();
    assert.equal(run.code, 1, `${what}: ${run.stderr}`);
    assert.match(run.stderr, new RegExp(`Refusing ${ctx.ws.root}/${reason.source}`), what);
    assert.doesNotMatch(run.stdout, /Reloaded/, what);
    assert.equal(await Deno.readTextFile(`${ctx.ws.root}/tls.crt`), current.cert, what);
    assert.equal(await Deno.readTextFile(`${ctx.ws.root}/tls.key`), current.key, what);
  }
  ctx.push(current); // the vault holds a good pair again
}

async function waitForLogCount(server: TlsServer, pattern: RegExp, n: number): Promise<void> {
  for (const until = Date.now() + 10_000; count(await server.logs(), pattern) < n;) {
    if (Date.now() > until) assert.fail(`fewer than ${n} times in the log: ${pattern}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The server presents `fingerprint` for a while after a reload (new processes included). */
async function assertStillServes(server: TlsServer, fingerprint: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    assert.equal(await server.fingerprint(), fingerprint);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern.source, "g"))].length;
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    console.log(`  ${label}: ${((performance.now() - start) / 1000).toFixed(1)} s`);
  }
}

Deno.test("recipe nginx: one sync serves the rotated certificate from the same container, after `nginx -t`", async (t) => {
  await ensureNginxImage();
  const [a, b, c] = await certs;
  await withServer((dir) => startNginx({ secretsDir: dir }), "nginx", async (ctx) => {
    const { server, sync, push } = ctx;
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();

    await t.step("rotation: new certificate, same PID 1, one HUP", async () => {
      push(b);
      const run = await timed("sync + reload", sync);
      assert.equal(run.code, 3, run.stderr);
      assert.equal(count(run.stdout, new RegExp(`Reloaded ${server.name} with recipe nginx`)), 1);
      await server.waitForCert(b.fingerprint, 5000);
      assert.deepEqual(await server.identity(), before, "reloaded, not restarted");
      assert.equal(count(await server.logs(), /signal 1 \(SIGHUP\) received/), 1);
    });

    await t.step(
      "a broken certificate is refused before the write: no `nginx -t`, no HUP, exit 1",
      async () => {
        push({ cert: "this is not a certificate\n", key: c.key });
        const run = await sync();
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, /Refusing .*tls.crt .*the new content is not PEM/);
        assert.match(run.stderr, /Refusing .*tls.key .*matches no certificate/);
        assert.doesNotMatch(run.stderr, /validation/);
        assert.equal(await Deno.readTextFile(`${ctx.ws.root}/tls.crt`), b.cert);
        assert.equal(await Deno.readTextFile(`${ctx.ws.root}/tls.key`), b.key);
        assert.equal(await server.fingerprint(), b.fingerprint, "still the old certificate");
        assert.equal(count(await server.logs(), /signal 1 \(SIGHUP\) received/), 1, "no HUP");
        assert.deepEqual(await server.identity(), before);
      },
    );

    await t.step("a good pair afterwards is validated and served", async () => {
      push(c);
      const run = await sync();
      assert.equal(run.code, 3, run.stderr);
      await server.waitForCert(c.fingerprint, 5000);
      assert.deepEqual(await server.identity(), before);
      assert.equal(count(await server.logs(), /signal 1 \(SIGHUP\) received/), 2);
    });

    await t.step(
      "a key nginx cannot load (passphrase) fails `nginx -t`: rolled back; a restart serves the old certificate",
      async () => {
        const { root } = ctx.ws;
        const old = [
          await Deno.readFile(`${root}/tls.crt`),
          await Deno.readFile(`${root}/tls.key`),
        ];
        // The pre-check has no passphrase: it checks the key's framing only and lets it pass.
        push({ cert: a.cert, key: reencode(a.key, "encrypted") });
        for (const attempt of [1, 2]) {
          const run = await sync();
          assert.equal(run.code, 1, run.stderr);
          assert.match(
            run.stderr,
            new RegExp(
              `Cannot reload ${server.name} with recipe nginx: validation "nginx -t" failed in ` +
                `container "${server.name}" \\(exit code 1\\); not reloaded: .*test failed`,
            ),
          );
          assert.match(run.stderr, new RegExp(`Rolled back ${root}/tls.crt: version 5 of ${CERT}`));
          assert.match(run.stderr, new RegExp(`Rolled back ${root}/tls.key: version 5 of ${KEY}`));
          if (attempt === 1) {
            console.log(`  ${run.stderr.split("\n").find((l) => l.includes("validation")) ?? ""}`);
          }
          assert.deepEqual(await Deno.readFile(`${root}/tls.crt`), old[0], `attempt ${attempt}`);
          assert.deepEqual(await Deno.readFile(`${root}/tls.key`), old[1], `attempt ${attempt}`);
          const state = JSON.parse(await Deno.readTextFile(`${ctx.ws.stateDir}/state.json`));
          assert.deepEqual(state.pendingReloads, [], "no reload owed for what was rolled back");
        }
        assert.equal(count(await server.logs(), /signal 1 \(SIGHUP\) received/), 2, "no HUP");
        assert.equal(await server.fingerprint(), c.fingerprint);

        // What a restart loads is what is on disk: the old pair, which nginx accepts.
        await podman(["restart", "--", server.name]);
        await server.waitForCert(c.fingerprint, 20_000);
        assert.notDeepEqual(await server.identity(), before, "restarted");
      },
    );
  });
});

Deno.test("recipe haproxy: master-worker reload serves the rotated certificate; a broken one is refused", async (t) => {
  await ensureHaproxyImage();
  const [a, b, c] = await certs;
  await withServer((dir) => startHaproxy({ secretsDir: dir }), "haproxy", async (ctx) => {
    const { server, sync, push } = ctx;
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();

    await t.step("rotation: new certificate, same master", async () => {
      push(b);
      const run = await timed("sync + reload", sync);
      assert.equal(run.code, 3, run.stderr);
      assert.equal(
        count(run.stdout, new RegExp(`Reloaded ${server.name} with recipe haproxy`)),
        1,
      );
      await server.waitForCert(b.fingerprint, 10_000);
      assert.deepEqual(await server.identity(), before, "reloaded, not restarted");
    });

    await t.step("a key of another certificate is refused before the write", async () => {
      push({ cert: c.cert, key: a.key });
      const run = await sync();
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /Refusing .*matches no/);
      assert.doesNotMatch(run.stderr, /validation/);
      assert.equal(await server.fingerprint(), b.fingerprint);
      assert.deepEqual(await server.identity(), before);
    });

    await t.step(
      "a key with a passphrase fails `haproxy -c`: rolled back, old certificate, exit 1",
      async () => {
        const { root } = ctx.ws;
        push({ cert: c.cert, key: reencode(c.key, "encrypted") });
        const run = await sync();
        assert.equal(run.code, 1, run.stderr);
        assert.match(
          run.stderr,
          new RegExp(
            `validation "haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg" failed in container ` +
              `"${server.name}" \\(exit code 1\\); not reloaded: .*`,
          ),
        );
        assert.match(run.stderr, new RegExp(`Rolled back ${root}/tls.crt`));
        assert.equal(await Deno.readTextFile(`${root}/tls.crt`), b.cert);
        assert.equal(await Deno.readTextFile(`${root}/tls.key`), b.key);
        assert.equal(await server.fingerprint(), b.fingerprint);
        assert.doesNotMatch(await server.logs(), /Loading failure/, "the master was not signalled");
        assert.deepEqual(await server.identity(), before);
      },
    );
  });
});

Deno.test("recipe postfix: `postfix check` and `postfix reload` run in the container; STARTTLS shows the new certificate", async () => {
  await ensurePostfixImage();
  const [a, b, c] = await certs;
  await withServer((dir) => startPostfix({ secretsDir: dir }), "postfix", async (ctx) => {
    const { server, sync, push } = ctx;
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();
    push(b);
    const run = await timed("sync + postfix reload", sync);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stdout, new RegExp(`Reloaded ${server.name} with recipe postfix`));
    await server.waitForCert(b.fingerprint, 10_000);
    assert.deepEqual(await server.identity(), before);
    assert.match(await containerLogs(server.name), /reload -- version/);

    // `postfix check` passes a broken certificate and smtpd then drops TLS (servers_test.ts):
    // secretsync refuses it before the write, so a reload still presents the old one.
    await assertRefusedBeforeWrite(ctx, b, c);
    assert.equal((await server.exec(["postfix", "reload"])).code, 0);
    await waitForLogCount(server, /reload -- version/, 2);
    await assertStillServes(server, b.fingerprint);
    assert.deepEqual(await server.identity(), before);
  });
});

Deno.test("recipe dovecot: `doveconf -x` and `doveadm reload` run in the container; a missing file fails validation", async (t) => {
  await ensureDovecotImage();
  const [a, b] = await certs;
  const [, , c] = await certs;
  await withServer((dir) => startDovecot({ secretsDir: dir }), "dovecot", async (ctx) => {
    const { server, sync, push, ws } = ctx;
    assert.equal(await server.fingerprint(), a.fingerprint);
    const before = await server.identity();

    await t.step("rotation", async () => {
      push(b);
      const run = await timed("sync + doveadm reload", sync);
      assert.equal(run.code, 3, run.stderr);
      await server.waitForCert(b.fingerprint, 10_000);
      assert.deepEqual(await server.identity(), before);
      assert.equal(count(await server.logs(), /SIGHUP received - reloading configuration/), 1);
    });

    await t.step(
      "a broken certificate is refused before the write; a reload keeps TLS",
      async () => {
        // doveconf passes a broken certificate and dovecot then drops TLS (servers_test.ts).
        await assertRefusedBeforeWrite(ctx, b, c);
        assert.equal((await server.exec(["doveadm", "reload"])).code, 0);
        await waitForLogCount(server, /SIGHUP received - reloading configuration/, 2);
        await assertStillServes(server, b.fingerprint);
        assert.deepEqual(await server.identity(), before);
      },
    );

    await t.step("the map writes the certificate where dovecot does not read it", async () => {
      // dovecot.conf reads /run/secrets/tls.crt; move the certificate elsewhere.
      await Deno.remove(`${ws.root}/tls.crt`);
      await ws.writeMap([
        `${CERT},${ws.root}/cert.pem,0644,${server.name},dovecot`,
        `${KEY},${ws.root}/tls.key,0600,${server.name},dovecot`,
      ]);
      const run = await sync();
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(
          `validation "doveconf -x" failed in container "${server.name}" \\(exit code 89\\); ` +
            `not reloaded: .*Can't open file /run/secrets/tls.crt`,
        ),
      );
      // Two: the rotation and the reload of the step before; none from this run.
      assert.equal(count(await server.logs(), /SIGHUP received/), 2, "not reloaded");
      // The refused file was new: the rollback removed it.
      assert.match(run.stderr, /Rolled back .*cert.pem/);
      await assert.rejects(Deno.stat(`${ws.root}/cert.pem`), Deno.errors.NotFound);
    });
  });
});
