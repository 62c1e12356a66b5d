/**
 * `run()`, the whole run as `sync`, `watch` and the event consumer call it, in-process against
 * the OCI stand-in: the state it records, a run restricted to some secrets, and an injected
 * source and logger.
 */
import assert from "node:assert/strict";
import type { Fields, Level, Logger } from "../src/log.ts";
import { recordEntries, run, type RunOptions } from "../src/run.ts";
import { readState, stateFile } from "../src/state.ts";
import type { SecretSource } from "../src/vault/mod.ts";
import { startOciStandIn } from "./oci/standin.ts";

const A = "ocid1.vaultsecret.oc1.iad.amaaaaaaruna";
const B = "ocid1.vaultsecret.oc1.iad.amaaaaaarunb";

interface Line {
  level: Level;
  component: string;
  message: string;
  fields?: Fields;
}

function memoryLogger(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  return {
    lines,
    log: (level, component, message, fields) => lines.push({ level, component, message, fields }),
  };
}

async function workspace() {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-run-" });
  const root = `${dir}/secrets`;
  await Deno.mkdir(root, { mode: 0o700 });
  await Deno.chmod(root, 0o700);
  return {
    dir,
    root,
    stateDir: `${dir}/state`,
    map: `${dir}/map.csv`,
    writeMap: (lines: string[]) => Deno.writeTextFile(`${dir}/map.csv`, lines.join("\n") + "\n"),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

function options(
  ws: Awaited<ReturnType<typeof workspace>>,
  more: Partial<RunOptions> = {},
): RunOptions {
  return {
    map: ws.map,
    roots: [ws.root],
    auth: { mode: "instance_principal" },
    runtime: "podman",
    concurrency: 4,
    stage: "CURRENT",
    dryRun: false,
    timeoutMs: 20_000,
    requestTimeoutMs: 5_000,
    maxBytes: 65_536,
    stateDir: ws.stateDir,
    lockTimeoutMs: 5_000,
    ...more,
  };
}

Deno.test("run() records each entry's version and times, and the last run, in state.json", async () => {
  const oci = await startOciStandIn();
  const ws = await workspace();
  const value = `run-${crypto.randomUUID()}`;
  try {
    oci.setSecret(A, value);
    oci.setSecret(B, `other-${crypto.randomUUID()}`);
    await ws.writeMap([`${A},${ws.root}/a,0600`, `${B},${ws.root}/b,0600`]);
    const opts = options(ws, {
      auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
      endpoint: oci.secretsEndpoint,
      trigger: "test",
    });
    let clock = Date.parse("2026-12-02T06:00:00.000Z");
    const now = () => new Date(clock += 1000);

    const first = await run(opts, { log: memoryLogger(), now });
    assert.equal(first.code, 3);
    const written = (await readState(ws.stateDir)).state;
    assert.deepEqual(written, first.state);
    assert.deepEqual(written.entries?.[`${ws.root}/a`], {
      secretId: A,
      version: 1,
      changedAt: "2026-12-02T06:00:01.000Z",
      checkedAt: "2026-12-02T06:00:01.000Z",
    });
    assert.deepEqual(written.lastRun, {
      startedAt: "2026-12-02T06:00:01.000Z",
      endedAt: "2026-12-02T06:00:02.000Z",
      code: 3,
      outcome: "changed",
      trigger: "test",
    });

    // B fails to fetch: its record keeps what it had and says why; A is checked again.
    oci.fault({ secretId: B }, { status: 404 });
    oci.setSecret(A, value); // a new version with the same bytes: the file stays
    const second = await run(opts, { log: memoryLogger(), now });
    assert.equal(second.code, 1);
    const entries = second.state!.entries!;
    assert.equal(entries[`${ws.root}/a`].changedAt, "2026-12-02T06:00:01.000Z", "unchanged");
    assert.equal(entries[`${ws.root}/a`].checkedAt, "2026-12-02T06:00:03.000Z");
    assert.equal(entries[`${ws.root}/a`].version, 2);
    assert.equal(entries[`${ws.root}/a`].error, undefined);
    assert.equal(entries[`${ws.root}/b`].version, 1, "the version still on disk");
    assert.equal(entries[`${ws.root}/b`].checkedAt, "2026-12-02T06:00:01.000Z");
    assert.match(entries[`${ws.root}/b`].error ?? "", /NotAuthorizedOrNotFound|404/);
    assert.equal(second.state!.lastRun?.outcome, "failed");
    oci.clearFaults();

    // A path that left the map leaves the state.
    await ws.writeMap([`${A},${ws.root}/a,0600`]);
    const third = await run(opts, { log: memoryLogger(), now });
    assert.deepEqual(Object.keys(third.state!.entries!), [`${ws.root}/a`]);
    const text = await Deno.readTextFile(stateFile(ws.stateDir));
    assert.ok(!text.includes(value), "state.json holds no secret value");
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("run() with secrets touches only their entries, with an injected source it keeps open", async () => {
  const ws = await workspace();
  const fetched: string[] = [];
  let closed = false;
  const source: SecretSource = {
    fetch: (id) => {
      fetched.push(id);
      return Promise.resolve({ bytes: new TextEncoder().encode(`value of ${id}`), version: 5 });
    },
    close: () => {
      closed = true;
    },
  };
  try {
    await ws.writeMap([`${A},${ws.root}/a,0600`, `${B},${ws.root}/b,0600`]);
    const log = memoryLogger();
    const result = await run(options(ws, { secrets: [B] }), { log, source });
    assert.equal(result.code, 3, JSON.stringify(log.lines));
    assert.deepEqual(fetched, [B]);
    assert.equal(closed, false, "the caller owns the source");
    assert.equal(await Deno.readTextFile(`${ws.root}/b`), `value of ${B}`);
    await assert.rejects(Deno.stat(`${ws.root}/a`), Deno.errors.NotFound);
    assert.deepEqual(Object.keys(result.state!.entries!), [`${ws.root}/b`]);
    assert.deepEqual(result.report!.results.map((r) => r.entry.path), [`${ws.root}/b`]);

    // Then the other secret: B's record is kept from the run before.
    const next = await run(options(ws, { secrets: [A] }), { log, source });
    assert.equal(next.code, 3);
    assert.deepEqual(Object.keys(next.state!.entries!).sort(), [`${ws.root}/a`, `${ws.root}/b`]);
    assert.equal(next.state!.entries![`${ws.root}/b`].version, 5);
  } finally {
    await ws.cleanup();
  }
});

Deno.test("recordEntries() keeps a reason on one line, without control characters, capped", () => {
  const entry = { line: 1, secretId: A, path: "/run/secrets/a", mode: 0o600 };
  const report = {
    changed: [],
    adjusted: [],
    reloaded: [],
    pendingReloads: [],
    rolledBack: [],
    certificates: [],
    failures: 1,
    results: [{
      entry,
      status: "failed" as const,
      error: "\x1b[31mCannot fetch\x1b[0m:\r\nforged [INFO] line " + "x".repeat(2000),
    }],
  };
  const records = recordEntries({ pendingReloads: [] }, [entry], report, "2026-12-02T06:00:00Z");
  const error = records["/run/secrets/a"].error ?? "";
  assert.ok(error.startsWith("Cannot fetch: | forged [INFO] line xxx"), error);
  assert.ok(error.length <= 501 && error.endsWith("…"), `${error.length} characters`);
  assert.ok([...error].every((c) => c.charCodeAt(0) >= 0x20), "no control character");
});
