import assert from "node:assert/strict";
import { cliCommand, REPO_ROOT } from "../../scripts/permissions.ts";
import {
  EXAMPLE_ENV,
  EXAMPLE_MAP,
  type InstallDeps,
  type InstallOptions,
  parseInstallArgs,
  runInstall,
} from "../../src/commands/install.ts";
import { INSTALLED_UNITS as UNIT_NAMES, renderUnits } from "../../src/units.ts";
import { parseSyncArgs } from "../../src/commands/sync.ts";
import { UsageError } from "../../src/commands/usage.ts";
import type { Fields, Level, Logger } from "../../src/log.ts";
import { parseMap } from "../../src/map.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

interface Line {
  level: Level;
  message: string;
  fields?: Fields;
}

function memoryLogger(): Logger & { lines: Line[]; text(): string } {
  const lines: Line[] = [];
  return {
    lines,
    log(level, _component, message, fields) {
      lines.push({ level, message, fields });
    },
    text: () => lines.map((l) => `[${l.level}] ${l.message}`).join("\n"),
  };
}

/** A host in a temp dir: bin/, systemd/ and etc/ (config dir etc/oci-secretsync, not made). */
async function withHost(fn: (host: string, options: InstallOptions) => Promise<void>) {
  const host = await Deno.makeTempDir({ prefix: "secretsync-install-" });
  try {
    await Deno.mkdir(`${host}/bin`);
    await Deno.mkdir(`${host}/systemd`);
    await Deno.mkdir(`${host}/etc`);
    await fn(host, {
      prefixBin: `${host}/bin`,
      systemdDir: `${host}/systemd`,
      configDir: `${host}/etc/oci-secretsync`,
      enable: false,
      dryRun: false,
      runtime: "docker",
    });
  } finally {
    await Deno.remove(host, { recursive: true });
  }
}

async function listTree(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    found.push(path);
    if (entry.isDirectory) found.push(...await listTree(path));
  }
  return found.sort();
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of await listTree(dir)) {
    const info = await Deno.lstat(path);
    out[path] = `${info.ino}:${(info.mode ?? 0) & 0o7777}:${info.mtime?.getTime()}`;
  }
  return out;
}

const mode = async (path: string) => ((await Deno.stat(path)).mode ?? 0) & 0o7777;

Deno.test("renderUnits() gives exactly systemd/ for the default paths", async (t) => {
  const defaults = { prefixBin: "/usr/local/bin", configDir: "/etc/oci-secretsync" };
  for (const runtime of ["docker", "podman"] as const) {
    await t.step(runtime, async () => {
      const units = renderUnits(defaults, runtime);
      assert.deepEqual(Object.keys(units), [...UNIT_NAMES]);
      for (const name of UNIT_NAMES) {
        const file = runtime === "podman" && name === "oci-secretsync.service"
          ? "oci-secretsync.podman.service"
          : name;
        assert.equal(units[name], await Deno.readTextFile(`${REPO_ROOT}/systemd/${file}`), name);
      }
    });
  }
  assert.notEqual(
    renderUnits(defaults, "docker")["oci-secretsync.service"],
    renderUnits(defaults, "podman")["oci-secretsync.service"],
  );
});

Deno.test("renderUnits() points ExecStart and EnvironmentFile at another prefix and config dir, and nothing else", async () => {
  const units = renderUnits({ prefixBin: "/opt/ss/bin", configDir: "/opt/ss/etc" }, "docker");
  const original = await Deno.readTextFile(`${REPO_ROOT}/systemd/oci-secretsync.service`);
  const changed = units["oci-secretsync.service"].split("\n");
  const before = original.split("\n");
  assert.equal(changed.length, before.length);
  const differing = changed.filter((line, i) => line !== before[i]);
  assert.deepEqual(differing, [
    "EnvironmentFile=-/opt/ss/etc/secretsync.env",
    "ExecStart=/opt/ss/bin/secretsync sync --map /opt/ss/etc/map.csv --runtime docker $SECRETSYNC_ARGS",
  ]);
});

