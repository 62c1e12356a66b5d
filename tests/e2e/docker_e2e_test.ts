/**
 * `secretsync sync --runtime docker` for real: the docker CLI (client only on this machine)
 * against podman's Docker-compatible API (`podman system service`), signalling and `exec`ing
 * real containers. The same path the hardened docker service takes (tests/systemd/).
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
import { startDockerApi } from "../containers/systemd.ts";
import {
  assertNoLeak,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
} from "./harness.ts";

const TOKEN = "ocid1.vaultsecret.oc1.iad.amaaaaaadockertoken";
const CONF = "ocid1.vaultsecret.oc1.iad.amaaaaaadockerconf";

Deno.test("sync --runtime docker signals and execs real containers through the Docker API", async () => {
  await ensureBusyboxImage();
  const oci = await startOciStandIn();
  const api = await startDockerApi();
  const ws = await makeWorkspace();
  const containers: string[] = [];
  try {
    const values = [secretValue("token"), secretValue("conf")];
    oci.setSecret(TOKEN, values[0]);
    oci.setSecret(CONF, values[1]);
    const mounts = [{ host: ws.root, container: "/run/secrets", ro: true }];
    const reader = await runContainer({
      name: "secretsync-docker-reader",
      mounts,
      cmd: secretReaderCmd("/run/secrets/token"),
    });
    containers.push(reader);
    const execTarget = await runContainer({
      name: "secretsync-docker-exec",
      mounts,
      cmd: secretReaderCmd("/run/secrets/conf"),
    });
    containers.push(execTarget);
    await waitForLog(reader, /^READY /m);

    // A user recipe whose reload is a command: it runs through `docker exec`, and records the
    // hash of the file the container sees.
    const recipes = `${ws.dir}/recipes.d`;
    await Deno.mkdir(recipes, { mode: 0o755 });
    await Deno.writeTextFile(
      `${recipes}/sum.json`,
      JSON.stringify({
        name: "sum",
        description: "test: records the hash of /run/secrets/conf as the container sees it",
        images: ["localhost/secretsync-busybox:test"],
        reload: { exec: ["sh", "-c", "sha256sum /run/secrets/conf > /tmp/seen"] },
      }),
    );
    await ws.writeMap([
      `${TOKEN},${ws.root}/token,0644,${reader},HUP`,
      `${CONF},${ws.root}/conf,0644,${execTarget},sum`,
    ]);
    const args = [
      "sync",
      ...ws.args(),
      ...instancePrincipalArgs(oci),
      "--runtime",
      "docker",
      "--recipes-dir",
      recipes,
    ];
    // Only DOCKER_HOST points the CLI at the API: no podman is named anywhere in the run.
    const run = await runCli(args, { env: { DOCKER_HOST: api.dockerHost } });
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stdout, new RegExp(`Reloaded ${reader} with signal HUP`));
    await waitForLog(reader, /^HUP /m);
    const hups = readerEvents(await containerLogs(reader)).filter((e) => e.event === "HUP");
    assert.deepEqual(hups.map((e) => e.digest), [await sha256Hex(values[0])]);
    const seen = await podman(["exec", execTarget, "cat", "/tmp/seen"]);
    assert.equal(seen.stdout.split(" ")[0], await sha256Hex(values[1]));

    // Without the API the docker runtime fails clearly, and the files are still written.
    oci.setSecret(TOKEN, secretValue("token2"));
    const down = await runCli(args, { env: { DOCKER_HOST: `unix://${ws.dir}/nothing.sock` } });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /docker/);
    assertNoLeak(values, run.stdout, run.stderr, down.stdout, down.stderr);
  } finally {
    for (const name of containers) await removeContainer(name);
    await ws.cleanup();
    await api.stop();
    await oci.close();
  }
});
