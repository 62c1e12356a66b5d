import assert from "node:assert/strict";
import {
  build,
  BuildError,
  PAYLOAD_BUDGET_BYTES,
  permissionDifferences,
  readMetadata,
  TARGETS,
  unseenDynamicImports,
} from "../../scripts/compile.ts";
import { PERMISSIONS, REPO_ROOT } from "../../scripts/permissions.ts";

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

Deno.test("compile:check builds both targets within the budget, with exactly the permissions", async () => {
  const lines: string[] = [];
  const result = await build({ check: true, print: (line) => lines.push(line) });
  console.log(lines.join("\n"));
  assert.deepEqual(result.targets.map((t) => t.target), [...TARGETS]);
  for (const target of result.targets) {
    assert.ok(target.payloadBytes! > 1024 * 1024, "the payload holds the npm packages");
    assert.ok(target.payloadBytes! <= PAYLOAD_BUDGET_BYTES);
  }
  assert.match(result.commit, /^([0-9a-f]{12}(-dirty)?|unknown)$/);
});

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
        print: (line) => lines.push(line),
      }),
      (error: Error) =>
        error instanceof BuildError && /over the budget of 1\.00 MiB/.test(error.message),
    );
    assert.match(lines[0], /payload \d+\.\d\d MiB/, "the size is printed before failing");
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

Deno.test("readMetadata() and permissionDifferences() read back what a binary carries", () => {
  const metadata = {
    argv: [],
    permissions: {
      allow_read: [...PERMISSIONS.read],
      allow_write: [...PERMISSIONS.write],
      allow_run: [...PERMISSIONS.run],
      allow_env: [...PERMISSIONS.env],
      ignore_env: [...PERMISSIONS.ignoreEnv],
      allow_net: [...PERMISSIONS.net],
      allow_sys: [...PERMISSIONS.sys],
      deny_read: null,
      prompt: false,
    },
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
