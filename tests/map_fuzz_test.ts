/**
 * Fuzzes the map parser with seeded random and mutated maps. Every input must come back
 * either valid (and then every entry obeys the rules) or rejected with line-numbered
 * problems; never an exception. Set FUZZ_SEED to replay a run; FUZZ_RUNS for more cases.
 */
import assert from "node:assert/strict";
import { isInside, isNormalizedAbsolute } from "../src/paths.ts";
import { LINE_END, parseMap } from "../src/map.ts";

const seed = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 2 ** 31);
const runs = Number(Deno.env.get("FUZZ_RUNS") ?? 5000);
const roots = ["/run/secrets", "/srv/tls"];

/** mulberry32: small, seedable, good enough to spread inputs. */
function prng(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID_LINES = [
  "ocid1.vaultsecret.oc1.iad.amaaaaaaexample,/run/secrets/db,0600,web,HUP",
  "ocid1.vaultsecret.oc1..bbbb,/run/secrets/tls/key,0400,,",
  'ocid1.vaultsecret.oc1.fra.cccc,"/srv/tls/a,b",0440,proxy,SIGUSR2,1000:1000',
  "ocid1.vaultsecret.oc1.phx.dddd,/run/secrets/x,,unit:nginx.service,HUP",
  "# comment",
  "",
  "ocid,path,mode,container,signal",
];
const NASTY = [
  ",",
  '"',
  "\r",
  "\n",
  "#",
  " ",
  "\t",
  "\0",
  "..",
  "/",
  "-",
  "\\",
  "é",
  "\u202e",
  "0777",
  "SIG",
  ":",
  "'",
];

function mutate(line: string, rand: () => number): string {
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const at = Math.floor(rand() * (line.length + 1));
  switch (Math.floor(rand() * 6)) {
    case 0:
      return line.slice(0, at) + pick(NASTY) + line.slice(at);
    case 1:
      return line.slice(0, at) + line.slice(at + 1 + Math.floor(rand() * 5));
    case 2:
      return line.split(",").sort(() => rand() - 0.5).join(",");
    case 3:
      return line.slice(0, at);
    case 4:
      return String.fromCharCode(
        ...Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 0x2100)),
      );
    default:
      return line + pick(NASTY) + line;
  }
}

function randomMap(rand: () => number): string {
  const lines: string[] = [];
  const count = Math.floor(rand() * 8);
  for (let i = 0; i < count; i++) {
    let line = VALID_LINES[Math.floor(rand() * VALID_LINES.length)];
    const mutations = Math.floor(rand() * 3);
    for (let m = 0; m < mutations; m++) line = mutate(line, rand);
    lines.push(line);
  }
  return lines.join(rand() < 0.2 ? "\r\n" : "\n");
}

/** The same map with every line end written as `ending`. */
function withLineEnds(text: string, ending: string): string {
  return text.split(LINE_END).join(ending);
}

Deno.test(`parseMap() survives ${runs} fuzzed maps (seed ${seed})`, () => {
  console.log(`map fuzz seed: ${seed} (replay with FUZZ_SEED=${seed})`);
  const rand = prng(seed);
  let valid = 0;
  for (let run = 0; run < runs; run++) {
    const text = randomMap(rand);
    const lineCount = text.split(LINE_END).length;
    const context = `seed ${seed}, run ${run}, input ${JSON.stringify(text)}`;
    let result;
    try {
      result = parseMap(text, { roots, recipes: ["nginx"] });
    } catch (error) {
      throw new Error(`parseMap threw (${context}): ${error}`);
    }
    if (result.ok) {
      valid++;
      for (const entry of result.entries) {
        assert.ok(
          isNormalizedAbsolute(entry.path) && roots.some((r) => isInside(entry.path, r)),
          context,
        );
        assert.equal(entry.mode & ~0o755, 0, context);
        assert.match(entry.secretId, /^ocid1\.vaultsecret\./, context);
        if (entry.target?.kind === "container") {
          assert.doesNotMatch(entry.target.name, /^-/, context);
        }
      }
    } else {
      assert.ok(result.problems.length > 0, context);
      for (const problem of result.problems) {
        assert.ok(
          problem.line >= 1 && problem.line <= lineCount,
          `line ${problem.line} (${context})`,
        );
        assert.ok(problem.message.length > 0 && !problem.message.includes("\n"), context);
      }
    }
  }
  console.log(`map fuzz: ${runs} maps, ${valid} valid, ${runs - valid} rejected with line numbers`);
  assert.ok(valid > 0 && valid < runs, "the generator makes both valid and invalid maps");
});

Deno.test(`issue 8 #7: one map, one answer whatever its line ends (LF, CRLF, CR), ${runs} maps`, () => {
  const rand = prng(seed + 1);
  for (let run = 0; run < runs; run++) {
    // Quoted and unquoted valid lines, some mutated: the answer must not depend on line ends.
    const text = randomMap(rand);
    const lf = parseMap(withLineEnds(text, "\n"), { roots, recipes: ["nginx"] });
    for (const ending of ["\r\n", "\r"]) {
      const other = parseMap(withLineEnds(text, ending), { roots, recipes: ["nginx"] });
      assert.deepEqual(other, lf, `seed ${seed}, run ${run}, ${JSON.stringify(ending)}: ${text}`);
    }
  }
});
