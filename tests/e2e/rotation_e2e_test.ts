/**
 * Safe rotation through the CLI, against the OCI stand-in, with a `podman` stand-in first on
 * PATH whose `exec` (the recipe's validation) fails while told to:
 *
 * - a certificate or key the server could not load is refused before the write: the old file
 *   stays, the run exits 1 naming the entry and the reason, no value is printed;
 *   `--allow-expired` and the map's `nocheck` option let it through;
 * - a pair the validation refuses is written, then rolled back: same bytes, mode and owner as
 *   before, a file that was not there is removed, no reload is owed, the next run tries again;
 * - a certificate close to its end is warned about (`--warn-expiry`).
 *
 * The real servers (nginx, Postfix, Dovecot) are in recipes_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { startOciStandIn } from "../oci/standin.ts";
import { makeTestCert, reencode, stamp, type TestCert } from "../content/certs.ts";
import {
  assertNoLeak,
  type CliResult,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
} from "./harness.ts";

const CERT = "ocid1.vaultsecret.oc1.iad.amaaaaaarotationcert";
const KEY = "ocid1.vaultsecret.oc1.iad.amaaaaaarotationkey";
const CA = "ocid1.vaultsecret.oc1.iad.amaaaaaarotationca";
const DAY = 86_400_000;

const certs = Promise.all([
  makeTestCert("a.example"),
  makeTestCert("b.example", { type: "rsa" }),
  makeTestCert("expired.example", { start: "20200101000000Z", end: "20200102000000Z" }),
  makeTestCert("soon.example", { end: stamp(3 * DAY) }),
]);

function keyBodies(...pairs: TestCert[]): string[] {
  return pairs.map((p) => p.key.split("\n").filter((l) => l && !l.startsWith("-----")).join("\n"));
}

/** A stand-in, a workspace, a podman stand-in; `sync()` runs the CLI with extra flags. */
async function withRun(
  fn: (ctx: {
    root: string;
    dir: string;
    oci: Awaited<ReturnType<typeof startOciStandIn>>;
    writeMap: (lines: string[]) => Promise<void>;
    sync: (...flags: string[]) => Promise<CliResult>;
    /** Validation fails in every container, or in the named ones only. */
    refuseValidation: (on: boolean, containers?: string[]) => Promise<void>;
    calls: () => Promise<string[]>;
    state: () => Promise<{
      pendingReloads: string[];
      entries: Record<string, { version?: number; error?: string; notAfter?: string }>;
    }>;
    outputs: string[];
  }) => Promise<void>,
): Promise<void> {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const bin = `${ws.dir}/bin`;
  const log = `${ws.dir}/podman-calls`;
  const refuse = `${ws.dir}/refuse`;
  const outputs: string[] = [];
  try {
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      `${bin}/podman`,
      `#!/bin/sh
echo "$*" >> ${log}
if [ "$1" = exec ] && [ -e ${refuse} ] && { [ ! -s ${refuse} ] || echo "$*" | grep -qwF -f ${refuse}; }; then
  echo "nginx: [emerg] cannot load certificate key: bad password read" >&2; exit 1
fi
exit 0
`,
      { mode: 0o755 },
    );
    const env = { PATH: `${bin}:${Deno.env.get("PATH")}` };
    await fn({
      root: ws.root,
      dir: ws.dir,
      oci,
      writeMap: (lines) => ws.writeMap(lines),
      sync: async (...flags) => {
        const result = await runCli(
          ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman", ...flags],
          { env },
        );
        outputs.push(result.stdout, result.stderr);
        return result;
      },
      refuseValidation: (on, containers = []) =>
        on
          ? Deno.writeTextFile(refuse, containers.map((c) => `${c}\n`).join(""))
          : Deno.remove(refuse).catch(() => {}),
      calls: async () =>
        (await Deno.readTextFile(log).catch(() => "")).split("\n").filter((l) => l !== ""),
      state: async () => JSON.parse(await Deno.readTextFile(`${ws.stateDir}/state.json`)),
      outputs,
    });
    assertNoLeak(keyBodies(...await certs), ...outputs);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
}

