/**
 * A run killed after writing a file but before reloading its container must not lose the
 * reload: the next run finds the content unchanged, so only the state file remembers it.
 *
 * A `podman` stand-in first on PATH records every call and, while told to, hangs in
 * `podman kill`, which is the moment the test kills secretsync with SIGKILL.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { cli, instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaaowedreload";

async function waitFor(path: string, timeoutMs = 20_000): Promise<void> {
  for (const until = Date.now() + timeoutMs; Date.now() < until;) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`${path} did not appear`);
}

Deno.test("kill -9 between a write and its reload: the next run still reloads", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const bin = `${ws.dir}/bin`;
  const calls = `${ws.dir}/podman-calls`;
  const hang = `${ws.dir}/hang`;
  const hanging = `${ws.dir}/hanging.pid`;
  try {
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      `${bin}/podman`,
      `#!/bin/sh
echo "$*" >> ${calls}
if [ "$1" = kill ] && [ -e ${hang} ]; then echo $$ > ${hanging}; exec sleep 60; fi
exit 0
`,
      { mode: 0o755 },
    );
    const env = { PATH: `${bin}:${Deno.env.get("PATH")}` };
    const value = secretValue("owed");
    oci.setSecret(ID, value);
    await ws.writeMap([`${ID},${ws.root}/token,0600,web,HUP`]);
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman"];

    await Deno.writeTextFile(hang, "");
    const child = cli(args, { stdout: "null", stderr: "null", env }).spawn();
    await waitFor(hanging);
    child.kill("SIGKILL");
    await child.status;
    await new Deno.Command("kill", { args: ["-9", (await Deno.readTextFile(hanging)).trim()] })
      .output();

    assert.equal(await Deno.readTextFile(`${ws.root}/token`), value, "the file was written");
    const state = JSON.parse(await Deno.readTextFile(`${ws.stateDir}/state.json`));
    assert.deepEqual(state.pendingReloads, [`${ws.root}/token`], "the reload is owed");

    await Deno.remove(hang);
    const next = await runCli(args, { env });
    assert.equal(next.code, 3, next.stderr);
    assert.match(next.stdout, /Reloaded web with signal HUP/);
    assert.doesNotMatch(next.stdout, /Updated/, "the content was already there");
    const kills = (await Deno.readTextFile(calls)).split("\n").filter((l) => l.startsWith("kill"));
    assert.deepEqual(kills, ["kill --signal=HUP -- web", "kill --signal=HUP -- web"]);

    const settled = await runCli(args, { env });
    assert.equal(settled.code, 0, settled.stderr);
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(`${ws.stateDir}/state.json`)).pendingReloads,
      [],
    );
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
