// The one sanitiser for outside-sourced text (src/text.ts), and the helpers built on it.
import assert from "node:assert/strict";
import { outputExcerpt } from "../src/reload/redact.ts";
import {
  capped,
  errorMessage,
  escapeControl,
  MIN_SECRET_CHARS,
  oneLine,
  quoted,
  redact,
  sanitize,
  stripControl,
} from "../src/text.ts";

const SECRET = "api-token-LEAK-4f1c9a";

Deno.test("issue 8 #6: escapes are stripped before redaction, so they cannot split a secret", () => {
  const splits = [
    "api-token-\x1b[0mLEAK-4f1c9a",
    "api-\x1b]0;t\x07token-LEAK-4f1c9a",
    "api-token-\x00LEAK-\u200b4f1c9a",
    "api-token-\x9b1mLEAK-4f1c9a",
  ];
  for (const text of splits) {
    const shown = outputExcerpt({ code: 1, stdout: "", stderr: `error: ${text} rejected` }, [
      SECRET,
    ]);
    assert.equal(shown, "error: [redacted] rejected", JSON.stringify(text));
    assert.equal(sanitize(`x ${text}`, [SECRET]), "x [redacted]");
  }
  // A value that itself holds an escape is looked for as it reads once stripped.
  assert.equal(
    sanitize("say api-token-LEAK-4f1c9a", ["api-token-\x1b[1mLEAK-4f1c9a"]),
    "say [redacted]",
  );
});

Deno.test("issue 8 #6: what redaction cannot blank out is what the README says", () => {
  // Values shorter than MIN_SECRET_CHARS are left alone (documented).
  assert.equal(MIN_SECRET_CHARS, 6);
  assert.equal(redact("pin 12345 here", ["12345"]), "pin 12345 here");
  assert.equal(redact("pin 123456 here", ["123456"]), "pin [redacted] here");
  // Transformed output is not recognised (documented).
  assert.equal(redact(btoa(SECRET), [SECRET]), btoa(SECRET));
  // One line of a multi-line value, when at least 8 characters long, is.
  assert.equal(redact("got line-two-of-it", ["line-one\nline-two-of-it"]), "got [redacted]");
});

Deno.test("stripControl(), oneLine(), quoted(), escapeControl(), capped(), errorMessage()", () => {
  assert.equal(stripControl("a\r\nb\rc\x1b[31md\x1b(Be\u202ef"), "a\nb\ncdef");
  assert.equal(oneLine("  one\n\n\t two  \r\n", 300), "one | two");
  assert.equal(oneLine("x".repeat(10), 4), "xxxx…");
  assert.equal(quoted("a\nb\x1b\u2028"), "a\\nb\\u001b\\u2028");
  assert.equal(escapeControl("a\nb\tc\x85"), "a\\u000ab\\u0009c\\u0085");
  assert.equal(capped("ab😀", 3), "ab…");
  assert.equal(errorMessage(new Error("e")), "e");
  assert.equal(errorMessage({ message: 5 }), "5");
  assert.equal(errorMessage(undefined), "");
});
