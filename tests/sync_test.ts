/**
 * `sync()`, the engine, with fake edges: an in-memory secret source and a recording reloader.
 * Files are real (a temp directory); no network, no container runtime, no root.
 */
import assert from "node:assert/strict";
import type { Logger } from "../src/log.ts";
import type { Entry } from "../src/map.ts";
import type { ReloadAction } from "../src/plan.ts";
import { exitCodeOf, INTERRUPTED, sync, type SyncDeps, type SyncSettings } from "../src/sync.ts";
import { type SecretSource, VaultError } from "../src/vault/mod.ts";

const encoder = new TextEncoder();

/** Secrets in a Map; a missing one fails as OCI's 404 would. Records each fetch. */
function memorySource(values: Record<string, string>) {
  const fetched: string[] = [];
  const source: SecretSource = {
    fetch(secretId) {
      fetched.push(secretId);
      const value = values[secretId];
      if (value === undefined) {
        return Promise.reject(
          new VaultError(`Cannot fetch ${secretId}: 404`, {
            secretId,
            status: 404,
            reason: "404 NotAuthorizedOrNotFound",
            retryable: false,
          }),
        );
      }
      return Promise.resolve({ bytes: encoder.encode(value), version: 1 });
    },
    close() {},
  };
  return { source, fetched, values };
}

/** Records each reload; fails the targets named in `failing`. */
function recordingReloader(failing = new Set<string>()) {
  const reloads: string[] = [];
  return {
    reloads,
    failing,
    reloader: {
      reload(action: ReloadAction) {
        const name = action.target.kind === "container" ? action.target.name : "?";
        if (failing.has(name)) return Promise.reject(new Error(`${name} is not running`));
        reloads.push(`${name} ${action.paths.join(",")}`);
        return Promise.resolve("reloaded" as const);
      },
    },
  };
}

function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    log: (level, component, message) => lines.push(`${level} ${component} ${message}`),
  };
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "secretsync-engine-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function entries(root: string): Entry[] {
  return [
    {
      line: 1,
      secretId: "db",
      path: `${root}/db`,
      mode: 0o600,
      target: { kind: "container", name: "web" },
      reload: { kind: "signal", signal: "HUP" },
    },
    {
      line: 2,
      secretId: "api",
      path: `${root}/app/api`,
      mode: 0o640,
      target: { kind: "container", name: "web" },
      reload: { kind: "signal", signal: "HUP" },
    },
    { line: 3, secretId: "plain", path: `${root}/plain`, mode: 0o600 },
  ];
}

function settings(root: string, more: Partial<SyncSettings> = {}): SyncSettings {
  return { roots: [root], dryRun: false, concurrency: 2, ...more };
}

Deno.test("sync() writes what changed, reloads each target once, then has nothing to do", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", api: "api-value", plain: "plain-value" });
    const rl = recordingReloader();
    const deps: SyncDeps = { source: vault.source, reloader: rl.reloader, log: memoryLog() };
    const first = await sync(entries(root), deps, settings(root));
    assert.equal(exitCodeOf(first), 3);
    assert.deepEqual(rl.reloads, [`web ${root}/db,${root}/app/api`]);
    assert.equal(await Deno.readTextFile(`${root}/app/api`), "api-value");
    assert.equal((await Deno.stat(`${root}/app/api`)).mode! & 0o777, 0o640);
    assert.deepEqual(first.results.map((r) => r.status), ["changed", "changed", "changed"]);

    const second = await sync(entries(root), deps, settings(root));
    assert.equal(exitCodeOf(second), 0);
    assert.equal(rl.reloads.length, 1, "no reload for unchanged files");
    assert.deepEqual(second.results.map((r) => r.status), ["unchanged", "unchanged", "unchanged"]);
  }));

Deno.test("sync() fails only a failing secret's entries and records the reason", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", plain: "plain-value" });
    await Deno.mkdir(`${root}/app`);
    await Deno.writeTextFile(`${root}/app/api`, "old");
    const rl = recordingReloader();
    const report = await sync(entries(root), {
      source: vault.source,
      reloader: rl.reloader,
      log: memoryLog(),
    }, settings(root));
    assert.equal(exitCodeOf(report), 1);
    assert.equal(await Deno.readTextFile(`${root}/app/api`), "old", "left as it was");
    assert.equal(await Deno.readTextFile(`${root}/db`), "db-value");
    assert.deepEqual(report.results[1], {
      entry: entries(root)[1],
      status: "failed",
      error: "404 NotAuthorizedOrNotFound",
    });
    assert.deepEqual(rl.reloads, [`web ${root}/db`]);
  }));

