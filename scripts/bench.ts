/**
 * `deno task bench`: what the performance-relevant choices buy, measured, not guessed.
 *
 * 1. Fetch concurrency: one sync of 32 secrets against the OCI stand-in answering each request
 *    after 50 ms (a realistic cross-region round trip), `--concurrency 1` vs the default 8.
 * 2. An unchanged run: the compare path (read, compare, no write) for 200 files.
 * 3. Map validation: parsing a 5,000-line map.
 *
 * Each figure is the median of several runs (these machines are noisy), printed with the
 * spread. The engine runs in-process so Deno's start-up does not blur the figures.
 */
import { createLogger } from "../src/log.ts";
import { parseMap } from "../src/map.ts";
import { createReloader } from "../src/reload/reloader.ts";
import { detectRuntime } from "../src/reload/runtime.ts";
import { sync } from "../src/sync.ts";
import { openVault } from "../src/vault/mod.ts";
import { startOciStandIn } from "../tests/oci/standin.ts";

const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? 7);
const quiet = createLogger({ stdout: { writeSync: (p) => p.length }, stderr: Deno.stderr });

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function report(name: string, values: number[]): number {
  const m = median(values);
  const spread = `min ${Math.min(...values).toFixed(1)}, max ${Math.max(...values).toFixed(1)}`;
  console.log(
    `${name.padEnd(48)} median ${m.toFixed(1).padStart(8)} ms  (${spread}; ${values.length} runs)`,
  );
  return m;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

const oci = await startOciStandIn();
const dir = await Deno.makeTempDir({ prefix: "secretsync-bench-" });
try {
  const ids = Array.from({ length: 200 }, (_, i) => `ocid1.vaultsecret.oc1.iad.amaaaaaabench${i}`);
  ids.forEach((id, i) => oci.setSecret(id, `value-${i}-${crypto.randomUUID()}`));
  const source = await openVault({
    auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
    endpoint: oci.secretsEndpoint,
    stage: "CURRENT",
  });
  const reloader = createReloader({ runtime: () => detectRuntime("auto") });
  const deps = { source, reloader, log: quiet };
  const mapOf = (count: number, root: string) =>
    parseMap(ids.slice(0, count).map((id, i) => `${id},${root}/s${i},0600`).join("\n"), {
      roots: [root],
    });

  console.log(`secretsync benchmarks (${RUNS} runs each; Deno ${Deno.version.deno})\n`);

  // 1. Concurrency, with every secrets request answered after 50 ms.
  oci.fault({ path: "secrets" }, { delayMs: 50 });
  const results: Record<number, number> = {};
  for (const concurrency of [1, 8]) {
    const samples: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const root = await Deno.makeTempDir({ dir });
      const map = mapOf(32, root);
      if (!map.ok) throw new Error("bench map is invalid");
      const settings = { roots: [root], dryRun: false, concurrency };
      samples.push(await time(() => sync(map.entries, deps, settings)));
    }
    results[concurrency] = report(
      `sync 32 new secrets, 50 ms latency, concurrency ${concurrency}`,
      samples,
    );
  }
  console.log(
    `${"".padEnd(48)} speed-up ${(results[1] / results[8]).toFixed(1)}x with concurrency 8\n`,
  );
  oci.clearFaults();

  // 2. A run where nothing changed: fetch (no latency) + compare only.
  const root = await Deno.makeTempDir({ dir });
  const map = mapOf(200, root);
  if (!map.ok) throw new Error("bench map is invalid");
  const settings = { roots: [root], dryRun: false, concurrency: 8 };
  await sync(map.entries, deps, settings);
  const unchanged: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    unchanged.push(await time(() => sync(map.entries, deps, settings)));
  }
  const u = report("sync 200 unchanged secrets (no latency)", unchanged);
  console.log(`${"".padEnd(48)} ${(u / 200).toFixed(2)} ms per secret\n`);

  // 3. Map validation.
  const text = Array.from(
    { length: 5000 },
    (_, i) => `${ids[i % 200]},/run/secrets/d${i % 50}/s${i},0600,web${i % 7},HUP`,
  )
    .join("\n");
  const parses: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    parses.push(await time(() => Promise.resolve(parseMap(text, { roots: ["/run/secrets"] }))));
  }
  const p = report("parse and validate a 5,000-line map", parses);
  console.log(`${"".padEnd(48)} ${(p / 5).toFixed(2)} ms per 1,000 lines`);
  source.close();
} finally {
  await Deno.remove(dir, { recursive: true });
  await oci.close();
}