Deno.test("sync refuses a certificate or key the server could not load, before the write", async (t) => {
  const [a, b, expired] = await certs;
  await withRun(async ({ root, oci, writeMap, sync, calls }) => {
    oci.setSecret(CERT, a.cert);
    oci.setSecret(KEY, a.key);
    await writeMap([
      `${CERT},${root}/tls.crt,0644,web,nginx`,
      `${KEY},${root}/tls.key,0600,web,nginx`,
    ]);
    assert.equal((await sync()).code, 3);
    const before = await calls();

    const unchanged = async () => {
      assert.equal(await Deno.readTextFile(`${root}/tls.crt`), a.cert);
      assert.equal(await Deno.readTextFile(`${root}/tls.key`), a.key);
      assert.deepEqual(await calls(), before, "nothing validated or signalled");
    };

    await t.step("an expired certificate", async () => {
      oci.setSecret(CERT, expired.cert);
      const run = await sync();
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(
          `\\[ERROR\\] \\(check\\) Refusing ${root}/tls.crt from ${CERT} \\(version 2\\): ` +
            `certificate "CN=expired.example" expired on 2020-01-02T00:00:00.000Z; left ${root}/tls.crt as it was`,
        ),
      );
      await unchanged();
    });

    await t.step("a new certificate whose key is not the one on disk", async () => {
      oci.setSecret(CERT, b.cert);
      const run = await sync();
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(
          `Refusing ${root}/tls.crt .*: the private key in ${root}/tls.key matches no certificate`,
        ),
      );
      await unchanged();
    });

    await t.step("a truncated key", async () => {
      oci.setSecret(CERT, a.cert);
      oci.setSecret(KEY, a.key.slice(0, 120));
      const run = await sync();
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`Refusing ${root}/tls.key .*block has no END line`));
      await unchanged();
    });

    await t.step("not PEM where a certificate was", async () => {
      oci.setSecret(KEY, a.key);
      oci.setSecret(CERT, "this is not a certificate\n");
      const run = await sync();
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /the file holds a certificate and the new content is not PEM/);
      await unchanged();
    });

    await t.step("--allow-expired writes an expired certificate (with its key)", async () => {
      oci.setSecret(CERT, expired.cert);
      oci.setSecret(KEY, reencode(expired.key, "sec1"));
      const run = await sync("--allow-expired");
      assert.equal(run.code, 3, run.stderr);
      assert.equal(await Deno.readTextFile(`${root}/tls.crt`), expired.cert);
      assert.match(
        run.stderr,
        /\[WARN\] \(expiry\) Certificate "CN=expired.example" in .* expired on 2020-01-02/,
      );
    });

    await t.step("the map's nocheck option writes what is not checked", async () => {
      await writeMap([
        `${CERT},${root}/tls.crt,0644,web,nginx,,nocheck`,
        `${KEY},${root}/tls.key,0600,web,nginx`,
      ]);
      oci.setSecret(CERT, "-----BEGIN CERTIFICATE-----\nlooks like PEM\n");
      const run = await sync();
      assert.equal(run.code, 3, run.stderr);
      assert.equal(
        await Deno.readTextFile(`${root}/tls.crt`),
        "-----BEGIN CERTIFICATE-----\nlooks like PEM\n",
      );
    });
  });
});

