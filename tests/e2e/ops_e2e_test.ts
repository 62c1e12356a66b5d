/**
 * Operations end to end, through the CLI with the binary's permissions, against the OCI
 * stand-in: `sync --metrics-file` (read back with a real Prometheus text parser), `status`
 * (text, JSON, exit codes), and `watch` (first cycle at start, SIGHUP, a failing cycle, SIGTERM
 * within a second, the schedule `status` reads). No value ever appears in any output.
 */
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { makeTestCert } from "../content/certs.ts";
import { startOciStandIn } from "../oci/standin.ts";
import {
  assertNoLeak,
  cli,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
} from "./harness.ts";

const TOKEN = "ocid1.vaultsecret.oc1.iad.amaaaaaaopstoken";
const OTHER = "ocid1.vaultsecret.oc1.iad.amaaaaaaopsother";

interface Family {
  name: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const family = (parsePrometheus(text) as Family[]).find((f) => f.name === name);
  assert.ok(family, `no ${name} in the metrics file`);
  const found = family.metrics.filter((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}`);
  return Number(found[0].value);
}

Deno.test("sync --metrics-file and status: a failing entry, then a clean run", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const values = [secretValue("token"), secretValue("other")];
    oci.setSecret(TOKEN, values[0]);
    oci.setSecret(OTHER, values[1]);
    await ws.writeMap([`${TOKEN},${ws.root}/token,0600,,`, `${OTHER},${ws.root}/other,0600,,`]);
    await Deno.mkdir(`${ws.dir}/textfile`);
    const metricsFile = `${ws.dir}/textfile/secretsync.prom`;
    const sync = [
      "sync",
      ...ws.args(),
      ...instancePrincipalArgs(oci),
      "--metrics-file",
      metricsFile,
    ];
    const status = ["status", "--state-dir", ws.stateDir, "--no-timer"];

    const before = await runCli(status);
    assert.equal(before.code, 4, "no state yet has its own exit code");
    assert.match(before.stdout, /Last run: {2}none recorded yet/);

    oci.fault({ secretId: OTHER }, { status: 404 });
    const failed = await runCli(sync);
    assert.equal(failed.code, 1, failed.stderr);
    let text = await Deno.readTextFile(metricsFile);
    assert.equal((await Deno.stat(metricsFile)).mode! & 0o777, 0o644);
    assert.equal(metric(text, "secretsync_entry_success", { path: `${ws.root}/token` }), 1);
    assert.equal(metric(text, "secretsync_entry_success", { path: `${ws.root}/other` }), 0);
    assert.equal(metric(text, "secretsync_entry_version", { secret: TOKEN }), 1);
    assert.equal(metric(text, "secretsync_run_exit_code"), 1);
    assert.equal(metric(text, "secretsync_run_outcome", { outcome: "failed" }), 1);
    assert.equal(metric(text, "secretsync_run_changes"), 1);
    assert.equal(metric(text, "secretsync_run_errors"), 1);
    assert.ok(metric(text, "secretsync_run_duration_seconds") > 0);

    const unhealthy = await runCli(status);
    assert.equal(unhealthy.code, 1, "a failed last run makes status exit 1");
    assert.match(unhealthy.stdout, /Last run: {2}failed \(exit 1\)/);
    assert.match(unhealthy.stdout, new RegExp(`${ws.root}/other +${OTHER} +- +- +error: .*404`));
    assert.match(unhealthy.stdout, new RegExp(`${ws.root}/token +${TOKEN} +1 +\\S+Z +ok`));
    const json = await runCli([...status, "--json"]);
    const report = JSON.parse(json.stdout);
    assert.equal(report.health, "failed");
    assert.deepEqual(
      report.entries.map((e: { path: string; version?: number }) => [e.path, e.version]),
      [[`${ws.root}/other`, undefined], [`${ws.root}/token`, 1]],
    );

    oci.clearFaults();
    oci.setSecret(TOKEN, secretValue("token2"));
    const fixed = await runCli(sync);
    assert.equal(fixed.code, 3, fixed.stderr);
    text = await Deno.readTextFile(metricsFile);
    assert.equal(metric(text, "secretsync_entry_version", { secret: TOKEN }), 2);
    assert.equal(metric(text, "secretsync_run_outcome", { outcome: "changed" }), 1);
    const healthy = await runCli(status);
    assert.equal(healthy.code, 0, healthy.stdout);
    assert.match(healthy.stdout, /Next run: {2}not scheduled/);

    assertNoLeak(
      values,
      before.stdout,
      failed.stdout,
      failed.stderr,
      unhealthy.stdout,
      json.stdout,
      fixed.stdout,
      healthy.stdout,
      text,
      await Deno.readTextFile(`${ws.stateDir}/state.json`),
    );
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("sync --metrics-file outside what the build may write is refused before the run", async () => {
  const ws = await makeWorkspace();
  try {
    await ws.writeMap([]);
    const result = await runCli(["sync", ...ws.args(), "--metrics-file", "/srv/metrics.prom"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /Cannot write "\/srv\/metrics.prom"/);
  } finally {
    await ws.cleanup();
  }
});

/** Lines of a child's output, as they come. */
function lines(stream: ReadableStream<Uint8Array>) {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      seen.push(...parts);
      wake?.();
    }
    ended = true;
    wake?.();
  })();
  return {
    seen,
    async waitFor(pattern: RegExp, count = 1, timeoutMs = 20_000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const matches = seen.filter((l) => pattern.test(l));
        if (matches.length >= count) return matches[count - 1];
        if (ended) throw new Error(`output ended without ${pattern}:\n${seen.join("\n")}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${pattern} in time:\n${seen.join("\n")}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 200));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    },
  };
}

