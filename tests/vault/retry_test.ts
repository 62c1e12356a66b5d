import assert from "node:assert/strict";
import {
  backoffDelayMs,
  DEFAULT_BACKOFF,
  isRetryableStatus,
  parseStage,
} from "../../src/vault/mod.ts";

Deno.test("isRetryableStatus() retries throttling and server errors only", () => {
  for (const s of [429, 500, 502, 503, 504, 599]) assert.equal(isRetryableStatus(s), true, `${s}`);
  for (const s of [200, 400, 401, 403, 404, 409, 412, 600]) {
    assert.equal(isRetryableStatus(s), false, `${s}`);
  }
});

Deno.test("backoffDelayMs() is full jitter under an exponential ceiling capped at 2 s", () => {
  const almostOne = () => 0.999999;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 10].map((n) => backoffDelayMs(n, { random: almostOne })),
    [199, 399, 799, 1599, 1999, 1999],
  );
  assert.equal(backoffDelayMs(3, { random: () => 0 }), 0);
  assert.equal(backoffDelayMs(2, { random: () => 0.5 }), 200);
  assert.equal(backoffDelayMs(2, { baseMs: 10, capMs: 15, random: () => 0.5 }), 7);
  assert.equal(DEFAULT_BACKOFF.capMs, 2000);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelayMs(1 + (i % 6));
    assert.ok(d >= 0 && d < 2000 && Number.isInteger(d));
  }
});

Deno.test("the default policy bounds a failing run well under a minute", () => {
  // 3 attempts at the 10 s per-request timeout plus the largest two waits.
  const worst = 3 * 10_000 + backoffDelayMs(1, { random: () => 1 }) +
    backoffDelayMs(2, { random: () => 1 });
  assert.ok(worst <= 31_000, `${worst}`);
});

Deno.test("parseStage() maps names to stage and numbers to versionNumber", () => {
  assert.deepEqual(parseStage("CURRENT"), { stage: "CURRENT" });
  assert.deepEqual(parseStage("previous"), { stage: "PREVIOUS" });
  assert.deepEqual(parseStage(" Latest "), { stage: "LATEST" });
  assert.deepEqual(parseStage("4"), { versionNumber: 4 });
  for (const bad of ["", "0", "04x", "-3", "2.0", "NEWEST", "99999999999999999999"]) {
    assert.throws(() => parseStage(bad), RangeError, bad);
  }
});
