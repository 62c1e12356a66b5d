/**
 * `deno task fleet`: a fleet of `watch --stream` hosts against one OCI stand-in, on loopback.
 *
 * Each host is the real agent code — `startStreamWatch` (the streaming client, cursor, offset
 * file, status file) syncing through `run()` (lock, state, map, vault, atomic write) — with
 * its own state directory, map, root and cursor, all in this one process; the stand-in runs in
 * a process of its own (tests/oci/serve.ts), so the CPU measured here is the hosts' alone.
 * Half the hosts map secret A, half secret B. After every host has started and settled, the
 * hosts idle for `--idle` (stream reads only), then A is rotated once. Printed:
 *
 * - propagation delay (rotation → file written), p50/p99/max, against poll + spread;
 * - vault calls for A (should equal the hosts using A) and for B (should be 0);
 * - stream GETs per second while idle, 429s;
 * - CPU per idle host per hour (this process's CPU while idle ÷ hosts, scaled to an hour).
 *
 * ```sh
 * deno task fleet [--hosts 1000] [--poll 30s] [--spread 30s] [--idle 60s] [--ramp 30s]
 * ```
 *
 * Auth is api_key (the stand-in's key): the instance-principal path federates once per host,
 * which is the same code the e2e test covers; here it would only measure RSA key generation.
 *
 * @module
 */
import process from "node:process";
import { parseDuration } from "../src/duration.ts";
import type { Logger } from "../src/log.ts";
import { run, type RunOptions } from "../src/run.ts";
import { secretMatcher } from "../src/stream/events.ts";
import { startStreamWatch, type StreamWatch } from "../src/stream/watch.ts";
import { openVault, type SecretSource } from "../src/vault/mod.ts";
import { REPO_ROOT } from "./permissions.ts";

interface Args {
  hosts: number;
  pollMs: number;
  spreadMs: number;
  idleMs: number;
  rampMs: number;
}

function parseArgs(argv: string[]): Args {
  const out: Args = {
    hosts: 1000,
    pollMs: 30_000,
    spreadMs: 30_000,
    idleMs: 60_000,
    rampMs: 30_000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ""];
    const ms = () => {
      const v = parseDuration(value);
      if (v === undefined) throw new Error(`Cannot read ${flag} "${value}": not a duration`);
      return v;
    };
    if (flag === "--hosts") out.hosts = Number(value);
    else if (flag === "--poll") out.pollMs = ms();
    else if (flag === "--spread") out.spreadMs = ms();
    else if (flag === "--idle") out.idleMs = ms();
    else if (flag === "--ramp") out.rampMs = ms();
    else throw new Error(`Unknown argument "${flag}"`);
  }
  if (!Number.isInteger(out.hosts) || out.hosts < 2) throw new Error("--hosts must be 2 or more");
  return out;
}

const A = "ocid1.vaultsecret.oc1.iad.fleetsecreta";
const B = "ocid1.vaultsecret.oc1.iad.fleetsecretb";

interface StandIn {
  url: string;
  configFile: string;
  stop(): Promise<void>;
}

