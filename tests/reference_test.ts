import assert from "node:assert/strict";
import {
  entrySelector,
  fetchKey,
  formatKeyPath,
  formatReference,
  parseKeyPath,
  parseReference,
} from "../src/reference.ts";
import { selectKey } from "../src/extract.ts";
import { parseMap } from "../src/map.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaaexample";
const VAULT = "ocid1.vault.oc1.iad.bbbbexample";

Deno.test("parseReference() reads every form", () => {
  const ok = (text: string) => {
    const parsed = parseReference(text);
    if (!parsed.ok) throw new Error(`${text}: ${parsed.message}`);
    return parsed.ref;
  };
  assert.deepEqual(ok(ID), { secret: { ocid: ID } });
  assert.deepEqual(ok(`name:db-pass_1.x@${VAULT}`), {
    secret: { name: "db-pass_1.x", vaultId: VAULT },
  });
  assert.deepEqual(ok(`${ID}?stage=pending`), {
    secret: { ocid: ID },
    version: { stage: "PENDING" },
  });
  assert.deepEqual(ok(`${ID}?version=42`), {
    secret: { ocid: ID },
    version: { versionNumber: 42 },
  });
  assert.deepEqual(ok(`${ID}#password`), { secret: { ocid: ID }, key: ["password"] });
  assert.deepEqual(ok(`name:n@${VAULT}?version=3#a.b\\.c.d\\\\e`), {
    secret: { name: "n", vaultId: VAULT },
    version: { versionNumber: 3 },
    key: ["a", "b.c", "d\\e"],
  });
  // Everything after # is the key path, "?" and "#" included.
  assert.deepEqual(ok(`${ID}#q?x#y`), { secret: { ocid: ID }, key: ["q?x#y"] });
});

Deno.test("parseReference() names the wrong part", () => {
  const cases: [string, RegExp][] = [
    ["", /"" is not a secret OCID/],
    ["ocid1.vault.oc1.iad.aaaa", /is not a secret OCID .* or name:SECRET_NAME@VAULT_OCID/],
    [`${ID}?`, /"\?" must be \?stage=STAGE or \?version=N/],
    [`${ID}?stage=`, /stage "" must be one of/],
    [`${ID}?stage=CURRENT&version=2`, /stage "CURRENT&version=2" must be one of/],
    [`${ID}?version=01`, /version "01" must be a positive whole number/],
    [`${ID}?version=12345678901`, /version "12345678901"/],
    [`${ID}#a.`, /key path "a\." has an empty key/],
    [`${ID}#\\`, /a backslash must be followed/],
    [`name:@${VAULT}`, /secret name "" must be/],
    [`name:x@`, /"" is not a vault OCID/],
    [`name:${"x".repeat(300)}@${VAULT}`, /secret name "x{77}\.\.\." must be/],
  ];
  for (const [text, re] of cases) {
    const parsed = parseReference(text);
    assert.equal(parsed.ok, false, text);
    if (!parsed.ok) assert.match(parsed.message, re, text);
  }
});

Deno.test("parseKeyPath() and formatKeyPath() round-trip keys with dots and backslashes", () => {
  for (const keys of [["a"], ["a.b"], ["a\\", "b"], ["x", "y.z\\.w", "#?"]]) {
    assert.deepEqual(parseKeyPath(formatKeyPath(keys)), keys);
  }
});

Deno.test("formatReference() is canonical and reads back to the same reference", () => {
  for (
    const text of [
      ID,
      `${ID}?stage=Pending`,
      `name:n@${VAULT}?version=7#a\\.b.c\\\\d`,
      `${ID}#q?x#y`,
    ]
  ) {
    const parsed = parseReference(text);
    assert.ok(parsed.ok, text);
    if (!parsed.ok) continue;
    const canonical = formatReference(parsed.ref);
    assert.deepEqual(parseReference(canonical), parsed, text);
  }
  const pending = parseReference(`${ID}?stage=pending`);
  assert.ok(pending.ok);
  if (pending.ok) assert.equal(formatReference(pending.ref), `${ID}?stage=PENDING`);
});

Deno.test("fetchKey() is one per secret and version, whatever the key", () => {
  const ref = (text: string) => {
    const parsed = parseReference(text);
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.ref;
  };
  assert.equal(fetchKey(ref(`${ID}#a`)), fetchKey(ref(`${ID}#b.c`)));
  assert.notEqual(fetchKey(ref(`${ID}?version=2`)), fetchKey(ref(ID)));
  assert.equal(
    fetchKey(ref(ID), { stage: "CURRENT" }),
    fetchKey(ref(`${ID}?stage=current`), { stage: "CURRENT" }),
  );
  assert.equal(fetchKey(ref(`name:n@${VAULT}?version=2#k`)), `name:n@${VAULT}?version=2`);
});