Deno.test("sync rolls back what the validation refuses: same bytes, mode, owner; no reload owed; tried again", async () => {
  const [a, b] = await certs;
  await withRun(async ({ root, dir, oci, writeMap, sync, calls, refuseValidation, state }) => {
    oci.setSecret(CERT, a.cert);
    oci.setSecret(KEY, a.key);
    await writeMap([
      `${CERT},${root}/tls.crt,0644,web,nginx`,
      `${KEY},${root}/tls.key,0600,web,nginx`,
    ]);
    assert.equal((await sync()).code, 3);
    await Deno.chmod(`${root}/tls.crt`, 0o640); // the run must put back this mode, not 0644
    const before = await Promise.all(
      [`${root}/tls.crt`, `${root}/tls.key`].map((p) => Deno.stat(p)),
    );

    const killsBefore = (await calls()).filter((c) => c.startsWith("kill")).length;
    // A passphrase-protected key: the pre-check can only check its framing; nginx refuses it.
    await refuseValidation(true);
    oci.setSecret(CERT, b.cert);
    oci.setSecret(KEY, reencode(b.key, "encrypted"));
    await writeMap([
      `${CERT},${root}/tls.crt,0644,web,nginx`,
      `${KEY},${root}/tls.key,0600,web,nginx`,
      `${CA},${root}/ca.crt,0644,web,nginx`,
    ]);
    oci.setSecret(CA, b.cert); // a file that did not exist before: removed on rollback
    for (const attempt of [1, 2]) {
      const run = await sync();
      assert.equal(run.code, 1, `attempt ${attempt}: ${run.stderr}`);
      assert.match(run.stderr, /validation "nginx -t" failed in container "web"/);
      for (
        const [path, id, version] of [["tls.crt", CERT, 2], ["tls.key", KEY, 2], ["ca.crt", CA, 1]]
      ) {
        assert.match(
          run.stderr,
          new RegExp(
            `\\[ERROR\\] \\(rollback\\) Rolled back ${root}/${path}: version ${version} of ${id} was refused by web`,
          ),
        );
      }
      assert.equal(await Deno.readTextFile(`${root}/tls.crt`), a.cert);
      assert.equal(await Deno.readTextFile(`${root}/tls.key`), a.key);
      await assert.rejects(Deno.stat(`${root}/ca.crt`), Deno.errors.NotFound);
      const after = await Promise.all(
        [`${root}/tls.crt`, `${root}/tls.key`].map((p) => Deno.stat(p)),
      );
      for (const [i, info] of after.entries()) {
        assert.equal(info.mode! & 0o7777, before[i].mode! & 0o7777);
        assert.equal(info.uid, before[i].uid);
        assert.equal(info.gid, before[i].gid);
      }
      const recorded = await state();
      assert.deepEqual(recorded.pendingReloads, [], "nothing owed for rolled-back content");
      // The state keeps the version on disk (1) and says why version 2 is not there.
      assert.equal(recorded.entries[`${root}/tls.crt`].version, 1);
      assert.match(
        recorded.entries[`${root}/tls.crt`].error!,
        /^rolled back: web refused it: validation/,
      );
      assert.match(run.stderr, /the previous content \(version 1\) is back/);
    }
    const kills = (await calls()).filter((c) => c.startsWith("kill"));
    assert.equal(kills.length, killsBefore, "never signalled while refused");

    // A reload owed from before this run stays owed: the server has not loaded that content.
    await Deno.writeTextFile(
      `${dir}/state/state.json`,
      JSON.stringify({ version: 1, pendingReloads: [`${root}/tls.key`] }),
    );
    const owed = await sync();
    assert.equal(owed.code, 1, owed.stderr);
    assert.match(owed.stderr, /Rolled back/);
    assert.deepEqual((await state()).pendingReloads, [`${root}/tls.key`]);

    // The server takes it once the vault holds a good pair again.
    await refuseValidation(false);
    oci.setSecret(KEY, b.key);
    const good = await sync();
    assert.equal(good.code, 3, good.stderr);
    assert.equal(await Deno.readTextFile(`${root}/tls.crt`), b.cert);
    assert.match(good.stdout, /Reloaded web with recipe nginx/);
  });
});