Deno.test("EXAMPLE_MAP is a valid, empty map, and each example line is valid uncommented", () => {
  const empty = parseMap(EXAMPLE_MAP, { roots: ["/run/secrets"] });
  assert.deepEqual(empty, { ok: true, entries: [] });
  const examples = EXAMPLE_MAP.split("\n").filter((l) => l.startsWith("# ocid1.")).map((l) =>
    l.slice(2)
  );
  assert.equal(examples.length, 2);
  const parsed = parseMap(examples.join("\n"), { roots: ["/run/secrets"] });
  assert.ok(parsed.ok, JSON.stringify(parsed));
  assert.equal(parsed.entries.length, 2);
});

Deno.test("EXAMPLE_ENV sets nothing, and each example's flags are valid sync flags", () => {
  const active = EXAMPLE_ENV.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  assert.deepEqual(active, []);
  const examples = EXAMPLE_ENV.split("\n").filter((l) => l.startsWith("# SECRETSYNC_ARGS="));
  assert.equal(examples.length, 2);
  for (const line of examples) {
    const words = line.slice("# SECRETSYNC_ARGS=".length).split(" ");
    parseSyncArgs(["--map", "/etc/oci-secretsync/map.csv", "--runtime", "docker", ...words]);
  }
});

Deno.test("parseInstallArgs() takes the defaults and refuses paths that would break ExecStart", () => {
  assert.deepEqual(parseInstallArgs([]), {
    prefixBin: "/usr/local/bin",
    systemdDir: "/etc/systemd/system",
    configDir: "/etc/oci-secretsync",
    enable: true,
    dryRun: false,
    runtime: "auto",
  });
  assert.deepEqual(parseInstallArgs(["--no-enable", "--dry-run", "--prefix-bin", "/opt/bin"]), {
    prefixBin: "/opt/bin",
    systemdDir: "/etc/systemd/system",
    configDir: "/etc/oci-secretsync",
    enable: false,
    dryRun: true,
    runtime: "auto",
  });
  for (const bad of ["bin", "/opt/../bin", "/opt/my bin", "/opt/%h", "/opt/bin/"]) {
    assert.throws(() => parseInstallArgs(["--prefix-bin", bad]), UsageError, bad);
  }
});

Deno.test("runInstall() from source writes units and an example map, and skips the binary", () =>
  withHost(async (host, options) => {
    const log = memoryLogger();
    assert.equal(await runInstall(options, { log, standalone: false }), 0, log.text());
    for (const name of UNIT_NAMES) {
      assert.equal(
        await Deno.readTextFile(`${host}/systemd/${name}`),
        renderUnits(options, "docker")[name],
      );
      assert.equal(await mode(`${host}/systemd/${name}`), 0o644);
    }
    assert.equal(await mode(options.configDir), 0o755);
    assert.equal(await Deno.readTextFile(`${options.configDir}/map.csv`), EXAMPLE_MAP);
    assert.equal(await mode(`${options.configDir}/map.csv`), 0o644);
    assert.equal(await Deno.readTextFile(`${options.configDir}/secretsync.env`), EXAMPLE_ENV);
    assert.deepEqual(await listTree(`${host}/bin`), [], "no binary copied from deno run");
    const warning = log.lines.find((l) => l.level === "warn");
    assert.match(warning?.message ?? "", /Running from source \(deno run\).*skipped/);
    assert.match(log.lines.at(-1)?.message ?? "", /^Installed: 6 changed, 0 already in place$/);
  }));

Deno.test("runInstall() twice changes nothing the second time", () =>
  withHost(async (host, options) => {
    const first = memoryLogger();
    assert.equal(await runInstall(options, { log: first, standalone: false }), 0);
    const before = await snapshot(host);
    const second = memoryLogger();
    assert.equal(await runInstall(options, { log: second, standalone: false }), 0);
    assert.deepEqual(await snapshot(host), before, "same inodes, modes and times");
    assert.match(second.lines.at(-1)?.message ?? "", /^Installed: 0 changed, 5 already in place$/);
  }));

