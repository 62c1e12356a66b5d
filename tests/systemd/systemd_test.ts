/**
 * secretsync under a real systemd (Debian 12's, PID 1 of a podman container) and the real
 * docker CLI (against podman's Docker-compatible API):
 *
 * `secretsync install` picks the docker variant and enables the units; the mount unit mounts
 * the tmpfs; the timer fires the hardened service, which fetches from the OCI stand-in on
 * 127.0.0.1 (flags from /etc/oci-secretsync/secretsync.env), writes (one file owned by another
 * user), signals one host container and execs in another through the docker CLI, reloads a
 * `unit:` target through the real systemctl, and exits 3, which systemd counts as success.
 * A second run with a secret that does not exist fails, and `journalctl -p err` shows exactly
 * that entry. `uninstall` then removes the units but leaves the secrets mounted.
 *
 * The containers the service reloads run on this host, not inside the systemd container, so
 * they do not see its tmpfs: the test checks what they received (a signal, a command), and the
 * files by their hashes inside the systemd container.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import {
  containerLogs,
  ensureBusyboxImage,
  podman,
  readerEvents,
  removeContainer,
  runContainer,
  secretReaderCmd,
  sha256Hex,
  waitForLog,
} from "../containers/podman.ts";
import { startDockerApi, startSystemdHost, type SystemdHost } from "../containers/systemd.ts";
import { instancePrincipalArgs, secretValue } from "../e2e/harness.ts";

const TOKEN = "ocid1.vaultsecret.oc1.iad.amaaaaaasystemdtoken";
const EXEC = "ocid1.vaultsecret.oc1.iad.amaaaaaasystemdexec";
const DEMO = "ocid1.vaultsecret.oc1.iad.amaaaaaasystemddemo";
const MISSING = "ocid1.vaultsecret.oc1.iad.amaaaaaasystemdmissing";
const SERVICE = "oci-secretsync.service";

/** A unit whose ExecReload leaves a line in /run/demo-reloads: a `unit:` target. */
const DEMO_UNIT = `[Unit]
Description=secretsync test: a service reloaded through systemctl

[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/sh -c 'echo reload >> /run/demo-reloads'
`;

/** A user recipe whose reload is a command: exec in a container, systemctl reload for a unit. */
const MARKER_RECIPE = JSON.stringify({
  name: "marker",
  description: "test: leaves /tmp/exec-marker in the container",
  images: ["localhost/secretsync-busybox:test"],
  reload: { exec: ["touch", "/tmp/exec-marker"] },
});

