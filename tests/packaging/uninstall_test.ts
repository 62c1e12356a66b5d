import assert from "node:assert/strict";
import { cliCommand } from "../../scripts/permissions.ts";
import { type InstallOptions, runInstall } from "../../src/commands/install.ts";
import {
  parseUninstallArgs,
  runUninstall,
  type UninstallOptions,
} from "../../src/commands/uninstall.ts";
import { UsageError } from "../../src/commands/usage.ts";
import type { Level, Logger } from "../../src/log.ts";
import { INSTALLED_UNITS } from "../../src/units.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function memoryLogger(): Logger & { lines: { level: Level; message: string }[]; text(): string } {
  const lines: { level: Level; message: string }[] = [];
  return {
    lines,
    log(level, _component, message) {
      lines.push({ level, message });
    },
    text: () => lines.map((l) => `[${l.level}] ${l.message}`).join("\n"),
  };
}

interface Host {
  root: string;
  install: InstallOptions;
  uninstall: UninstallOptions;
  secretsDir: string;
  stateDir: string;
  calls: string[];
  systemctl(args: string[]): Promise<{ code: number; output: string }>;
}

/** A host in a temp dir, installed into (units, example map, a binary, a secret, run state). */
async function withInstalledHost(fn: (host: Host) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "secretsync-uninstall-" });
  try {
    for (const dir of ["bin", "systemd", "etc", "secrets", "state"]) {
      await Deno.mkdir(`${root}/${dir}`);
    }
    const install: InstallOptions = {
      prefixBin: `${root}/bin`,
      systemdDir: `${root}/systemd`,
      configDir: `${root}/etc/oci-secretsync`,
      enable: false,
      dryRun: false,
      runtime: "docker",
    };
    assert.equal(await runInstall(install, { log: memoryLogger(), standalone: false }), 0);
    await Deno.writeTextFile(`${root}/bin/secretsync`, "binary", { mode: 0o755 });
    await Deno.writeTextFile(`${root}/secrets/db_password`, "value", { mode: 0o600 });
    await Deno.writeTextFile(`${root}/state/state.json`, "{}");
    await Deno.writeTextFile(`${install.configDir}/map.csv`, "# the user's own map\n");
    const calls: string[] = [];
    await fn({
      root,
      install,
      uninstall: {
        prefixBin: install.prefixBin,
        systemdDir: install.systemdDir,
        configDir: install.configDir,
        systemctl: true,
        purgeSecrets: false,
        dryRun: false,
      },
      secretsDir: `${root}/secrets`,
      stateDir: `${root}/state`,
      calls,
      systemctl: (args) => {
        calls.push(args.join(" "));
        return Promise.resolve({ code: 0, output: "" });
      },
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("parseUninstallArgs() takes the defaults and the flags", () => {
  assert.deepEqual(parseUninstallArgs([]), {
    prefixBin: "/usr/local/bin",
    systemdDir: "/etc/systemd/system",
    configDir: "/etc/oci-secretsync",
    systemctl: true,
    purgeSecrets: false,
    dryRun: false,
  });
  assert.deepEqual(parseUninstallArgs(["--dry-run", "--purge-secrets", "--no-systemctl"]), {
    prefixBin: "/usr/local/bin",
    systemdDir: "/etc/systemd/system",
    configDir: "/etc/oci-secretsync",
    systemctl: false,
    purgeSecrets: true,
    dryRun: true,
  });
  assert.throws(() => parseUninstallArgs(["--systemd-dir", "rel"]), UsageError);
});

Deno.test("runUninstall() disables and removes units and binary, keeps the map, env file and secrets", () =>
  withInstalledHost(async (host) => {
    const log = memoryLogger();
    const { secretsDir, stateDir, systemctl } = host;
    const code = await runUninstall(host.uninstall, { log, systemctl, secretsDir, stateDir });
    assert.equal(code, 0, log.text());
    assert.deepEqual(host.calls, [
      "disable --now oci-secretsync.timer",
      "disable run-secrets.mount", // not --now: that would unmount the secrets
      "daemon-reload",
    ]);
    for (const name of INSTALLED_UNITS) {
      assert.equal(await exists(`${host.install.systemdDir}/${name}`), false, name);
    }
    assert.equal(await exists(`${host.install.prefixBin}/secretsync`), false);
    assert.equal(
      await Deno.readTextFile(`${host.install.configDir}/map.csv`),
      "# the user's own map\n",
    );
    assert.ok(await exists(`${host.install.configDir}/secretsync.env`));
    assert.equal(await Deno.readTextFile(`${secretsDir}/db_password`), "value");
    assert.ok(await exists(`${stateDir}/state.json`));
    assert.match(log.text(), /Kept .*secrets .*--purge-secrets/);
    assert.match(log.lines.at(-1)?.message ?? "", /^Uninstalled: 4 removed$/);

    const again = memoryLogger();
    host.calls.length = 0;
    assert.equal(
      await runUninstall(host.uninstall, { log: again, systemctl, secretsDir, stateDir }),
      0,
    );
    assert.deepEqual(host.calls, [], "nothing left to disable");
    assert.match(again.lines.at(-1)?.message ?? "", /^Nothing to uninstall$/);
  }));

Deno.test("runUninstall() --purge-secrets unmounts the tmpfs and removes secrets and state", () =>
  withInstalledHost(async (host) => {
    const log = memoryLogger();
    const { secretsDir, stateDir, systemctl } = host;
    const options = { ...host.uninstall, purgeSecrets: true };
    assert.equal(await runUninstall(options, { log, systemctl, secretsDir, stateDir }), 0);
    assert.deepEqual(host.calls, [
      "disable --now oci-secretsync.timer",
      "disable --now run-secrets.mount",
      "daemon-reload",
    ]);
    assert.equal(await exists(secretsDir), false);
    assert.equal(await exists(stateDir), false);
    assert.ok(await exists(`${host.install.configDir}/map.csv`), "the map stays even so");
  }));

Deno.test("runUninstall() --dry-run says what it would do and changes nothing", () =>
  withInstalledHost(async (host) => {
    const log = memoryLogger();
    const { secretsDir, stateDir, systemctl } = host;
    const options = { ...host.uninstall, dryRun: true, purgeSecrets: true };
    assert.equal(await runUninstall(options, { log, systemctl, secretsDir, stateDir }), 0);
    assert.deepEqual(host.calls, []);
    assert.match(log.text(), /Would run systemctl disable --now oci-secretsync.timer/);
    assert.match(log.text(), /Would remove .*oci-secretsync.service/);
    for (const name of INSTALLED_UNITS) {
      assert.ok(await exists(`${host.install.systemdDir}/${name}`), name);
    }
    assert.ok(await exists(`${host.install.prefixBin}/secretsync`));
    assert.equal(await Deno.readTextFile(`${secretsDir}/db_password`), "value");
  }));

Deno.test("runUninstall() stops before removing anything when systemctl fails", () =>
  withInstalledHost(async (host) => {
    const log = memoryLogger();
    const code = await runUninstall(host.uninstall, {
      log,
      secretsDir: host.secretsDir,
      stateDir: host.stateDir,
      systemctl: () => Promise.resolve({ code: 1, output: "Access denied" }),
    });
    assert.equal(code, 1);
    assert.match(log.text(), /systemctl disable --now oci-secretsync.timer failed .*Access denied/);
    for (const name of INSTALLED_UNITS) {
      assert.ok(await exists(`${host.install.systemdDir}/${name}`), name);
    }
  }));

Deno.test("secretsync uninstall under the compiled flags: systemctl from PATH, exit 2 outside its paths", () =>
  withInstalledHost(async (host) => {
    const fakebin = `${host.root}/fakebin`;
    await Deno.mkdir(fakebin);
    await Deno.writeTextFile(
      `${fakebin}/systemctl`,
      `#!/bin/sh\necho "$*" >> ${host.root}/systemctl.log\n`,
      { mode: 0o755 },
    );
    const args = [
      "uninstall",
      "--prefix-bin",
      host.install.prefixBin,
      "--systemd-dir",
      host.install.systemdDir,
      "--config-dir",
      host.install.configDir,
    ];
    const env = { PATH: `${fakebin}:${Deno.env.get("PATH")}` };
    const outside = await cliCommand(args).output();
    assert.equal(outside.code, 2);
    assert.match(decode(outside.stderr), /this secretsync build may only write in/);
    assert.ok(await exists(`${host.install.systemdDir}/oci-secretsync.service`));

    const { code, stdout, stderr } = await cliCommand(args, { paths: [host.root], env }).output();
    assert.equal(code, 0, decode(stderr));
    assert.equal(
      await Deno.readTextFile(`${host.root}/systemctl.log`),
      "disable --now oci-secretsync.timer\ndisable run-secrets.mount\ndaemon-reload\n",
    );
    assert.match(decode(stdout), /Uninstalled: 4 removed/);
  }));