Deno.test("runInstall() never overwrites a user's map, and replaces a changed unit", () =>
  withHost(async (host, options) => {
    await Deno.mkdir(options.configDir, { mode: 0o700 });
    await Deno.writeTextFile(`${options.configDir}/map.csv`, "# mine\n");
    await Deno.writeTextFile(`${host}/systemd/oci-secretsync.timer`, "[Timer]\nOnCalendar=daily\n");
    const log = memoryLogger();
    assert.equal(await runInstall(options, { log, standalone: false }), 0, log.text());
    assert.equal(await Deno.readTextFile(`${options.configDir}/map.csv`), "# mine\n");
    assert.equal(await mode(options.configDir), 0o700, "an existing directory keeps its mode");
    assert.equal(
      await Deno.readTextFile(`${host}/systemd/oci-secretsync.timer`),
      renderUnits(options, "docker")["oci-secretsync.timer"],
    );
    assert.ok(log.lines.some((l) => /Kept the existing .*map.csv/.test(l.message)));
  }));

Deno.test("runInstall() as a compiled binary copies itself, once, with mode 0755", () =>
  withHost(async (host, options) => {
    const self = `${host}/secretsync-x86_64-unknown-linux-gnu`;
    await Deno.writeFile(self, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]), { mode: 0o700 });
    const deps = { standalone: true, execPath: self };
    const log = memoryLogger();
    assert.equal(await runInstall(options, { ...deps, log }), 0, log.text());
    const target = `${options.prefixBin}/secretsync`;
    assert.deepEqual(await Deno.readFile(target), await Deno.readFile(self));
    assert.equal(await mode(target), 0o755);
    assert.deepEqual(await listTree(options.prefixBin), [target], "no temp file left");

    const inode = (await Deno.stat(target)).ino;
    const again = memoryLogger();
    assert.equal(await runInstall(options, { ...deps, log: again }), 0);
    assert.equal((await Deno.stat(target)).ino, inode);
    assert.ok(again.lines.some((l) => l.message === `${target} is up to date`));

    await Deno.writeFile(self, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 9]));
    assert.equal(await runInstall(options, { ...deps, log: memoryLogger() }), 0);
    assert.deepEqual(
      await Deno.readFile(target),
      await Deno.readFile(self),
      "a new build replaces it",
    );

    const installed = memoryLogger();
    assert.equal(
      await runInstall(options, { standalone: true, execPath: target, log: installed }),
      0,
    );
    assert.ok(installed.lines.some((l) => l.message === `${target} is this binary already`));
  }));

Deno.test("runInstall() --dry-run says what it would do and changes nothing", () =>
  withHost(async (host, options) => {
    const self = `${host}/secretsync-x86_64-unknown-linux-gnu`;
    await Deno.writeFile(self, new Uint8Array([1, 2, 3]));
    const before = await snapshot(host);
    const calls: string[][] = [];
    const log = memoryLogger();
    const code = await runInstall({ ...options, dryRun: true, enable: true }, {
      log,
      standalone: true,
      execPath: self,
      systemctl: (args) => {
        calls.push(args);
        return Promise.resolve({ code: 0, output: "" });
      },
    });
    assert.equal(code, 0, log.text());
    assert.deepEqual(await snapshot(host), before);
    assert.deepEqual(calls, [], "systemctl is not run in a dry run");
    const text = log.text();
    assert.match(text, /Would copy .* to .*\/bin\/secretsync/);
    assert.match(text, /Would write .*\/systemd\/oci-secretsync.service/);
    assert.match(text, /Would create .*\/etc\/oci-secretsync/);
    assert.match(text, /Would write an example .*map.csv/);
    assert.match(text, /Would run systemctl enable --now run-secrets.mount oci-secretsync.timer/);
    assert.match(log.lines.at(-1)?.message ?? "", /^Dry run: 7 would change, 0 already in place$/);
  }));