/** Waits until the oneshot service has finished a run started after `after` (its InvocationID). */
async function waitForRun(
  host: SystemdHost,
  after: string,
  timeoutMs = 90_000,
): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const props = await host.show(SERVICE, [
      "ActiveState",
      "Result",
      "ExecMainStatus",
      "InvocationID",
      "ExecMainExitTimestampMonotonic",
    ]);
    const finished = props.InvocationID !== "" && props.InvocationID !== after &&
      props.ActiveState !== "activating" && props.ExecMainExitTimestampMonotonic !== "0";
    if (finished) return props;
    if (Date.now() > deadline) {
      const journal = await host.exec(["journalctl", "--no-pager", "-n", "50"]);
      throw new Error(`the service did not run: ${JSON.stringify(props)}\n${journal.stdout}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function journal(host: SystemdHost, ...args: string[]): Promise<string> {
  const out = await host.exec(["journalctl", "--no-pager", "-o", "cat", "-u", SERVICE, ...args]);
  return out.stdout;
}

async function fileSha(host: SystemdHost, path: string): Promise<string> {
  return (await host.exec(["sha256sum", path])).stdout.split(" ")[0];
}

Deno.test("under a real systemd: install, mount, timer, hardened service with the docker CLI, journald priorities, uninstall", async () => {
  const started = performance.now();
  await ensureBusyboxImage();
  const oci = await startOciStandIn();
  const api = await startDockerApi();
  const cleanup: (() => Promise<unknown>)[] = [() => api.stop(), () => oci.close()];
  try {
    const values = [secretValue("token"), secretValue("exec"), secretValue("demo")];
    oci.setSecret(TOKEN, values[0]);
    oci.setSecret(EXEC, values[1]);
    oci.setSecret(DEMO, values[2]);

    // Two containers on this host, reached through the Docker API from inside the service.
    const reader = await runContainer({ name: "secretsync-sd-reader", cmd: secretReaderCmd() });
    cleanup.unshift(() => removeContainer(reader));
    const execTarget = await runContainer({ name: "secretsync-sd-exec", cmd: secretReaderCmd() });
    cleanup.unshift(() => removeContainer(execTarget));
    await waitForLog(reader, /^READY /m);

    const host = await startSystemdHost({ dockerSocket: api.socket });
    cleanup.unshift(() => host.stop());
    const booted = performance.now();

    // install: the docker CLI answers (through the socket), so the docker variant.
    const install = await host.exec(["secretsync", "install"], { timeoutMs: 120_000 });
    assert.equal(install.code, 0, install.stderr + install.stdout);
    assert.match(install.stdout, /Service for docker: it answers on this host/);
    assert.match(
      (await host.exec(["cat", "/etc/systemd/system/oci-secretsync.service"])).stdout,
      /--runtime docker \$SECRETSYNC_ARGS\n[\s\S]*CapabilityBoundingSet=CAP_CHOWN/,
    );
    assert.equal(
      (await host.exec(["findmnt", "-n", "-o", "FSTYPE", "/run/secrets"])).stdout.trim(),
      "tmpfs",
      "the mount unit mounted a tmpfs",
    );
    assert.equal((await host.show("oci-secretsync.timer", ["ActiveState"])).ActiveState, "active");

    // Configuration an operator would write: the map, the flags, a recipe, a unit to reload.
    await host.writeFile(
      "/etc/oci-secretsync/map.csv",
      [
        `${TOKEN},/run/secrets/token,0600,${reader},HUP`,
        `${EXEC},/run/secrets/exec,0600,${execTarget},marker`,
        `${DEMO},/run/secrets/demo/key,0640,unit:secretsync-demo.service,marker,1000:1000`,
        "",
      ].join("\n"),
    );
    await host.writeFile(
      "/etc/oci-secretsync/secretsync.env",
      `SECRETSYNC_ARGS=${instancePrincipalArgs(oci).join(" ")}\n`,
    );
    await host.exec(["mkdir", "-m", "0755", "-p", "/etc/oci-secretsync/recipes.d"]);
    await host.writeFile("/etc/oci-secretsync/recipes.d/marker.json", MARKER_RECIPE);
    await host.writeFile("/etc/systemd/system/secretsync-demo.service", DEMO_UNIT);
    // The timer's first tick is 2 minutes after boot; the test moves it to 1 s from now.
    await host.exec(["mkdir", "-p", "/etc/systemd/system/oci-secretsync.timer.d"]);
    await host.writeFile(
      "/etc/systemd/system/oci-secretsync.timer.d/soon.conf",
      "[Timer]\nOnBootSec=\nOnActiveSec=1s\nRandomizedDelaySec=0\n",
    );
    await host.exec(["systemctl", "daemon-reload"]);
    assert.equal((await host.exec(["systemctl", "start", "secretsync-demo.service"])).code, 0);
    const before = (await host.show(SERVICE, ["InvocationID"])).InvocationID;
    assert.equal((await host.exec(["systemctl", "restart", "oci-secretsync.timer"])).code, 0);

    // The timer fires the service; it writes, reloads and exits 3: a success for systemd.
    const first = await waitForRun(host, before);
    const firstRun = performance.now();
    const firstLog = await journal(host);
    assert.equal(first.ExecMainStatus, "3", firstLog);
    assert.equal(first.Result, "success", firstLog);
    assert.equal(await fileSha(host, "/run/secrets/token"), await sha256Hex(values[0]));
    assert.equal(await fileSha(host, "/run/secrets/exec"), await sha256Hex(values[1]));
    assert.equal(await fileSha(host, "/run/secrets/demo/key"), await sha256Hex(values[2]));
    assert.equal(
      (await host.exec(["stat", "-c", "%u:%g %a", "/run/secrets/demo/key"])).stdout.trim(),
      "1000:1000 640",
      "chown under the sandbox (CAP_CHOWN, @chown)",
    );
    // docker kill --signal HUP, through the socket, reached the host container's PID 1.
    await waitForLog(reader, /^HUP /m);
    assert.equal(
      readerEvents(await containerLogs(reader)).filter((e) => e.event === "HUP").length,
      1,
    );
    // docker exec ran the recipe's command in the other container.
    const marker = await podman(["exec", execTarget, "test", "-f", "/tmp/exec-marker"], {
      check: false,
    });
    assert.equal(marker.code, 0, "docker exec left /tmp/exec-marker");
    // systemctl reload through the real systemd ran the unit's ExecReload.
    assert.equal((await host.exec(["cat", "/run/demo-reloads"])).stdout, "reload\n");
    assert.match(firstLog, new RegExp(`Reloaded ${reader} with signal HUP`));
    assert.doesNotMatch(firstLog, /<\d>/, "journald took the priority prefixes off");

    // A second run with a secret the vault does not have: exit 1, a failed unit, and
    // `journalctl -p err` holds that entry's line and none of the info lines.
    await host.writeFile(
      "/etc/oci-secretsync/map.csv",
      [
        `${TOKEN},/run/secrets/token,0600,${reader},HUP`,
        `${MISSING},/run/secrets/missing,0600,,`,
        "",
      ].join("\n"),
    );
    const beforeSecond = (await host.show(SERVICE, ["InvocationID"])).InvocationID;
    await host.exec(["systemctl", "start", SERVICE], { timeoutMs: 120_000 });
    const second = await waitForRun(host, beforeSecond);
    assert.equal(second.ExecMainStatus, "1");
    assert.equal(second.Result, "exit-code");
    const errors = await journal(host, "-p", "err");
    assert.match(errors, new RegExp(`\\[ERROR\\] \\(fetch\\) Cannot fetch ${MISSING}`));
    assert.doesNotMatch(errors, /\[INFO\]/, "info lines are not errors");
    assert.match(await journal(host), /\[INFO\] \(write\)/, "info lines are in the journal");
    assert.equal((await host.exec(["test", "-e", "/run/secrets/missing"])).code, 1);

    // What the service left for `status`: the run state in its RuntimeDirectory.
    const state = JSON.parse(
      (await host.exec(["cat", "/run/oci-secretsync/state.json"])).stdout,
    );
    assert.equal(state.lastRun?.code, 1, JSON.stringify(state));
    assert.equal(state.lastRun?.outcome, "failed");
    assert.ok(state.entries?.["/run/secrets/missing"]?.error, "the failing entry's reason");
    assert.equal(state.entries?.["/run/secrets/token"]?.error, undefined);
    // `secretsync status` reads it, where that command exists (issue 11, another branch).
    if (/^\s+status\b/m.test((await host.exec(["secretsync", "--help"])).stdout)) {
      const status = await host.exec(["secretsync", "status"]);
      assert.notEqual(status.code, 0, "the last run failed: status says so in its exit code");
      assert.match(status.stdout + status.stderr, /\/run\/secrets\/missing/);
    }

    // No secret value anywhere in the journal.
    const everything = (await host.exec(["journalctl", "--no-pager", "-o", "cat"])).stdout;
    for (const value of values) assert.ok(!everything.includes(value), "a value leaked");

    // uninstall under the real systemd: units and timer gone, secrets still mounted.
    const uninstall = await host.exec(["secretsync", "uninstall"], { timeoutMs: 120_000 });
    assert.equal(uninstall.code, 0, uninstall.stderr + uninstall.stdout);
    assert.equal(
      (await host.exec(["test", "-e", "/etc/systemd/system/oci-secretsync.timer"])).code,
      1,
    );
    assert.equal((await host.show("oci-secretsync.timer", ["LoadState"])).LoadState, "not-found");
    assert.equal(await fileSha(host, "/run/secrets/token"), await sha256Hex(values[0]));
    assert.equal(
      (await host.exec(["cat", "/etc/oci-secretsync/map.csv"])).code,
      0,
      "the map stays",
    );
    const done = performance.now();
    console.log(
      `systemd test: boot ${Math.round(booted - started)} ms, install to first run ` +
        `${Math.round(firstRun - booted)} ms, total ${Math.round(done - started)} ms`,
    );
  } finally {
    for (const step of cleanup) await step().catch(() => {});
  }
});

Deno.test("under a real systemd: the podman service variant signals and execs podman containers", async () => {
  const started = performance.now();
  await ensureBusyboxImage();
  const oci = await startOciStandIn();
  const cleanup: (() => Promise<unknown>)[] = [() => oci.close()];
  try {
    const values = [secretValue("token"), secretValue("exec")];
    oci.setSecret(TOKEN, values[0]);
    oci.setSecret(EXEC, values[1]);
    const host = await startSystemdHost({ podmanImages: ["localhost/secretsync-busybox:test"] });
    cleanup.unshift(() => host.stop());

    // No docker here; podman answers: the podman variant.
    const install = await host.exec(["secretsync", "install"], { timeoutMs: 120_000 });
    assert.equal(install.code, 0, install.stderr + install.stdout);
    assert.match(install.stdout, /Service for podman: it answers on this host/);
    assert.match(
      (await host.exec(["cat", "/etc/systemd/system/oci-secretsync.service"])).stdout,
      /--runtime podman \$SECRETSYNC_ARGS\n[\s\S]*PrivateDevices=yes/,
    );

    // Two containers of the systemd host's own podman, reading the tmpfs the mount unit made.
    for (const [name, file] of [["reader", "token"], ["exect", "exec"]]) {
      const run = await host.exec([
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--cgroups=disabled",
        "-v",
        "/run/secrets:/run/secrets:ro",
        "localhost/secretsync-busybox:test",
        ...secretReaderCmd(`/run/secrets/${file}`),
      ]);
      assert.equal(run.code, 0, run.stderr);
    }
    await host.writeFile(
      "/etc/oci-secretsync/map.csv",
      `${TOKEN},/run/secrets/token,0644,reader,HUP\n${EXEC},/run/secrets/exec,0644,exect,marker\n`,
    );
    await host.writeFile(
      "/etc/oci-secretsync/secretsync.env",
      `SECRETSYNC_ARGS=${instancePrincipalArgs(oci).join(" ")}\n`,
    );
    await host.exec(["mkdir", "-m", "0755", "-p", "/etc/oci-secretsync/recipes.d"]);
    await host.writeFile("/etc/oci-secretsync/recipes.d/marker.json", MARKER_RECIPE);

    const before = (await host.show(SERVICE, ["InvocationID"])).InvocationID;
    await host.exec(["systemctl", "start", SERVICE], { timeoutMs: 120_000 });
    const run = await waitForRun(host, before);
    const log = await journal(host);
    assert.equal(run.ExecMainStatus, "3", log);
    assert.equal(run.Result, "success", log);
    // podman kill under the sandbox: the reader saw the new file when the HUP came.
    const logs = (await host.exec(["podman", "logs", "reader"])).stdout;
    const hups = readerEvents(logs).filter((e) => e.event === "HUP").map((e) => e.digest);
    assert.deepEqual(hups, [await sha256Hex(values[0])], logs);
    // podman exec under the sandbox (setns into the container's namespaces).
    const marker = await host.exec(["podman", "exec", "exect", "test", "-f", "/tmp/exec-marker"]);
    assert.equal(marker.code, 0, log);
    for (const value of values) assert.ok(!log.includes(value), "a value leaked");
    console.log(`podman variant test: ${Math.round(performance.now() - started)} ms`);
  } finally {
    for (const step of cleanup) await step().catch(() => {});
  }
});
