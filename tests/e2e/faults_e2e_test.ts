/**
 * The fault matrix: each way OCI can answer badly, injected into the stand-in for one secret
 * while another secret is healthy. For every fault: the faulty entry fails with an error naming
 * its OCID, its old file stays intact, the healthy entry still syncs, the run ends in bounded
 * time, and no secret value appears in anything the CLI printed.
 */
import assert from "node:assert/strict";
import { type Fault, startOciStandIn } from "../oci/standin.ts";
import { instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

const BAD = "ocid1.vaultsecret.oc1.iad.amaaaaaafaulty";
const GOOD = "ocid1.vaultsecret.oc1.iad.amaaaaaahealthy";

interface Case {
  name: string;
  fault: Fault;
  /** What the error line must say about the cause. */
  reason: RegExp;
  /** Requests the faulty secret may get: retried faults get several, final ones one. */
  calls: [min: number, max: number];
  /** Secret size to set instead of a normal value (for the size limit). */
  size?: number;
}

const CASES: Case[] = [
  {
    name: "401 NotAuthenticated",
    fault: { status: 401, code: "NotAuthenticated" },
    reason: /401/,
    calls: [1, 1],
  },
  {
    name: "404 NotAuthorizedOrNotFound",
    fault: { status: 404, code: "NotAuthorizedOrNotFound" },
    reason: /404/,
    calls: [1, 1],
  },
  {
    name: "429 TooManyRequests, retried",
    fault: { status: 429, code: "TooManyRequests" },
    reason: /429/,
    calls: [3, 3],
  },
  {
    name: "500 InternalServerError, retried",
    fault: { status: 500, code: "InternalServerError" },
    reason: /500/,
    calls: [3, 3],
  },
  {
    name: "503 ServiceUnavailable, retried",
    fault: { status: 503, code: "ServiceUnavailable" },
    reason: /503/,
    calls: [3, 3],
  },
  { name: "a hang, timed out", fault: { hang: true }, reason: /timed out/i, calls: [1, 3] },
  {
    name: "a reset connection",
    fault: { reset: true },
    reason: /reset|connection|network|closed/i,
    calls: [1, 3],
  },
  {
    name: "malformed JSON",
    fault: { body: "{not json" },
    reason: /JSON|malformed|parse|unexpected/i,
    calls: [1, 3],
  },
  {
    name: "a non-BASE64 content type",
    fault: { bundleContentType: "TEXT" },
    reason: /BASE64|content type/i,
    calls: [1, 1],
  },
  {
    name: "invalid base64",
    fault: { bundleContent: "!!!not base64!!!" },
    reason: /base64/i,
    calls: [1, 1],
  },
  {
    name: "a secret over the size limit",
    fault: {},
    size: 70_000,
    reason: /65536|size|large/i,
    calls: [1, 1],
  },
];

Deno.test("fault matrix: every bad vault answer fails only its entry, keeps the old file, leaks nothing", async (t) => {
  const oci = await startOciStandIn();
  const printed: string[] = [];
  const values: string[] = [];
  try {
    for (const c of CASES) {
      await t.step(c.name, async () => {
        const ws = await makeWorkspace();
        try {
          const [oldBad, newBad, good] = [
            secretValue("old"),
            secretValue("new"),
            secretValue("good"),
          ];
          values.push(oldBad, newBad, good);
          const bad = `${BAD}${CASES.indexOf(c)}`;
          oci.clearFaults();
          oci.setSecret(bad, oldBad);
          oci.setSecret(GOOD, good);
          await ws.writeMap([`${bad},${ws.root}/bad,0600`, `${GOOD},${ws.root}/good,0600`]);
          const args = [
            "sync",
            ...ws.args(),
            ...instancePrincipalArgs(oci),
            "--request-timeout",
            "2",
            "--timeout",
            "20",
          ];
          assert.equal((await runCli(args)).code, 3);
          await Deno.remove(`${ws.root}/good`);

          oci.setSecret(bad, c.size ? "x".repeat(c.size) : newBad);
          oci.fault({ secretId: bad }, c.fault);
          const before = oci.calls.secrets.get(bad) ?? 0;
          const started = Date.now();
          const result = await runCli(args);
          const seconds = (Date.now() - started) / 1000;
          printed.push(result.stdout, result.stderr);
          console.log(`fault ${c.name}: exit ${result.code}, ${seconds.toFixed(1)} s`);

          assert.equal(result.code, 1, result.stderr);
          assert.match(result.stderr, new RegExp(`Cannot fetch ${bad}: `));
          assert.match(result.stderr, c.reason);
          assert.equal(await Deno.readTextFile(`${ws.root}/bad`), oldBad, "the old file is intact");
          assert.equal(
            await Deno.readTextFile(`${ws.root}/good`),
            good,
            "the healthy entry synced",
          );
          const calls = (oci.calls.secrets.get(bad) ?? 0) - before;
          assert.ok(
            calls >= c.calls[0] && calls <= c.calls[1],
            `${calls} requests for the faulty secret`,
          );
          assert.ok(seconds < 20, `the run took ${seconds} s`);
          const leftovers = [...Deno.readDirSync(ws.root)].map((e) => e.name).sort();
          assert.deepEqual(leftovers, ["bad", "good"], "no temp file is left");
        } finally {
          await ws.cleanup();
        }
      });
    }
    await t.step("no secret value in anything the CLI printed across the matrix", () => {
      const all = printed.join("\n");
      for (const value of values) assert.ok(!all.includes(value), "a secret value leaked");
    });
  } finally {
    await oci.close();
  }
});

Deno.test("a vault that fails every request ends the run well under a minute", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    for (let i = 0; i < 4; i++) oci.setSecret(`${BAD}${i}`, secretValue("v"));
    await ws.writeMap([0, 1, 2, 3].map((i) => `${BAD}${i},${ws.root}/s${i},0600`));
    oci.fault({ path: "secrets" }, { hang: true });
    const started = Date.now();
    // The defaults: 10 s per request, 45 s for the run.
    const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    const seconds = (Date.now() - started) / 1000;
    console.log(`all requests hanging: exit ${result.code} after ${seconds.toFixed(1)} s`);
    assert.equal(result.code, 1);
    assert.ok(seconds < 50, `took ${seconds} s`);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("instance metadata or federation down: exit 1, nothing written, a clear reason", async (t) => {
  for (const path of ["imds", "federation"] as const) {
    await t.step(path, async () => {
      const oci = await startOciStandIn();
      const ws = await makeWorkspace();
      try {
        oci.setSecret(GOOD, secretValue("good"));
        await ws.writeMap([`${GOOD},${ws.root}/good,0600`]);
        oci.fault({ path }, { status: 500, code: "InternalServerError" });
        const result = await runCli([
          "sync",
          ...ws.args(),
          ...instancePrincipalArgs(oci),
          "--timeout",
          "20",
        ]);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /Cannot connect to OCI Vault: /);
        assert.deepEqual([...Deno.readDirSync(ws.root)], []);
      } finally {
        await ws.cleanup();
        await oci.close();
      }
    });
  }
});

Deno.test("a session token an Authorization header cannot carry: no request, no retry, not printed", async (t) => {
  const b64url = (s: string) =>
    new TextEncoder().encode(s).toBase64({ alphabet: "base64url", omitPadding: true });
  // A JWT with a readable expiry, as the client checks, but a first part a header cannot carry
  // inside keyId="…": Deno's fetch would refuse the line break quoting the token, and a quote or
  // a space would reach the service.
  for (const head of ["TOKENHEAD\r\nx-injected: 1", 'TOKENHEAD",x="1', "TOKENHEAD x"]) {
    await t.step(JSON.stringify(head), async () => {
      const oci = await startOciStandIn();
      const ws = await makeWorkspace();
      try {
        oci.setSecret(GOOD, secretValue("good"));
        oci.setSecret(BAD, secretValue("bad"));
        await ws.writeMap([`${GOOD},${ws.root}/good,0600`, `${BAD},${ws.root}/bad,0600`]);
        const exp = Math.floor(Date.now() / 1000) + 3600;
        const token = `${head}.${b64url(JSON.stringify({ exp }))}.c2lnbmF0dXJl`;
        oci.fault({ path: "federation" }, { body: JSON.stringify({ token }) });
        const result = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
        assert.equal(result.code, 1, result.stderr);
        const errors = result.stderr.split("\n").filter((l) => l.includes("[ERROR]"));
        assert.equal(errors.length, 2, result.stderr);
        for (const line of errors) {
          assert.match(line, /cannot sign the request: the key id has characters/);
        }
        assert.ok(!`${result.stdout}${result.stderr}`.includes("TOKENHEAD"), "token printed");
        assert.equal(oci.secretCalls(GOOD) + oci.secretCalls(BAD), 0, "a request was sent");
        assert.equal(oci.calls.federation, 1, "one federation, no refresh loop");
        assert.deepEqual([...Deno.readDirSync(ws.root)], []);
      } finally {
        await ws.cleanup();
        await oci.close();
      }
    });
  }
});
