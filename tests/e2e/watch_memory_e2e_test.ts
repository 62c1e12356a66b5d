/**
 * `watch` does not leak: 300 real full cycles (1 ms interval, OCI stand-in) with V8's old space
 * capped at 32 MiB, so major collections run often and the heap in use is what is live, not
 * garbage waiting for a collection; after warm-up it stays where it was. The 1,000- and
 * 2,000-cycle figures are `deno task bench:watch` (README, Performance). About 10 s.
 */
import assert from "node:assert/strict";
import { measureWatchMemory } from "../../scripts/watch_memory.ts";

Deno.test("watch: the heap stays flat over 300 cycles, and SIGTERM ends it at once", async () => {
  const base = `${Deno.env.get("TMPDIR") ?? "/tmp"}/secretsync-e2e`;
  await Deno.mkdir(base, { recursive: true, mode: 0o700 });
  const dir = await Deno.makeTempDir({ dir: base, prefix: "watch-memory-" });
  try {
    const m = await measureWatchMemory(300, dir, { v8Flags: "--max-old-space-size=32" });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const early = mean(m.heapKib.slice(50, 150));
    const late = mean(m.heapKib.slice(200, 300));
    assert.ok(
      late < early * 1.25,
      `heap grew from ${(early / 1024).toFixed(1)} to ${(late / 1024).toFixed(1)} MiB`,
    );
    assert.equal(m.code, 0);
    assert.ok(m.stopMs < 2000, `SIGTERM took ${m.stopMs} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