Deno.test("watch: a cycle at start, SIGHUP syncs now, a failing cycle goes on, SIGTERM ends it", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const values = [secretValue("token1"), secretValue("other1"), secretValue("token2")];
  oci.setSecret(TOKEN, values[0]);
  oci.setSecret(OTHER, values[1]);
  await ws.writeMap([`${TOKEN},${ws.root}/token,0600,,`, `${OTHER},${ws.root}/other,0600,,`]);
  const metricsFile = `${ws.dir}/secretsync.prom`;
  const child = cli([
    "watch",
    ...ws.args(),
    ...instancePrincipalArgs(oci),
    "--interval",
    "1h",
    "--jitter",
    "10s",
    "--metrics-file",
    metricsFile,
  ]).spawn();
  const out = lines(child.stdout);
  const err = lines(child.stderr);
  try {
    await out.waitFor(/Cycle 1 \(full, start\) ended: changed, exit 3/);
    await out.waitFor(/Next full sync at /);
    assert.equal(await Deno.readTextFile(`${ws.root}/token`), values[0]);

    const status = await runCli(["status", "--state-dir", ws.stateDir, "--json"]);
    assert.equal(status.code, 0, status.stdout);
    const next = JSON.parse(status.stdout).next;
    assert.equal(next.source, "watch");
    const due = Date.parse(next.at) - Date.now();
    assert.ok(due > 3_500_000 && due <= 3_610_000, `next cycle in ~1h (+ jitter): ${due} ms`);
    assert.match(next.note, new RegExp(`pid ${child.pid}, every 1h`));
    const text = await Deno.readTextFile(metricsFile);
    assert.equal(metric(text, "secretsync_run_outcome", { outcome: "changed" }), 1);
    assert.ok(metric(text, "secretsync_next_run_timestamp_seconds") > Date.now() / 1000);

    oci.setSecret(TOKEN, values[2]);
    child.kill("SIGHUP");
    await out.waitFor(/Cycle 2 \(full, request\) ended: changed, exit 3/);
    assert.equal(await Deno.readTextFile(`${ws.root}/token`), values[2]);

    oci.fault({ secretId: OTHER }, { status: 500, times: 100 });
    child.kill("SIGHUP");
    await err.waitFor(/Cycle 3 \(full, request\) ended: failed, exit 1/);
    oci.clearFaults();
    child.kill("SIGHUP");
    await out.waitFor(/Cycle 4 \(full, request\) ended: unchanged, exit 0/);

    const stoppedAt = Date.now();
    child.kill("SIGTERM");
    const { code } = await child.status;
    const took = Date.now() - stoppedAt;
    assert.equal(code, 0);
    assert.ok(took < 1000, `SIGTERM ended watch in ${took} ms`);
    await out.waitFor(/Stopped after 4 cycles/);

    const after = await runCli(["status", "--state-dir", ws.stateDir, "--no-timer"]);
    assert.match(after.stdout, /Next run: {2}not scheduled \(watch stopped at /);
    assertNoLeak(values, out.seen.join("\n"), err.seen.join("\n"), status.stdout, after.stdout);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already ended
    }
    await child.status;
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("watch: SIGTERM during a cycle stuck on the vault ends it within a second, files intact", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const value = secretValue("token");
  oci.setSecret(TOKEN, value);
  await ws.writeMap([`${TOKEN},${ws.root}/token,0600,,`]);
  const child = cli(["watch", ...ws.args(), ...instancePrincipalArgs(oci), "--interval", "1h"])
    .spawn();
  const out = lines(child.stdout);
  try {
    await out.waitFor(/Cycle 1 .* ended: changed/);
    oci.fault({ secretId: TOKEN }, { hang: true });
    child.kill("SIGHUP");
    await out.waitFor(/SIGHUP: syncing now/);
    await new Promise((r) => setTimeout(r, 300)); // the fetch is in flight, hanging
    const stoppedAt = Date.now();
    child.kill("SIGTERM");
    const { code } = await child.status;
    const took = Date.now() - stoppedAt;
    assert.equal(code, 0);
    assert.ok(took < 1000, `SIGTERM ended a hanging cycle in ${took} ms`);
    assert.equal(await Deno.readTextFile(`${ws.root}/token`), value);
    await out.waitFor(/Cycle 2 \(full, request\) ended: stopped, exit 1/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already ended
    }
    await child.status;
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a certificate's expiry reaches the metrics, status and doctor", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    // Expires in 10 days: inside doctor's 21-day warning.
    const end = new Date(Date.now() + 10 * 86_400_000);
    const stamp = end.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
    const { cert } = await makeTestCert("ops.example", { end: stamp });
    const CERT = "ocid1.vaultsecret.oc1.iad.amaaaaaaopscert";
    oci.setSecret(CERT, cert);
    await ws.writeMap([`${CERT},${ws.root}/tls.crt,0644,,`]);
    const metricsFile = `${ws.dir}/secretsync.prom`;
    const sync = await runCli([
      "sync",
      ...ws.args(),
      ...instancePrincipalArgs(oci),
      "--metrics-file",
      metricsFile,
    ]);
    assert.equal(sync.code, 3, sync.stderr);
    const expiry = metric(
      await Deno.readTextFile(metricsFile),
      "secretsync_certificate_expiry_timestamp_seconds",
      { path: `${ws.root}/tls.crt` },
    );
    assert.equal(expiry, Math.floor(end.getTime() / 1000));
    const status = await runCli(["status", "--state-dir", ws.stateDir, "--no-timer"]);
    assert.match(status.stdout, /ok; cert until \d{4}-/);
    const doctor = await runCli(["doctor", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.match(
      doctor.stdout,
      new RegExp(`^WARN certificate ${ws.root}/tls.crt: expires \\S+, in (9|10) days`, "m"),
    );
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