Deno.test("runInstall() reloads systemd and enables the mount and the timer", () =>
  withHost(async (_host, options) => {
    const calls: string[][] = [];
    const systemctl: InstallDeps["systemctl"] = (args) => {
      calls.push(args);
      return Promise.resolve({ code: 0, output: "" });
    };
    const log = memoryLogger();
    const enabled = { ...options, enable: true };
    assert.equal(await runInstall(enabled, { log, standalone: false, systemctl }), 0, log.text());
    assert.deepEqual(calls, [
      ["--version"],
      ["daemon-reload"],
      ["enable", "--now", "run-secrets.mount", "oci-secretsync.timer"],
    ]);

    const failing = memoryLogger();
    const code = await runInstall(enabled, {
      log: failing,
      standalone: false,
      systemctl: (args) =>
        Promise.resolve(
          args[0] === "--version"
            ? { code: 0, output: "systemd 252\n" }
            : { code: 1, output: "Failed to connect to bus\n" },
        ),
    });
    assert.equal(code, 1);
    assert.match(
      failing.lines.at(-1)?.message ?? "",
      /^systemctl daemon-reload failed \(exit code 1\): Failed to connect to bus$/,
    );

    const missing = memoryLogger();
    const notFound = await runInstall(enabled, {
      log: missing,
      standalone: false,
      systemctl: () => Promise.reject(new Deno.errors.NotFound("No such file or directory")),
    });
    assert.equal(notFound, 1);
    assert.match(missing.lines.at(-1)?.message ?? "", /systemctl is not on PATH .*--no-enable/);
  }));

Deno.test("issue 8 #15: install checks every directory and systemctl before it changes anything", async (t) => {
  const cases: [
    string,
    (host: string, o: InstallOptions) => Promise<Partial<InstallOptions>>,
    RegExp,
  ][] = [
    [
      "--config-dir's parent is missing",
      (host) => Promise.resolve({ configDir: `${host}/nope/oci-secretsync` }),
      /the parent of --config-dir ".*\/nope" is not an existing directory/,
    ],
    ["--config-dir is a file", async (_host, o) => {
      await Deno.writeTextFile(o.configDir, "x");
      return {};
    }, /--config-dir ".*" is not an existing directory/],
    ["--config-dir is world-writable", async (_host, o) => {
      await Deno.mkdir(o.configDir);
      await Deno.chmod(o.configDir, 0o777);
      return {};
    }, /--config-dir ".*" cannot be used: mode 0777 lets group or others write it/],
    [
      "--prefix-bin is missing",
      (host) => Promise.resolve({ prefixBin: `${host}/nobin` }),
      /--prefix-bin ".*" is not an existing directory/,
    ],
    ["--prefix-bin is owned by another user", async (host) => {
      await Deno.chown(`${host}/bin`, 4242, 4242);
      return {};
    }, /--prefix-bin ".*" cannot be used: it is owned by uid 4242/],
    ["a unit is a symlink", async (host, o) => {
      await Deno.symlink(`${host}/elsewhere`, `${o.systemdDir}/${UNIT_NAMES[1]}`);
      return {};
    }, /exists and is not a regular file/],
    ["systemctl is missing", () => Promise.resolve({ enable: true }), /systemctl is not on PATH/],
  ];
  for (const [name, spoil, pattern] of cases) {
    await t.step(name, () =>
      withHost(async (host, options) => {
        const changed = { ...options, ...(await spoil(host, options)) };
        const before = await snapshot(host);
        const log = memoryLogger();
        const code = await runInstall(changed, {
          log,
          standalone: false,
          systemctl: () => Promise.reject(new Deno.errors.NotFound("No such file or directory")),
        });
        assert.notEqual(code, 0);
        assert.match(log.text(), pattern);
        assert.deepEqual(await snapshot(host), before, "nothing changed");
      }));
  }
});

Deno.test("issue 8 #15: install refuses / and the kernel's trees for every directory", () => {
  for (const flag of ["--prefix-bin", "--systemd-dir", "--config-dir"]) {
    for (const bad of ["/", "/proc", "/sys/x", "/dev/shm"]) {
      assert.throws(
        () => parseInstallArgs([flag, bad]),
        /must not be \/, nor under/,
        `${flag} ${bad}`,
      );
    }
  }
});

