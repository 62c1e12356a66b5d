import assert from "node:assert/strict";
import { BadContent, decodeBundle } from "../../src/vault/decode.ts";
import { assertSameBytes } from "../oci/assert_secret.ts";

const bundle = (content: unknown, extra: Record<string, unknown> = {}) => ({
  secretId: "ocid1.vaultsecret.oc1..a",
  versionNumber: 7,
  secretBundleContent: { contentType: "BASE64", content },
  ...extra,
});

Deno.test("decodeBundle() is binary-safe", () => {
  for (let len = 0; len < 8; len++) {
    const bytes = new Uint8Array(len).map((_, i) => [0, 0xff, 0x0a, 0x80][i % 4]);
    const got = decodeBundle(bundle(bytes.toBase64()), { maxBytes: 64 });
    assertSameBytes(got.bytes, bytes, `length ${len}`);
    assert.equal(got.version, 7);
  }
});

Deno.test("decodeBundle() refuses what it cannot trust", () => {
  const refused: [string, unknown, RegExp][] = [
    ["missing content", bundle(undefined), /no secret content/],
    ["no padding", bundle("AAE"), /not valid base64/],
    ["whitespace", bundle("AA\nE="), /not valid base64/],
    ["url alphabet", bundle("__8="), /not valid base64/],
    ["non-zero pad bits", bundle("AAF="), /not valid base64/],
    ["wrong type", {
      ...bundle("AA=="),
      secretBundleContent: { contentType: "TEXT", content: "AA==" },
    }, /content type is "TEXT"/],
    ["no version", bundle("AA==", { versionNumber: undefined }), /version number/],
    ["other secret", bundle("AA==", { secretId: "ocid1.vaultsecret.oc1..b" }), /another secret/],
    ["too big", bundle(new Uint8Array(65).toBase64()), /65 bytes, more than the limit of 64/],
    ["null", null, /no secret content/],
  ];
  for (const [label, b, pattern] of refused) {
    assert.throws(
      () => decodeBundle(b as never, { maxBytes: 64, secretId: "ocid1.vaultsecret.oc1..a" }),
      (e: Error) => e instanceof BadContent && pattern.test(e.message),
      label,
    );
  }
  assert.equal(
    decodeBundle(bundle(new Uint8Array(64).toBase64()), { maxBytes: 64 }).bytes.length,
    64,
  );
});
