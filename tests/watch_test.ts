/**
 * The watch scheduler with real timers and small intervals: when cycles run, what a request
 * merges into, how stop ends a running cycle, and that a failing cycle does not end the loop.
 */
import assert from "node:assert/strict";
import { parseDuration } from "../src/duration.ts";
import { type CycleRequest, startWatchLoop } from "../src/watch.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(5);
  }
}

Deno.test("startWatchLoop() runs a full cycle at start, then one per interval", async () => {
  const seen: Omit<CycleRequest, "signal">[] = [];
  const scheduled: number[] = [];
  const loop = startWatchLoop({
    intervalMs: 40,
    runCycle: ({ signal: _, ...request }) => {
      seen.push(request);
      return Promise.resolve();
    },
    onScheduled: (at) => {
      scheduled.push(at);
    },
  });
  await until(() => seen.length >= 3);
  loop.stop();
  await loop.done;
  assert.deepEqual(seen.slice(0, 3), [
    { number: 1, trigger: "start", secretIds: undefined },
    { number: 2, trigger: "interval", secretIds: undefined },
    { number: 3, trigger: "interval", secretIds: undefined },
  ]);
  assert.ok(scheduled[1] - scheduled[0] >= 40, "the interval separates full cycles");
});

Deno.test("trigger() runs a cycle now; requests made during a cycle merge into one", async () => {
  const seen: Omit<CycleRequest, "signal">[] = [];
  let release!: () => void;
  const loop = startWatchLoop({
    intervalMs: 3_600_000,
    runCycle: ({ signal: _, ...request }) => {
      seen.push(request);
      return request.number === 2 ? new Promise((r) => (release = r)) : Promise.resolve();
    },
  });
  await until(() => seen.length === 1);
  const nextFull = loop.nextFullAt();
  loop.trigger(["ocid.b"]);
  await until(() => seen.length === 2);
  // While cycle 2 runs: two requests, merged into one cycle.
  loop.trigger(["ocid.c"]);
  loop.trigger(["ocid.a", "ocid.c"]);
  release();
  await until(() => seen.length === 3);
  loop.trigger(["ocid.d"]);
  loop.trigger();
  await until(() => seen.length === 4);
  await sleep(30);
  loop.stop();
  await loop.done;
  assert.deepEqual(seen, [
    { number: 1, trigger: "start", secretIds: undefined },
    { number: 2, trigger: "request", secretIds: ["ocid.b"] },
    { number: 3, trigger: "request", secretIds: ["ocid.a", "ocid.c"] },
    { number: 4, trigger: "request", secretIds: undefined },
  ]);
  assert.ok(loop.nextFullAt() > nextFull, "a requested full cycle reschedules the next one");
});

Deno.test("stop() aborts the running cycle's signal and no new cycle starts", async () => {
  let cycles = 0;
  let aborted = false;
  const loop = startWatchLoop({
    intervalMs: 1,
    runCycle: ({ signal }) => {
      cycles++;
      return new Promise((resolve) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          setTimeout(resolve, 20); // finishing a write
        });
      });
    },
  });
  await until(() => cycles === 1);
  const stoppedAt = Date.now();
  loop.stop();
  loop.stop();
  await loop.done;
  assert.ok(aborted);
  assert.equal(cycles, 1);
  assert.ok(Date.now() - stoppedAt < 1000);
});

Deno.test("a failing cycle is reported and the loop goes on", async () => {
  const errors: string[] = [];
  let cycles = 0;
  const loop = startWatchLoop({
    intervalMs: 5,
    runCycle: () => {
      cycles++;
      return cycles === 1 ? Promise.reject(new Error("vault down")) : Promise.resolve();
    },
    onCycleError: (error, request) => errors.push(`${request.number}: ${(error as Error).message}`),
  });
  await until(() => cycles >= 3);
  loop.stop();
  await loop.done;
  assert.deepEqual(errors, ["1: vault down"]);
});

Deno.test("the jitter adds up to --jitter to each interval; setNextFullAt() moves the next cycle", async () => {
  let at = 1_000_000;
  const scheduled: number[] = [];
  let cycles = 0;
  const loop = startWatchLoop({
    intervalMs: 60_000,
    jitterMs: 10_000,
    random: () => 0.5,
    now: () => at,
    runCycle: () => {
      cycles++;
      return Promise.resolve();
    },
    onScheduled: (next) => {
      scheduled.push(next);
    },
  });
  await until(() => scheduled.length === 1);
  assert.equal(scheduled[0], 1_000_000 + 60_000 + 5_000);
  at += 1_000;
  loop.setNextFullAt(at); // due now
  await until(() => cycles === 2);
  loop.stop();
  await loop.done;
});

Deno.test("parseDuration() reads 6h, 5m, 30s, 250ms, 1h30m and bare seconds", () => {
  assert.equal(parseDuration("6h"), 21_600_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("45"), 45_000);
  for (const bad of ["", "5x", "h", "1.5h", "-1s", "5m "]) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});