Deno.test("runInstall() fails clearly when a directory is missing", () =>
  withHost(async (host, options) => {
    const log = memoryLogger();
    const code = await runInstall({ ...options, systemdDir: `${host}/nope` }, {
      log,
      standalone: false,
    });
    assert.equal(code, 1);
    assert.match(log.lines.at(-1)?.message ?? "", /--systemd-dir .* is not an existing directory/);
    assert.deepEqual(await listTree(`${host}/etc`), [], "nothing written before the failure");
  }));

Deno.test("secretsync install under the compiled flags runs systemctl from PATH, and writes the service for the runtime that answers", () =>
  withHost(async (host, options) => {
    const fakebin = `${host}/fakebin`;
    await Deno.mkdir(fakebin);
    await Deno.writeTextFile(
      `${fakebin}/systemctl`,
      `#!/bin/sh\necho "$*" >> ${host}/systemctl.log\n`,
      { mode: 0o755 },
    );
    // A docker CLI without an engine, and a podman that answers: the podman variant.
    await Deno.writeTextFile(
      `${fakebin}/docker`,
      "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n",
      { mode: 0o755 },
    );
    await Deno.writeTextFile(`${fakebin}/podman`, "#!/bin/sh\necho runc\n", { mode: 0o755 });
    const args = [
      "install",
      "--prefix-bin",
      options.prefixBin,
      "--systemd-dir",
      options.systemdDir,
      "--config-dir",
      options.configDir,
    ];
    const env = { PATH: `${fakebin}:${Deno.env.get("PATH")}` };
    const { code, stdout, stderr } = await cliCommand(args, { paths: [host], env }).output();
    assert.equal(code, 0, decode(stderr));
    assert.equal(
      await Deno.readTextFile(`${host}/systemctl.log`),
      "--version\ndaemon-reload\nenable --now run-secrets.mount oci-secretsync.timer\n",
    );
    assert.match(decode(stdout), /\[INFO\] \(install\) Ran systemctl enable --now/);
    assert.match(decode(stderr), /\[WARN\] \(install\) Running from source/);
    assert.match(decode(stdout), /Service for podman: it answers on this host/);
    for (const name of UNIT_NAMES) {
      assert.equal(
        await Deno.readTextFile(`${options.systemdDir}/${name}`),
        renderUnits(options, "podman")[name],
      );
    }
  }));

Deno.test("secretsync install under the compiled flags refuses paths outside them (exit 2)", () =>
  withHost(async (_host, options) => {
    const args = ["install", "--no-enable", "--systemd-dir", options.systemdDir];
    const { code, stdout, stderr } = await cliCommand(args).output();
    assert.equal(code, 2);
    assert.equal(decode(stdout), "");
    assert.match(
      decode(stderr),
      /Cannot write "[^"]*\/systemd\/run-secrets.mount", .*: this secretsync build may only write in /,
    );
    assert.match(decode(stderr), /README, "Permissions"/);
  }));

Deno.test("secretsync install with a bad option exits 2", async () => {
  const { code, stderr } = await cliCommand(["install", "--prefix-bin", "relative/bin"]).output();
  assert.equal(code, 2);
  assert.match(decode(stderr), /--prefix-bin "relative\/bin" must be an absolute/);
});

Deno.test("secretsync install --dry-run with the default paths works under the compiled flags (it may not read /usr/local/bin itself)", async () => {
  // Read-only: a dry run without --enable changes nothing on this host.
  if (!(await Deno.stat("/etc/systemd/system").then((i) => i.isDirectory, () => false))) return;
  const { code, stdout, stderr } = await cliCommand(["install", "--dry-run", "--no-enable"])
    .output();
  assert.equal(code, 0, decode(stderr));
  assert.match(decode(stdout), /Dry run: \d+ would change/);
});
