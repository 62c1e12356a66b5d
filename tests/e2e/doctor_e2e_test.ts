/**
 * `secretsync doctor` against real podman containers and the OCI stand-in: a container that
 * mounts the secrets directory passes; one that bind-mounts a single file fails, and the test
 * shows why that matters (after a rotation it still reads the old file). Auth is checked by a
 * real fetch whose version is printed, never its value.
 */
import assert from "node:assert/strict";
import { cliCommand } from "../../scripts/permissions.ts";
import {
  ensureBusyboxImage,
  podman,
  removeContainer,
  runContainer,
  sha256Hex,
} from "../containers/podman.ts";
import { startOciStandIn } from "../oci/standin.ts";
import {
  assertNoLeak,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
} from "./harness.ts";

const DIR_SECRET = "ocid1.vaultsecret.oc1.iad.amaaaaaadoctordir";
const FILE_SECRET = "ocid1.vaultsecret.oc1.iad.amaaaaaadoctorfile";

Deno.test("doctor: directory mount ok, single-file mount fails, auth shows a version only", async () => {
  await ensureBusyboxImage();
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  // A second root on a tmpfs of its own, so doctor has one of each to judge (Deno refuses
  // /dev/shm without --allow-all, so the test mounts one; the suite runs as root).
  const shmRoot = `${ws.dir}/tmpfs`;
  await Deno.mkdir(shmRoot, { mode: 0o700 });
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", shmRoot],
    stderr: "piped",
  }).output();
  assert.ok(
    mounted.success,
    `mount a tmpfs (needs root): ${new TextDecoder().decode(mounted.stderr)}`,
  );
  const containers: string[] = [];
  try {
    const values = [secretValue("dir"), secretValue("file"), secretValue("file2")];
    oci.setSecret(DIR_SECRET, values[0]);
    oci.setSecret(FILE_SECRET, values[1]);
    const dirName = `secretsync-doctor-dir-${crypto.randomUUID().slice(0, 8)}`;
    const fileName = `secretsync-doctor-file-${crypto.randomUUID().slice(0, 8)}`;
    await ws.writeMap([
      `${DIR_SECRET},${ws.root}/app/token,0644,${dirName},HUP`,
      `${FILE_SECRET},${ws.root}/single,0644,${fileName},HUP`,
    ]);
    const sync = [
      "sync",
      ...ws.args(),
      ...instancePrincipalArgs(oci),
      "--runtime",
      "podman",
      "--root",
      shmRoot,
    ];
    const cliIn = async (args: string[]) => {
      const output = await cliCommand(args, { paths: [ws.dir] }).output();
      const decoder = new TextDecoder();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    };
    // The files must exist before a single-file bind mount can be made; reloads fail here
    // because the containers do not exist yet, which is fine for this set-up.
    const first = await cliIn(sync);
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stderr, /Cannot reload/);
    containers.push(
      await runContainer({
        name: dirName,
        exactName: true,
        mounts: [{ host: `${ws.root}/app`, container: "/run/secrets", ro: true }],
        cmd: ["sleep", "600"],
      }),
      await runContainer({
        name: fileName,
        exactName: true,
        flags: ["-v", `${ws.root}/single:/run/secrets/single:ro`],
        cmd: ["sleep", "600"],
      }),
    );

    const doctor = (extra: string[] = []) =>
      cliIn([
        "doctor",
        ...ws.args(),
        ...instancePrincipalArgs(oci),
        "--runtime",
        "podman",
        "--root",
        shmRoot,
        ...extra,
      ]);
    const result = await doctor();
    const { stdout, stderr } = result;
    assert.equal(result.code, 1, stdout + stderr);
    assert.match(
      stdout,
      new RegExp(`^ok {3}map ${ws.map}: valid: 2 files, 2 secrets, 2 reload targets$`, "m"),
    );
    assert.match(stdout, /^ok {3}map owner: /m);
    assert.match(
      stdout,
      new RegExp(`^WARN root ${ws.root}: on ext4 .*reach the disk — mount a tmpfs`, "m"),
    );
    assert.match(stdout, new RegExp(`^ok {3}root ${shmRoot}: tmpfs`, "m"));
    assert.match(stdout, /^ok {3}runtime: podman answers$/m);
    assert.match(stdout, new RegExp(`^ok {3}container ${dirName}: mounts the directory`, "m"));
    assert.match(
      stdout,
      new RegExp(
        `^FAIL container ${fileName}: mounts ${ws.root}/single \\(at /run/secrets/single\\) as a single file: it will never see a new version.* — mount the directory instead`,
        "m",
      ),
    );
    assert.match(
      stdout,
      new RegExp(
        `^ok {3}auth instance_principal: fetched ${DIR_SECRET} \\(CURRENT\\): version 1$`,
        "m",
      ),
    );
    assert.match(stdout, /^(WARN|FAIL|ok {2}) (timer oci-secretsync.timer|schedule): /m);

    // Why the single-file mount fails: after a rotation it still reads the old file.
    oci.setSecret(FILE_SECRET, values[2]);
    await cliIn(sync);
    const seen = await podman(["exec", fileName, "sha256sum", "/run/secrets/single"]);
    assert.equal(seen.stdout.split(" ")[0], await sha256Hex(values[1]), "the old inode stays");
    assert.equal(
      await Deno.readTextFile(`${ws.root}/single`),
      values[2],
      "the host has the new one",
    );

    // --json: one object per check.
    const json = await doctor(["--json"]);
    const checks = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(checks.some((c) => c.level === "fail" && c.subject === `container ${fileName}`));

    // Auth that fails is a failed check, named.
    oci.fault({ secretId: DIR_SECRET }, { status: 404 });
    const noAuth = await doctor();
    const noAuthOut = noAuth.stdout;
    assert.match(
      noAuthOut,
      new RegExp(`^FAIL auth instance_principal: cannot fetch ${DIR_SECRET}: .*404`, "m"),
    );
    assertNoLeak(values, first.stdout, first.stderr, stdout, stderr, json.stdout, noAuthOut);
  } finally {
    for (const name of containers) await removeContainer(name);
    await new Deno.Command("umount", { args: [shmRoot] }).output();
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("doctor: a missing container, unreachable auth and a map others can write fail; exit 1", async () => {
  const ws = await makeWorkspace();
  try {
    await ws.writeMap([
      `ocid1.vaultsecret.oc1.iad.amaaaaaadoctorx,${ws.root}/x,0600,secretsync-no-such-container-${
        crypto.randomUUID().slice(0, 8)
      },HUP`,
    ]);
    // No OCI needed for what is asserted; the auth check goes to a closed loopback port.
    const doctor = () =>
      runCli([
        "doctor",
        ...ws.args(),
        "--runtime",
        "podman",
        "--imds-url",
        "http://127.0.0.1:9/opc/v2/",
        "--auth-endpoint",
        "http://127.0.0.1:9",
        "--endpoint",
        "http://127.0.0.1:9",
        "--timeout",
        "5",
      ]);
    const result = await doctor();
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /^FAIL container secretsync-no-such-container-\S+: no such container — start it/m,
    );
    assert.match(result.stdout, /^FAIL auth instance_principal: cannot fetch/m);

    await Deno.chmod(ws.map, 0o666);
    const writable = await doctor();
    assert.equal(writable.code, 1);
    assert.match(writable.stdout, /^FAIL map \S+: .*group or others/m);
    assert.match(
      writable.stdout,
      /^FAIL map owner: .* mode 0666 lets group or others write it — chmod go-w/m,
    );
  } finally {
    await ws.cleanup();
  }
});

Deno.test("doctor: auth fetches a map line by name as sync would, and shows its version", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const value = secretValue("named");
    oci.setSecret("ocid1.vaultsecret.oc1.iad.amaaaaaadoctornamed", value, { name: "db-password" });
    oci.setSecret("ocid1.vaultsecret.oc1.iad.amaaaaaadoctornamed", secretValue("named2"), {
      name: "db-password",
    });
    await ws.writeMap([`name:db-password@${oci.vaultId},${ws.root}/db,0600,,`]);
    const result = await runCli(["doctor", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.match(
      result.stdout,
      new RegExp(
        `^ok {3}auth instance_principal: fetched name:db-password@${oci.vaultId}.*: version 2$`,
        "m",
      ),
      result.stdout + result.stderr,
    );
    assertNoLeak([value], result.stdout, result.stderr);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