async function startStandIn(dir: string): Promise<StandIn> {
  const seedA = `${dir}/seed-a`;
  const seedB = `${dir}/seed-b`;
  await Deno.writeTextFile(seedA, `a-${crypto.randomUUID()}`);
  await Deno.writeTextFile(seedB, `b-${crypto.randomUUID()}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--config=${REPO_ROOT}/deno.json`,
      `${REPO_ROOT}/tests/oci/serve.ts`,
      "--config-dir",
      dir,
      "--secret",
      `${A}=${seedA}`,
      "--secret",
      `${B}=${seedB}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The stand-in exited before it was ready");
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {
    // Deliberately ignored: nothing else is read from it.
  });
  const info = JSON.parse(text.slice(0, text.indexOf("\n")));
  return {
    url: info.url,
    configFile: info.configFile,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

async function control(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}/_standin/${path}`, {
    method,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`Stand-in ${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

interface Calls {
  secrets: Record<string, number>;
  streams: { gets: number; cursors: number; throttled: number; expired: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  const args = parseArgs(Deno.args);
  const base = await Deno.makeTempDir({ prefix: "secretsync-fleet-" });
  const oci = await startStandIn(base);
  const watches: StreamWatch[] = [];
  const sources: SecretSource[] = [];
  try {
    const { id: streamId } = await control(oci.url, "POST", "streams", {
      routeSecretEvents: true,
    });
    let errors = 0;
    const firstErrors: string[] = [];
    const log: Logger = {
      log(level, component, message) {
        if (level === "info") return;
        errors++;
        if (firstErrors.length < 5) firstErrors.push(`[${level}] (${component}) ${message}`);
      },
    };

    let rotatedAt = 0;
    const delays: number[] = [];
    const usesA: boolean[] = [];
    console.log(
      `Starting ${args.hosts} hosts (poll ${args.pollMs / 1000} s, spread ${
        args.spreadMs / 1000
      } s) against ${oci.url} …`,
    );
    const startedAt = performance.now();
    for (let i = 0; i < args.hosts; i++) {
      const dir = `${base}/host-${i}`;
      const root = `${dir}/secrets`;
      const stateDir = `${dir}/state`;
      await Deno.mkdir(root, { recursive: true, mode: 0o700 });
      await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
      const secret = i % 2 === 0 ? A : B;
      usesA.push(secret === A);
      await Deno.writeTextFile(`${dir}/map.csv`, `${secret},${root}/s.txt,0600\n`);
      const auth = { mode: "api_key" as const, configFile: oci.configFile, profile: "DEFAULT" };
      const options: RunOptions = {
        map: `${dir}/map.csv`,
        roots: [root],
        auth,
        endpoint: oci.url,
        runtime: "podman",
        concurrency: 8,
        stage: "CURRENT",
        dryRun: false,
        timeoutMs: 60_000,
        requestTimeoutMs: 30_000,
        maxBytes: 65_536,
        stateDir,
        lockTimeoutMs: 60_000,
        recipesDir: undefined,
      };
      const source = await openVault({
        auth,
        endpoint: oci.url,
        stage: "CURRENT",
        timeoutMs: 30_000,
      });
      sources.push(source);
      const isA = secret === A;
      const match = secretMatcher([{ secretId: secret }]);
      watches.push(startStreamWatch({
        streamId,
        endpoint: oci.url,
        auth,
        stateDir,
        pollMs: args.pollMs,
        spreadMs: args.spreadMs,
        intervalMs: 6 * 3600_000,
        fallbackIntervalMs: 15 * 60_000,
        requestTimeoutMs: 30_000,
      }, {
        log,
        match: () => match,
        async sync(secrets) {
          const { code } = await run({ ...options, secrets, trigger: "event" }, { log, source });
          if (code === 3 && secrets && isA && rotatedAt > 0) {
            delays.push(Date.now() - rotatedAt);
          }
          return code === 0 || code === 3;
        },
      }));
      // Hosts of a real fleet do not start in the same second: starts spread over `--ramp`.
      await new Promise((r) => setTimeout(r, args.rampMs / args.hosts));
    }
    // One unrelated event gives every host an offset; settled once each has saved it.
    await control(oci.url, "POST", `streams/${encodeURIComponent(streamId)}/events`, {
      secretId: "ocid1.vaultsecret.oc1.iad.fleetunrelated",
    });
    // Settled: every host has done its first full sync and read the stream at least once.
    const settleUntil = Date.now() + 2 * args.pollMs + 60_000;
    while (watches.some((w) => w.status().state === "starting" || w.status().offset === null)) {
      if (Date.now() > settleUntil) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const notReading = watches.filter((w) => w.status().state !== "reading").length;
    console.log(
      `Started in ${((performance.now() - startedAt) / 1000).toFixed(1)} s` +
        (notReading ? ` (${notReading} hosts not reading yet)` : ""),
    );

    // Idle: only stream reads.
    await new Promise((r) => setTimeout(r, args.pollMs * 1.2));
    const idleCalls0: Calls = await control(oci.url, "GET", "calls");
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, args.idleMs));
    const idleSeconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const idleCalls: Calls = await control(oci.url, "GET", "calls");
    const getsPerSecond = (idleCalls.streams.gets - idleCalls0.streams.gets) / idleSeconds;
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const cpuPerHostHour = cpuSeconds / idleSeconds * 3600 / args.hosts;

    // One rotation of A.
    const before: Calls = await control(oci.url, "GET", "calls");
    rotatedAt = Date.now();
    await control(oci.url, "PUT", `secrets/${encodeURIComponent(A)}`, `a-${crypto.randomUUID()}`);
    const hostsA = usesA.filter(Boolean).length;
    const deadline = Date.now() + args.pollMs + args.spreadMs + 60_000;
    while (delays.length < hostsA && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    const after: Calls = await control(oci.url, "GET", "calls");
    const sorted = [...delays].sort((a, b) => a - b);
    const callsA = (after.secrets[A] ?? 0) - (before.secrets[A] ?? 0);
    const callsB = (after.secrets[B] ?? 0) - (before.secrets[B] ?? 0);

    const rows: [string, string][] = [
      ["hosts (using A / B)", `${args.hosts} (${hostsA} / ${args.hosts - hostsA})`],
      ["hosts updated after one rotation of A", `${delays.length} of ${hostsA}`],
      [
        "propagation delay p50 / p99 / max",
        `${(percentile(sorted, 50) / 1000).toFixed(2)} s / ${
          (percentile(sorted, 99) / 1000).toFixed(2)
        } s / ${((sorted.at(-1) ?? NaN) / 1000).toFixed(2)} s  (bound: poll + spread = ${
          (args.pollMs + args.spreadMs) / 1000
        } s + run)`,
      ],
      ["vault calls for A (= hosts using A)", `${callsA}`],
      ["vault calls for B (unrelated)", `${callsB}`],
      [
        "stream GETs per second (idle)",
        `${getsPerSecond.toFixed(1)}  (hosts ÷ (0.9 × poll) = ${
          (args.hosts / (0.9 * args.pollMs / 1000)).toFixed(1)
        }; limit 250/s per partition)`,
      ],
      ["429 answers (whole run)", `${after.streams.throttled}`],
      ["cursors created (whole run)", `${after.streams.cursors}`],
      [
        "CPU per idle host per hour",
        `${cpuPerHostHour.toFixed(2)} s  (${cpuSeconds.toFixed(2)} s CPU in ${
          idleSeconds.toFixed(1)
        } s for ${args.hosts} hosts at poll ${args.pollMs / 1000} s)`,
      ],
      ["warnings and errors logged", `${errors}`],
    ];
    console.log("");
    for (const [k, v] of rows) console.log(`${k.padEnd(42)} ${v}`);
    for (const line of firstErrors) console.log(`  ${line}`);
    const ok = delays.length === hostsA && callsA === hostsA && callsB === 0;
    if (!ok) {
      console.log("\nFLEET CHECK FAILED: not every host was updated, or vault calls ≠ hosts");
      Deno.exitCode = 1;
    }
  } finally {
    for (const w of watches) w.stop();
    await Promise.allSettled(watches.map((w) => w.done));
    for (const s of sources) s.close();
    await oci.stop();
    await Deno.remove(base, { recursive: true }).catch(() => {
      // Deliberately ignored: a temp directory left behind is harmless.
    });
  }
}

if (import.meta.main) await main();