Deno.test("selectKey() writes strings as text, other values as JSON, and refuses the rest", () => {
  const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const secret = bytes({ s: "line\n", n: 1.5, b: false, z: null, o: { "k.k": [1] } });
  assert.equal(text(selectKey(secret, ["s"])), "line\n");
  assert.equal(text(selectKey(secret, ["n"])), "1.5");
  assert.equal(text(selectKey(secret, ["b"])), "false");
  assert.equal(text(selectKey(secret, ["z"])), "null");
  assert.equal(text(selectKey(secret, ["o", "k.k"])), "[1]");
  assert.throws(() => selectKey(secret, ["missing"]), /the secret has no key "missing"/);
  assert.throws(() => selectKey(secret, ["toString"]), /no key "toString"/);
  assert.throws(() => selectKey(secret, ["s", "x"]), /key "s" is not an object/);
  assert.throws(() => selectKey(bytes([1]), ["0"]), /JSON but not an object/);
  assert.throws(() => selectKey(bytes("str"), ["a"]), /JSON but not an object/);
  const leaky = new TextEncoder().encode('{"password": "hunter2"');
  assert.throws(() => selectKey(leaky, ["password"]), (e: Error) => {
    assert.match(e.message, /the secret is not JSON/);
    assert.doesNotMatch(e.message, /hunter2/);
    return true;
  });
});

Deno.test("parseMap() keeps bare-OCID entries as they were and adds ref for the new forms", () => {
  const map = parseMap(`${ID},/run/secrets/a,0600\n${ID}#k,/run/secrets/b,0600\n`, {
    roots: ["/run/secrets"],
  });
  assert.ok(map.ok);
  assert.deepEqual(map.entries[0], { line: 1, secretId: ID, path: "/run/secrets/a", mode: 0o600 });
  assert.deepEqual(map.entries[1].ref, { secret: { ocid: ID }, key: ["k"] });
  assert.equal(map.entries[1].secretId, `${ID}#k`);
});

/** mulberry32, seeded: every run can be replayed with FUZZ_SEED. */
function prng(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("parseMap() reports fuzzed bad references on their own line, never throws", () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 2 ** 31);
  const random = prng(seed);
  const pieces = ["?", "#", "=", "@", ".", "\\", "name:", "stage", "version", "0", "9", " ", "&"];
  const good = [`${ID}?stage=PENDING#a\\.b`, `name:x@${VAULT}?version=2`, `${ID}#k`];
  for (let run = 0; run < 2000; run++) {
    let ref = good[Math.floor(random() * good.length)];
    for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
      const at = Math.floor(random() * (ref.length + 1));
      const piece = pieces[Math.floor(random() * pieces.length)];
      ref = random() < 0.5
        ? ref.slice(0, at) + piece + ref.slice(at)
        : ref.slice(0, at) + ref.slice(at + 1);
    }
    const line = 1 + Math.floor(random() * 5);
    const lines = Array.from({ length: 6 }, (_, i) => `${ID},/run/secrets/f${i},0600`);
    lines[line - 1] = `"${ref.replaceAll('"', '""')}",/run/secrets/f${line - 1},0600`;
    const context = `seed ${seed}, run ${run}, ref ${JSON.stringify(ref)}`;
    const map = parseMap(lines.join("\n"), { roots: ["/run/secrets"] });
    const parsed = parseReference(ref); // quoted: csv-parse keeps the spaces
    if (map.ok) {
      assert.ok(parsed.ok, context);
      const entry = map.entries[line - 1];
      assert.ok(parsed.ok, context);
      if (parsed.ok) assert.equal(entry.secretId, formatReference(parsed.ref), context);
    } else {
      assert.equal(parsed.ok, false, context);
      assert.deepEqual(map.problems.map((p) => p.line), [line], context);
      if (!parsed.ok) assert.equal(map.problems[0].message, parsed.message, context);
    }
  }
});

Deno.test("entrySelector() selects by reference in any spelling, or by the OCID it names", () => {
  const entry = (text: string) => {
    const parsed = parseReference(text);
    if (!parsed.ok) throw new Error(parsed.message);
    return { secretId: formatReference(parsed.ref), ref: parsed.ref };
  };
  const byOcid = entrySelector([ID]);
  assert.ok(byOcid({ secretId: ID }));
  assert.ok(byOcid(entry(`${ID}#password`)));
  assert.ok(byOcid(entry(`${ID}?version=2`)));
  assert.ok(!byOcid(entry(`name:n@${VAULT}`)));
  const byRef = entrySelector([`${ID}?stage=pending#a`]);
  assert.ok(byRef(entry(`${ID}?stage=PENDING#a`)));
  assert.ok(!byRef(entry(`${ID}#a`)));
  assert.ok(entrySelector([`name:n@${VAULT}`])(entry(`name:n@${VAULT}`)));
});
