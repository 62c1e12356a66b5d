import assert from "node:assert/strict";
import {
  createRateLimiter,
  initialRate,
  MIN_RATE,
  type RateState,
  RECOVER_STEP_MS,
  reserve,
  throttle,
} from "../../src/vault/rate.ts";

/** Books `n` slots at `now`; returns the waits and the state. */
function book(state: RateState, now: number, n: number): [RateState, number[]] {
  const waits: number[] = [];
  for (let i = 0; i < n; i++) {
    let wait: number;
    [state, wait] = reserve(state, now);
    waits.push(wait);
  }
  return [state, waits];
}

Deno.test("reserve() spaces requests at the configured rate, and not at all without one", () => {
  const [, limited] = book(initialRate(10, 0), 0, 4);
  assert.deepEqual(limited, [0, 100, 200, 300]);
  const [, free] = book(initialRate(undefined, 0), 0, 4);
  assert.deepEqual(free, [0, 0, 0, 0]);
});

Deno.test("throttle() slows every later request, once per change of rate", async (t) => {
  await t.step("without --rate: half the rate reached in the last second", () => {
    // 40 requests in the first 800 ms, then a 429.
    let s = initialRate(undefined, 0);
    for (let i = 0; i < 40; i++) [s] = reserve(s, i * 20);
    s = throttle(s, 800, 780);
    assert.equal(s.current, 20);
    // Every request now waits its turn: 50 ms apart, the first one slot after the 429.
    const [, waits] = book(s, 800, 3);
    assert.deepEqual(waits, [50, 100, 150]);
  });

  await t.step("with --rate: half of it", () => {
    let s = initialRate(10, 0);
    [s] = reserve(s, 0);
    s = throttle(s, 10, 0);
    assert.equal(s.current, 5);
  });

  await t.step("429s of requests sent before the change do not count again", () => {
    let s = initialRate(16, 0);
    for (let i = 0; i < 16; i++) [s] = reserve(s, 0);
    s = throttle(s, 100, 0);
    for (let i = 0; i < 15; i++) s = throttle(s, 100 + i, 0); // the rest of the burst
    assert.equal(s.current, 8);
    s = throttle(s, 300, 200); // sent after the change: counts
    assert.equal(s.current, 4);
  });

  await t.step("never below the minimum", () => {
    let s = initialRate(1, 0);
    s = throttle(s, 10, 5);
    assert.equal(s.current, MIN_RATE);
  });
});

Deno.test("the rate recovers gradually after the last 429, up to where it was", async (t) => {
  await t.step("with --rate: back to the configured rate", () => {
    let s = throttle(initialRate(10, 0), 0, 0); // 5/s
    const rates: number[] = [];
    for (let i = 1; i <= 3; i++) {
      [s] = reserve(s, i * RECOVER_STEP_MS);
      rates.push(s.current);
    }
    assert.deepEqual(rates, [7.5, 10, 10]);
  });

  await t.step("without --rate: the limit is dropped at twice the rate reached", () => {
    let s = initialRate(undefined, 0);
    for (let i = 0; i < 20; i++) [s] = reserve(s, 500);
    s = throttle(s, 900, 500); // reached 20/s: now 10/s, recovers to 40/s then no limit
    const rates: number[] = [];
    for (let i = 1; i <= 4; i++) {
      [s] = reserve(s, 900 + i * RECOVER_STEP_MS);
      rates.push(s.current);
    }
    assert.deepEqual(rates, [15, 22.5, 33.75, Infinity]);
  });

  await t.step("a 429 during recovery halves the recovered rate", () => {
    let s = throttle(initialRate(10, 0), 0, 0); // 5
    [s] = reserve(s, RECOVER_STEP_MS); // 7.5
    s = throttle(s, RECOVER_STEP_MS + 10, RECOVER_STEP_MS);
    assert.equal(s.current, 3.75);
  });
});

Deno.test("createRateLimiter() waits on its clock and stops waiting on abort", async () => {
  let now = 0;
  const limiter = createRateLimiter(20, () => now); // 50 ms apart
  assert.equal(await limiter.acquire(), true); // at once
  const started = performance.now();
  assert.equal(await limiter.acquire(), true); // waits ~50 ms of real time
  assert.ok(performance.now() - started >= 40);
  now = 10;
  limiter.throttled(0);
  assert.equal(limiter.rate(), 10);
  const c = new AbortController();
  const waiting = limiter.acquire(c.signal);
  c.abort();
  assert.equal(await waiting, false);
});

Deno.test("createRateLimiter(): slots booked before a 429 are booked again at the new rate", async () => {
  const limiter = createRateLimiter(50); // 20 ms apart
  const sent: number[] = [];
  const t0 = limiter.now();
  await limiter.acquire(); // the first request goes at once…
  const first = limiter.now();
  // …and three more book slots at 20, 40 and 60 ms while it is in flight.
  const waiting = [1, 2, 3].map(() => limiter.acquire().then(() => sent.push(limiter.now() - t0)));
  limiter.throttled(first); // …then it is answered 429: 25/s, 40 ms apart
  await Promise.all(waiting);
  for (const [i, at] of sent.entries()) {
    assert.ok(at >= 40 * (i + 1) - 2, `request ${i + 2} went at ${at.toFixed(0)} ms`);
  }
});