// Found by the r-rotation review: with two refusing targets, the second rollback re-labelled the
// first target's entries ("rolled back: mail refused it" on web's files).
Deno.test("sync rolls back per target: one validates and one does not; each entry names its own target", async () => {
  const [a, b] = await certs;
  const [CERT2, KEY2] = [`${CERT}two`, `${KEY}two`];
  await withRun(async ({ root, oci, writeMap, sync, refuseValidation, state }) => {
    await Deno.mkdir(`${root}/web`);
    await Deno.mkdir(`${root}/mail`);
    oci.setSecret(CERT, a.cert);
    oci.setSecret(KEY, a.key);
    oci.setSecret(CERT2, b.cert);
    oci.setSecret(KEY2, b.key);
    await writeMap([
      `${CERT},${root}/web/tls.crt,0644,web,nginx`,
      `${KEY},${root}/web/tls.key,0600,web,nginx`,
      `${CERT2},${root}/mail/tls.crt,0644,mail,nginx`,
      `${KEY2},${root}/mail/tls.key,0600,mail,nginx`,
    ]);
    assert.equal((await sync()).code, 3);

    // web takes a good pair; mail's passphrase key is refused by mail's validation only.
    await refuseValidation(true, ["mail"]);
    oci.setSecret(CERT, b.cert);
    oci.setSecret(KEY, b.key);
    oci.setSecret(CERT2, a.cert);
    oci.setSecret(KEY2, reencode(a.key, "encrypted"));
    const one = await sync();
    assert.equal(one.code, 1, one.stderr);
    assert.match(one.stdout, /Reloaded web with recipe nginx/);
    assert.equal(await Deno.readTextFile(`${root}/web/tls.crt`), b.cert);
    assert.equal(await Deno.readTextFile(`${root}/mail/tls.crt`), b.cert);
    assert.equal(await Deno.readTextFile(`${root}/mail/tls.key`), b.key);
    let recorded = await state();
    assert.deepEqual(recorded.pendingReloads, []);
    assert.equal(recorded.entries[`${root}/web/tls.crt`].version, 2);
    assert.equal(recorded.entries[`${root}/web/tls.crt`].error, undefined);
    assert.equal(recorded.entries[`${root}/mail/tls.crt`].version, 1);
    assert.match(recorded.entries[`${root}/mail/tls.key`].error!, /^rolled back: mail refused/);

    // Both refuse: each entry's error names its own target.
    await refuseValidation(true);
    oci.setSecret(CERT, a.cert);
    oci.setSecret(KEY, reencode(a.key, "encrypted"));
    const both = await sync();
    assert.equal(both.code, 1, both.stderr);
    assert.equal(await Deno.readTextFile(`${root}/web/tls.key`), b.key);
    assert.equal(await Deno.readTextFile(`${root}/mail/tls.key`), b.key);
    recorded = await state();
    assert.deepEqual(recorded.pendingReloads, []);
    assert.equal(recorded.entries[`${root}/web/tls.crt`].version, 2);
    for (const target of ["web", "mail"]) {
      for (const file of ["tls.crt", "tls.key"]) {
        assert.match(
          recorded.entries[`${root}/${target}/${file}`].error!,
          new RegExp(`^rolled back: ${target} refused it`),
          `${target}/${file}`,
        );
      }
    }
  });
});

Deno.test("sync warns about a certificate that expires within --warn-expiry", async () => {
  const [, , , soon] = await certs;
  await withRun(async ({ root, oci, writeMap, sync, state }) => {
    oci.setSecret(CERT, soon.cert);
    await writeMap([`${CERT},${root}/tls.crt,0644`]);
    const first = await sync();
    assert.equal(first.code, 3, first.stderr);
    // state.json carries the notAfter that status, metrics and doctor show.
    const notAfter = new Date(new X509Certificate(soon.cert).validTo).toISOString();
    assert.equal((await state()).entries[`${root}/tls.crt`].notAfter, notAfter);
    assert.match(
      first.stderr,
      /\[WARN\] \(expiry\) Certificate "CN=soon.example" in .*tls.crt expires on 20/,
    );
    const quiet = await sync("--warn-expiry", "1d");
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /expiry/);
  });
});

Deno.test("sync checks the certificate and key taken from one JSON secret (#key references)", async () => {
  const [a, b] = await certs;
  const BUNDLE = "ocid1.vaultsecret.oc1.iad.amaaaaaarotationbundle";
  await withRun(async ({ root, oci, writeMap, sync }) => {
    oci.setSecret(BUNDLE, JSON.stringify({ tls: { "crt": a.cert, "key": a.key } }));
    await writeMap([
      `${BUNDLE}#tls.crt,${root}/tls.crt,0644,web,HUP`,
      `${BUNDLE}#tls.key,${root}/tls.key,0600,web,HUP`,
    ]);
    const first = await sync();
    assert.equal(first.code, 3, first.stderr);
    assert.equal(await Deno.readTextFile(`${root}/tls.crt`), a.cert);

    // A version with a new certificate beside the old key: the certificate line is refused.
    oci.setSecret(BUNDLE, JSON.stringify({ tls: { "crt": b.cert, "key": a.key } }));
    const mixed = await sync();
    assert.equal(mixed.code, 1, mixed.stderr);
    assert.match(mixed.stderr, new RegExp(`Refusing ${root}/tls.crt from ${BUNDLE}#tls.crt`));
    assert.equal(await Deno.readTextFile(`${root}/tls.crt`), a.cert);
  });
});
