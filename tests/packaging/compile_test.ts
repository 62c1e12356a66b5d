import assert from "node:assert/strict";
import {
  build,
  BuildError,
  PAYLOAD_BUDGET_BYTES,
  TARGETS,
  unseenDynamicImports,
} from "../../scripts/compile.ts";
import { exportTarget } from "../../scripts/prune.ts";
import {
  permissionDifferences,
  readMetadata,
  v8FlagDifferences,
  verifyPayload,
} from "../../scripts/payload.ts";
import { UNITS } from "../../src/assets.ts";
import { COMPILE_FLAGS, PERMISSIONS, REPO_ROOT } from "../../scripts/permissions.ts";

/** A copy of what a build reads, to break on purpose. */
async function withRepoCopy(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "secretsync-repo-" });
  try {
    for (const name of ["src", "systemd", "recipes", "deno.json", "deno.lock"]) {
      await copy(`${REPO_ROOT}/${name}`, `${root}/${name}`);
    }
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function copy(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from).catch(() => undefined);
  if (!info) return;
  if (info.isFile) return await Deno.copyFile(from, to);
  await Deno.mkdir(to);
  for await (const entry of Deno.readDir(from)) {
    await copy(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

Deno.test("compile:check prunes node_modules, smoke-runs the result, builds both targets within the budget", async () => {
  const lines: string[] = [];
  const result = await build({ check: true, print: (line) => lines.push(line) });
  console.log(lines.join("\n"));
  assert.equal(PAYLOAD_BUDGET_BYTES, 12_000_000, "the budget is 12 MB, decimal");
  assert.deepEqual(result.targets.map((t) => t.target), [...TARGETS]);
  for (const target of result.targets) {
    assert.ok(target.payloadBytes! > 1024 * 1024, "the payload holds the npm packages");
    assert.ok(target.payloadBytes! < 10_000_000, "the pruned payload is under 10 MB");
    assert.ok(target.payloadBytes! <= PAYLOAD_BUDGET_BYTES);
  }
  assert.match(result.commit, /^([0-9a-f]{12}(-dirty)?|unknown)$/);
  // What was pruned, and that the pruned tree was run through every path that loads a package.
  const { byRule, esmPackages } = result.pruned;
  for (const rule of ["types", "sourceMaps", "docs", "outsideEsmGraph"] as const) {
    assert.ok(byRule[rule] > 0, `rule ${rule} pruned something`);
  }
  assert.deepEqual([...esmPackages].sort(), ["commander@15.1.0", "csv-parse@7.0.3", "zod@4.6.7"]);
  assert.ok(result.pruned.kept.some((p) => p.startsWith("oci-common@")), "CommonJS stays whole");
  assert.deepEqual(result.smoked, [
    "--version",
    "--help",
    "recipe list",
    "check",
    "sync (instance principal)",
    "sync --auth api_key",
  ]);
  assert.match(lines.join("\n"), /payload \d+\.\d\d MB \(\d+\.\d\d MiB, \d+ bytes\)/);
});

Deno.test("compile:check fails when a pruned file is needed at run time", () =>
  withRepoCopy(async (root) => {
    // The SDK is imported lazily, and only where needed: --version, recipe list, check and an
    // instance-principal sync pass; the api_key sync, which loads the SDK, must not.
    await assert.rejects(
      build({
        root,
        check: true,
        targets: [TARGETS[0]],
        alsoPrune: ["oci-secrets@2.139.1/node_modules/oci-secrets/lib/client.js"],
        print: () => {},
      }),
      (error: Error) =>
        error instanceof BuildError &&
        /Smoke run of the pruned build copy failed: `secretsync sync .*--auth api_key/.test(
          error.message,
        ),
    );
  }));

Deno.test("compile:check fails on a dynamic import the compiler cannot see", () =>
  withRepoCopy(async (root) => {
    await Deno.writeTextFile(
      `${root}/src/plugin.ts`,
      "export async function load(name: string) {\n  return await import(`./recipes/${name}.ts`);\n}\n",
    );
    const main = await Deno.readTextFile(`${root}/src/main.ts`);
    await Deno.writeTextFile(`${root}/src/main.ts`, `import "./plugin.ts";\n${main}`);
    await assert.rejects(
      build({ root, check: true, print: () => {} }),
      (error: Error) =>
        error instanceof BuildError &&
        /plugin\.ts:2: dynamic import the compiler cannot see/.test(error.message),
    );
  }));

Deno.test("compile:check fails on a module missing from the graph, even a dynamic one", () =>
  withRepoCopy(async (root) => {
    const main = await Deno.readTextFile(`${root}/src/main.ts`);
    await Deno.writeTextFile(
      `${root}/src/main.ts`,
      `${main}\nexport const later = () => import("./gone.ts");\n`,
    );
    await assert.rejects(
      build({ root, check: true, print: () => {} }),
      (error: Error) =>
        error instanceof BuildError && /Module not found .*gone\.ts/.test(error.message),
    );
  }));

Deno.test("compile:check fails when the payload grows past the budget, and says by how much", () =>
  withRepoCopy(async (root) => {
    const lines: string[] = [];
    await assert.rejects(
      build({
        root,
        check: true,
        targets: [TARGETS[0]],
        budgetBytes: 1024 * 1024,
        smoke: false,
        print: (line) => lines.push(line),
      }),
      (error: Error) =>
        error instanceof BuildError &&
        /over the budget of 1\.05 MB \(1\.00 MiB, 1048576 bytes\)/.test(error.message),
    );
    assert.match(lines.at(-1)!, /payload \d+\.\d\d MB/, "the size is printed before failing");
  }));

Deno.test("compile:check fails when src/assets.ts is stale or the versions disagree", () =>
  withRepoCopy(async (root) => {
    const unit = `${root}/systemd/oci-secretsync.timer`;
    await Deno.writeTextFile(unit, (await Deno.readTextFile(unit)).replace("6h", "1h"));
    await assert.rejects(
      build({ root, check: true, print: () => {} }),
      /src\/assets\.ts differs from systemd\//,
    );
    const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
    await Deno.writeTextFile(`${root}/deno.json`, JSON.stringify({ ...config, version: "9.9.9" }));
    await assert.rejects(
      build({ root, check: true, print: () => {} }),
      /VERSION "0\.1\.0" but deno\.json has version "9\.9\.9"/,
    );
  }));

Deno.test("exportTarget() resolves exports as an ESM import does, and gives up on the unusual", () => {
  const zod = {
    "./package.json": "./package.json",
    ".": { "@zod/source": "./src/index.ts", types: "./index.d.cts", import: "./index.js" },
    "./v3": { "@zod/source": "./src/v3/index.ts", import: "./v3/index.js" },
  };
  assert.equal(exportTarget(zod, "."), "./index.js");
  assert.equal(exportTarget(zod, "./v3"), "./v3/index.js");
  assert.equal(exportTarget(zod, "./mini"), undefined);
  const nested = {
    ".": { node: { import: "./esm/index.js", require: "./cjs/index.js" }, default: "./b.js" },
  };
  assert.equal(exportTarget(nested, "."), "./esm/index.js");
  assert.equal(exportTarget({ require: "./index.cjs" }, "."), undefined);
  assert.equal(exportTarget("./index.js", "."), "./index.js");
  assert.equal(exportTarget({ "./*": "./lib/*.js" }, "./x"), undefined, "no patterns");
  assert.equal(exportTarget(undefined, "."), undefined);
});

Deno.test("unseenDynamicImports() flags computed specifiers only", () => {
  const ok = [
    'const m = await import("oci-common");',
    "const m = await import('./x.ts');",
    "const m = await import(`./x.ts`);",
    'const m = await import("./x.json", { with: { type: "json" } });',
    'type T = typeof import("oci-common");',
    "// await import(name) in a comment",
    " * await import(name) in JSDoc",
  ];
  for (const line of ok) assert.deepEqual(unseenDynamicImports("f.ts", line), [], line);
  const bad = [
    "await import(name);",
    "await import(`./recipes/${name}.ts`);",
    'await import("./recipes/" + name);',
  ];
  for (const line of bad) assert.equal(unseenDynamicImports("f.ts", line).length, 1, line);
});

/** The release permissions as `deno compile` writes them into a binary's metadata. */
function releasePermissions() {
  return {
    allow_read: [...PERMISSIONS.read],
    allow_write: [...PERMISSIONS.write],
    allow_run: [...PERMISSIONS.run],
    allow_env: [...PERMISSIONS.env],
    ignore_env: [...PERMISSIONS.ignoreEnv],
    allow_net: [...PERMISSIONS.net],
    allow_sys: [...PERMISSIONS.sys],
    prompt: false,
  };
}

Deno.test("readMetadata() and permissionDifferences() read back what a binary carries", () => {
  const metadata = {
    argv: [],
    permissions: { ...releasePermissions(), deny_read: null },
    log_level: "ERROR",
    note: 'a "}" in a string',
  };
  const bytes = new TextEncoder().encode(`\x7fELF...${JSON.stringify(metadata)}\x00\x01trailer}`);
  const read = readMetadata(bytes);
  assert.deepEqual(read, metadata);
  assert.deepEqual(permissionDifferences(read!.permissions, PERMISSIONS), []);
  const wider = { ...metadata.permissions, allow_run: null, allow_net: [] };
  assert.deepEqual(permissionDifferences(wider, PERMISSIONS).map((p) => p.split(" ")[0]), [
    "allow_run",
    "allow_net",
  ]);
  assert.equal(readMetadata(new Uint8Array([1, 2, 3])), undefined);
});

Deno.test("v8FlagDifferences(): the release V8 flags are read back from what deno compile baked in", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-v8-flags-" });
  try {
    await Deno.writeTextFile(`${dir}/main.ts`, "console.log(1);\n");
    const v8Flags = COMPILE_FLAGS.filter((flag) => flag.startsWith("--v8-flags="));
    assert.equal(v8Flags.length, 1);
    /** The metadata's V8 flags of a binary compiled with `flags` (on a stand-in runtime). */
    const baked = async (flags: string[]) => {
      const output = `${dir}/bin-${flags.length}`;
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "compile",
          "--quiet",
          "--no-check",
          ...flags,
          `--output=${output}`,
          `${dir}/main.ts`,
        ],
        env: { DENORT_BIN: "/bin/true", NO_COLOR: "1" },
        stdout: "null",
      }).output();
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      return readMetadata(await Deno.readFile(output))?.v8_flags;
    };
    const release = await baked(v8Flags);
    assert.deepEqual(v8FlagDifferences(release), []);
    assert.deepEqual(v8FlagDifferences(await baked([])), [
      "V8 flag --max-semi-space-size=2 is missing",
      "V8 flag --expose-gc is missing",
      "V8 flag --single-threaded-gc is missing",
    ]);
    // verifyPayload() refuses a binary without them, all else being right.
    const payload = (v8_flags: unknown) => {
      const metadata = {
        argv: [],
        permissions: releasePermissions(),
        v8_flags,
        log_level: "ERROR",
      };
      return new TextEncoder().encode(
        `${Object.values(UNITS).join("")}"abc123"${JSON.stringify(metadata)}`,
      );
    };
    verifyPayload(payload(release), "t", "abc123");
    assert.throws(
      () => verifyPayload(payload(["--expose-gc"]), "t", "abc123"),
      /V8 flag --single-threaded-gc is missing/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
