/**
 * `deno task bench:watch [CYCLES]`: runs `secretsync watch` with a 1 ms interval against the
 * OCI stand-in (loopback only) for CYCLES full cycles (default 1000), each a whole real run
 * (map, lock, state, federation, fetch, compare), and prints the process's resident memory at
 * cycle 10 and at the end, read from /proc/PID/status. Then SIGTERM, and how long it took to end.
 *
 * @module
 */
import { startOciStandIn } from "../tests/oci/standin.ts";
import { cliCommand } from "./permissions.ts";

/** What one measurement found. */
export interface WatchMemory {
  cycles: number;
  /** Resident memory at cycle 10 and at the last cycle, in KiB. */
  rssAt10Kib: number;
  rssAtEndKib: number;
  /** Peak resident memory (VmHWM) at the end, in KiB. */
  peakKib: number;
  /** V8 heap in use after each cycle, as the cycle's log line reports it, in KiB. */
  heapKib: number[];
  /** Resident memory after each cycle, as the cycle's log line reports it, in KiB. */
  rssKib: number[];
  seconds: number;
  /** Time from SIGTERM to exit, in ms. */
  stopMs: number;
  code: number;
}

const SECRETS = [
  "ocid1.vaultsecret.oc1.iad.amaaaaaamemone",
  "ocid1.vaultsecret.oc1.iad.amaaaaaamemtwo",
];

/** Runs the measurement; `dir` is a directory the CLI may read and write. */
export async function measureWatchMemory(
  cycles: number,
  dir: string,
  options: { v8Flags?: string } = {},
): Promise<WatchMemory> {
  const oci = await startOciStandIn();
  const root = `${dir}/secrets`;
  await Deno.mkdir(root, { mode: 0o700 });
  await Deno.chmod(root, 0o700);
  await Deno.writeTextFile(
    `${dir}/map.csv`,
    SECRETS.map((id, i) => `${id},${root}/s${i},0600,,\n`).join(""),
  );
  SECRETS.forEach((id, i) => oci.setSecret(id, `memory-bench-${i}-${crypto.randomUUID()}`));
  const child = cliCommand([
    "watch",
    "--map",
    `${dir}/map.csv`,
    "--root",
    root,
    "--state-dir",
    `${dir}/state`,
    "--imds-url",
    oci.imdsUrl,
    "--auth-endpoint",
    oci.authEndpoint,
    "--endpoint",
    oci.secretsEndpoint,
    "--interval",
    "1ms",
    "--jitter",
    "0",
    "--json",
  ], {
    paths: [dir],
    stderr: "null",
    env: options.v8Flags ? { DENO_V8_FLAGS: options.v8Flags } : {},
  }).spawn();
  const started = Date.now();
  let rssAt10Kib = 0;
  let rssAtEndKib = 0;
  let peakKib = 0;
  const heapKib: number[] = [];
  const rssKib: number[] = [];
  try {
    let rest = "";
    let seen = 0;
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (seen < cycles) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`watch ended after ${seen} cycles`);
      rest += value;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        if (!line.includes('"cycle_ended"')) continue;
        seen++;
        const { heapUsedBytes, rssBytes } = JSON.parse(line);
        heapKib.push(heapUsedBytes / 1024);
        rssKib.push(rssBytes / 1024);
        if (seen === 10) rssAt10Kib = (await memory(child.pid)).rss;
        if (seen === cycles) ({ rss: rssAtEndKib, peak: peakKib } = await memory(child.pid));
      }
    }
    const seconds = (Date.now() - started) / 1000;
    const stopAt = Date.now();
    child.kill("SIGTERM");
    // Drain what is left so the child never blocks on a full pipe while stopping.
    const drain = (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })();
    const { code } = await child.status;
    const stopMs = Date.now() - stopAt;
    await drain;
    return { cycles, rssAt10Kib, rssAtEndKib, peakKib, heapKib, rssKib, seconds, stopMs, code };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already ended
    }
    await child.status;
    await oci.close();
  }
}

async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

if (import.meta.main) {
  const cycles = Number(Deno.args[0] ?? 1000);
  // e.g. --max-old-space-size=40: a leak would end the process long before the last cycle.
  const v8Flags = Deno.args[1];
  const base = `${Deno.env.get("TMPDIR") ?? "/tmp"}/secretsync-e2e`;
  await Deno.mkdir(base, { recursive: true, mode: 0o700 });
  const dir = await Deno.makeTempDir({ dir: base, prefix: "watch-memory-" });
  try {
    const m = await measureWatchMemory(cycles, dir, { v8Flags });
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    console.log(
      `watch${v8Flags ? ` (${v8Flags})` : ""}, ${m.cycles} full cycles in ${
        m.seconds.toFixed(1)
      } s ` +
        `(${(m.seconds * 1000 / m.cycles).toFixed(1)} ms a cycle)\n` +
        `RSS at cycle 10:   ${mib(m.rssAt10Kib)} MiB\n` +
        `RSS at cycle ${m.cycles}: ${mib(m.rssAtEndKib)} MiB (peak ${mib(m.peakKib)} MiB)\n` +
        `SIGTERM to exit:   ${m.stopMs} ms, exit code ${m.code}`,
    );
    // Every tenth of the run: the heap (mean over that stretch, so GC's sawtooth averages out)
    // and the resident memory at its end.
    const step = Math.max(1, Math.floor(m.cycles / 10));
    for (let at = step; at <= m.cycles; at += step) {
      const heap = m.heapKib.slice(at - step, at);
      console.log(
        `  cycles ${at - step + 1}-${at}: heap ${
          mib(heap.reduce((a, b) => a + b, 0) / heap.length)
        } MiB (mean), RSS ${mib(m.rssKib[at - 1])} MiB`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