Deno.test("sync() owes reloads before writing, keeps failed ones owed, and retries owed ones", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", api: "api-value", plain: "plain-value" });
    const rl = recordingReloader(new Set(["web"]));
    const owedAt: { paths: string[]; dbExisted: boolean }[] = [];
    const deps: SyncDeps = {
      source: vault.source,
      reloader: rl.reloader,
      log: memoryLog(),
      oweReloads: async (paths) => {
        const dbExisted = await Deno.stat(`${root}/db`).then(() => true, () => false);
        owedAt.push({ paths, dbExisted });
      },
    };
    const first = await sync(entries(root), deps, settings(root));
    assert.deepEqual(owedAt, [{ paths: [`${root}/db`, `${root}/app/api`], dbExisted: false }]);
    assert.equal(exitCodeOf(first), 1);
    assert.deepEqual(first.pendingReloads, [`${root}/db`, `${root}/app/api`]);
    assert.match(first.results[0].error ?? "", /reload of web failed: web is not running/);
    assert.equal(first.results[0].status, "changed", "the file was written");

    rl.failing.clear();
    const second = await sync(entries(root), deps, {
      ...settings(root),
      pendingReloads: first.pendingReloads,
    });
    assert.equal(exitCodeOf(second), 3, "an owed reload done counts as a change");
    assert.deepEqual(rl.reloads, [`web ${root}/db,${root}/app/api`]);
    assert.deepEqual(second.pendingReloads, []);
  }));

Deno.test("sync() does not write a file whose reload cannot be owed", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", api: "api-value", plain: "plain-value" });
    const rl = recordingReloader();
    const log = memoryLog();
    const report = await sync(entries(root), {
      source: vault.source,
      reloader: rl.reloader,
      log,
      oweReloads: () => Promise.reject(new Error("No space left on device")),
    }, settings(root));
    assert.equal(exitCodeOf(report), 1);
    await assert.rejects(Deno.stat(`${root}/db`), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(`${root}/plain`), "plain-value", "no reload, written");
    assert.deepEqual(rl.reloads, []);
    assert.ok(log.lines.some((l) => l.startsWith(`error write Not writing ${root}/db:`)));
  }));

Deno.test("sync() with secrets fetches only those, and still does the reloads owed by others", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", api: "api-value", plain: "plain-value" });
    const rl = recordingReloader();
    const report = await sync(entries(root), {
      source: vault.source,
      reloader: rl.reloader,
      log: memoryLog(),
    }, settings(root, { secrets: ["plain"], pendingReloads: [`${root}/db`] }));
    assert.deepEqual(vault.fetched, ["plain"]);
    assert.deepEqual(report.results.map((r) => r.entry.secretId), ["plain"]);
    assert.deepEqual(rl.reloads, [`web ${root}/db`]);
    assert.equal(exitCodeOf(report), 3);
  }));

Deno.test("sync() stopped by its signal starts no write or reload and owes the reloads", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", api: "api-value", plain: "plain-value" });
    const rl = recordingReloader();
    const stop = new AbortController();
    stop.abort("SIGTERM");
    const report = await sync(entries(root), {
      source: vault.source,
      reloader: rl.reloader,
      log: memoryLog(),
    }, settings(root, { signal: stop.signal, pendingReloads: [`${root}/db`] }));
    assert.equal(exitCodeOf(report), 1);
    // Fetches are the source's to stop (run.ts wraps it); writes and reloads are sync's.
    assert.deepEqual([...Deno.readDirSync(root)], []);
    assert.deepEqual(report.results.map((r) => r.error), [INTERRUPTED, INTERRUPTED, INTERRUPTED]);
    assert.deepEqual(rl.reloads, []);
    assert.deepEqual(report.pendingReloads, [`${root}/db`]);
  }));

Deno.test("sync() in a dry run writes and reloads nothing, and exits as the real run would", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value", api: "api-value", plain: "plain-value" });
    const rl = recordingReloader();
    const log = memoryLog();
    const report = await sync(entries(root), { source: vault.source, reloader: rl.reloader, log }, {
      ...settings(root),
      dryRun: true,
    });
    assert.equal(exitCodeOf(report), 3);
    assert.deepEqual([...Deno.readDirSync(root)], []);
    assert.deepEqual(rl.reloads, []);
    assert.ok(
      log.lines.includes("info reload Would reload web with signal HUP"),
      log.lines.join("\n"),
    );
  }));

Deno.test("sync() with nothing to fetch announces no fetches (watch's shared vault would authenticate)", () =>
  withRoot(async (root) => {
    const vault = memorySource({ db: "db-value" });
    const announced: number[] = [];
    const source: SecretSource = {
      ...vault.source,
      upcoming: (fetches) => announced.push(fetches.length),
    };
    const deps: SyncDeps = { source, reloader: recordingReloader().reloader, log: memoryLog() };
    await sync(entries(root), deps, settings(root, { secrets: ["nothing-in-the-map"] }));
    assert.deepEqual(announced, []);
    await sync(entries(root).slice(0, 1), deps, settings(root));
    assert.deepEqual(announced, [1]);
  }));
