/**
 * `secretsync sync` reloading a real podman container: a busybox "secret reader" whose HUP trap
 * prints the sha256 of the file it sees, so the test knows what the container read and how
 * many signals arrived, without any value in the logs.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import {
  containerLogs,
  ensureBusyboxImage,
  readerEvents,
  removeContainer,
  runContainer,
  secretReaderCmd,
  sha256Hex,
  waitForLog,
} from "../containers/podman.ts";
import {
  assertNoLeak,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
} from "./harness.ts";

const TOKEN = "ocid1.vaultsecret.oc1.iad.amaaaaaatoken";
const EXTRA = "ocid1.vaultsecret.oc1.iad.amaaaaaaextra";

async function hups(name: string): Promise<string[]> {
  return readerEvents(await containerLogs(name)).filter((e) => e.event === "HUP").map((e) =>
    e.digest
  );
}

Deno.test("a changed secret signals its container once per run, and it reads the new value", async () => {
  await ensureBusyboxImage();
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  let name: string | undefined;
  try {
    const values = [secretValue("token1"), secretValue("extra1"), secretValue("token2")];
    oci.setSecret(TOKEN, values[0]);
    oci.setSecret(EXTRA, values[1]);
    name = await runContainer({
      name: "secretsync-reader",
      mounts: [{ host: ws.root, container: "/run/secrets", ro: true }],
      cmd: secretReaderCmd("/run/secrets/token"),
    });
    await waitForLog(name, /^READY /m);
    await ws.writeMap([
      `${TOKEN},${ws.root}/token,0644,${name},HUP`,
      `${EXTRA},${ws.root}/extra,0644,${name},SIGHUP`,
    ]);
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman"];

    const first = await runCli(args);
    assert.equal(first.code, 3, first.stderr);
    assert.match(first.stdout, new RegExp(`Reloaded ${name} with signal HUP`));
    await waitForLog(name, /^HUP /m);
    assert.deepEqual(await hups(name), [await sha256Hex(values[0])], "two changed files, one HUP");

    const second = await runCli(args);
    assert.equal(second.code, 0, second.stderr);
    await new Promise((r) => setTimeout(r, 500)); // give a wrong signal time to show up
    assert.equal((await hups(name)).length, 1, "an unchanged run signals nothing");

    oci.setSecret(TOKEN, values[2]);
    const third = await runCli(args);
    assert.equal(third.code, 3, third.stderr);
    await waitForLog(name, /^HUP /m, { count: 2 });
    assert.deepEqual(await hups(name), [await sha256Hex(values[0]), await sha256Hex(values[2])]);
    assertNoLeak(
      values,
      first.stdout,
      first.stderr,
      second.stdout,
      third.stdout,
      third.stderr,
      await containerLogs(name),
    );
  } finally {
    if (name) await removeContainer(name);
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("a container that cannot be signalled fails the run, and the next run retries it", async () => {
  await ensureBusyboxImage();
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  let name: string | undefined;
  try {
    const value = secretValue("token");
    oci.setSecret(TOKEN, value);
    const planned = `secretsync-late-${crypto.randomUUID().slice(0, 8)}`;
    await ws.writeMap([`${TOKEN},${ws.root}/token,0644,${planned},HUP`]);
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman"];

    const missing = await runCli(args);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(
      missing.stderr,
      new RegExp(`Cannot reload ${planned} with signal HUP: .*will retry next run`),
    );
    assert.equal(
      await Deno.readTextFile(`${ws.root}/token`),
      value,
      "the file is written all the same",
    );

    // The file is now unchanged, but the reload is still owed.
    name = await runContainer({
      name: planned,
      exactName: true,
      mounts: [{ host: ws.root, container: "/run/secrets", ro: true }],
      cmd: secretReaderCmd("/run/secrets/token"),
    });
    await waitForLog(name, /^READY /m);
    const retried = await runCli(args);
    assert.equal(retried.code, 3, retried.stderr);
    await waitForLog(name, /^HUP /m);
    assert.deepEqual(await hups(name), [await sha256Hex(value)]);

    const settled = await runCli(args);
    assert.equal(settled.code, 0, settled.stderr);
    assert.equal((await hups(name)).length, 1, "once reloaded, it is not owed any more");
  } finally {
    if (name) await removeContainer(name);
    await ws.cleanup();
    await oci.close();
  }
});
