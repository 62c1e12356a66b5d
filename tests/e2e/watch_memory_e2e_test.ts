/**
 * `watch` keeps a flat heap: 600 real full cycles (1 ms interval, OCI stand-in) with exactly the
 * release build's flags, where the watch collects garbage after each cycle; and, with V8's old
 * space capped at 32 MiB, it does not leak (a leak would fill the cap and end the process). The
 * 1,000-cycle figures are `deno task bench:watch` (README, Performance). About 30 s.
 */
import assert from "node:assert/strict";
import { measureWatchMemory } from "../../scripts/watch_memory.ts";

// Without the collection after each cycle, the heap with the release flags was flat for about 300
// cycles, then climbed: 22.7 MiB at cycles 100-200, 30.2 MiB at 500-600 (+33 %); with it, +3 %.
const CASES = [
  { v8Flags: undefined, cycles: 600, limit: 1.1 },
  { v8Flags: "--max-old-space-size=32", cycles: 300, limit: 1.25 },
] as const;
for (const { v8Flags, cycles, limit } of CASES) {
  const how = v8Flags ? `with ${v8Flags}` : "with the release flags";
  Deno.test(`watch: the heap stays flat over ${cycles} cycles ${how}, and SIGTERM ends it at once`, async () => {
    const base = `${Deno.env.get("TMPDIR") ?? "/tmp"}/secretsync-e2e`;
    await Deno.mkdir(base, { recursive: true, mode: 0o700 });
    const dir = await Deno.makeTempDir({ dir: base, prefix: "watch-memory-" });
    try {
      const m = await measureWatchMemory(cycles, dir, { v8Flags });
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const early = mean(m.heapKib.slice(50, 150));
      const late = mean(m.heapKib.slice(cycles - 100, cycles));
      assert.ok(
        late < early * limit,
        `heap grew from ${(early / 1024).toFixed(1)} to ${(late / 1024).toFixed(1)} MiB`,
      );
      assert.equal(m.code, 0);
      assert.ok(m.stopMs < 2000, `SIGTERM took ${m.stopMs} ms`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
