// Tests of src/reload/runtime.ts against real podman (and the docker CLI, which has no engine
// here). Fake CLIs (shell scripts passed as `bin`) stand in only where a real one cannot show
// the behaviour: a hung CLI, the exact argv and environment a CLI receives.
import assert from "node:assert/strict";
import { containerRuntime, detectRuntime, ReloadError } from "../../src/reload/runtime.ts";
import {
  BUSYBOX_IMAGE,
  ensureBusyboxImage,
  podman,
  readerEvents,
  removeContainer,
  secretReaderCmd,
  sha256Hex,
  uniqueName,
  waitForLog,
  withContainer,
} from "../containers/podman.ts";

/** Awaits `fn`'s rejection, checks it is a ReloadError, and returns it. */
async function reloadError(fn: () => Promise<unknown>): Promise<ReloadError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ReloadError, `expected a ReloadError, got ${error}`);
    return error;
  }
  assert.fail("expected a ReloadError, nothing was thrown");
}

/** Writes an executable shell script into `dir` and returns its path. */
async function fakeCli(dir: string, name: string, body: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** Whether an executable `name` is on PATH. */
function onPath(name: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${name}`).isFile;
    } catch {
      return false; // not in this directory
    }
  });
}

/** PIDs whose command line is `cmdline` (arguments joined by spaces); reads /proc, as pgrep would. */
function processesMatching(cmdline: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const args = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0").filter(Boolean);
      if (args.join(" ") === cmdline) found.push(Number(entry.name));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-runtime-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("detectRuntime() picks podman when docker has no engine, in bounded time", async (t) => {
  await t.step("auto, with the real docker CLI", async () => {
    const started = Date.now();
    const runtime = await detectRuntime("auto");
    assert.equal(runtime.name, "podman");
    assert.ok(Date.now() - started < 10_000, `detection took ${Date.now() - started} ms`);
  });

  await t.step("auto, with a docker CLI that hangs", async () => {
    await withTempDir(async (dir) => {
      const hung = await fakeCli(dir, "docker", "sleep 30");
      const started = Date.now();
      // The probe deadline covers podman's too: `podman info` waits for the storage lock,
      // which a concurrent image build holds, so it must not be too short.
      const runtime = await detectRuntime("auto", {
        bins: { docker: hung },
        probeTimeoutMs: 2_000,
      });
      assert.equal(runtime.name, "podman");
      const elapsed = Date.now() - started;
      // Both probes run at once: the hung docker costs one deadline, not one on top of podman.
      assert.ok(elapsed >= 2_000 && elapsed < 3_000, `detection took ${elapsed} ms`);
    });
  });

  await t.step("explicit docker fails, saying why", async () => {
    const error = await reloadError(() => detectRuntime("docker"));
    if (onPath("docker")) {
      // This machine: the docker client is installed, no engine runs.
      assert.match(error.message, /^Cannot use docker: "docker version" failed \(exit code 1\): /);
      assert.match(error.message, /Cannot connect to the Docker daemon/);
    } else {
      // A fresh CI machine: .ci/install-deps installs podman only.
      assert.equal(
        error.message,
        "Cannot use docker: docker could not be started: not found on PATH",
      );
    }
  });

  await t.step("nothing usable names every candidate", async () => {
    const error = await reloadError(() =>
      detectRuntime("auto", {
        bins: { docker: "/nonexistent/docker", podman: "no-such-podman-cli" },
      })
    );
    assert.deepEqual(
      error.message,
      "Cannot use docker or podman: docker: /nonexistent/docker could not be started: no such file; " +
        "podman: no-such-podman-cli could not be started: not found on PATH",
    );
  });
});

Deno.test("containerRuntime('podman') against a running busybox container", async (t) => {
  await ensureBusyboxImage();
  const podmanRuntime = containerRuntime("podman");
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "first value");
    await withContainer({
      name: "runtime-test",
      mounts: [{ host: dir, container: "/run/secrets", ro: true }],
      cmd: secretReaderCmd("/run/secrets/token"),
    }, async (name) => {
      await waitForLog(name, /^READY /m);

      await t.step("signal() delivers HUP and USR1 to the container's traps", async () => {
        await podmanRuntime.signal(name, "HUP");
        await waitForLog(name, /^HUP /m);
        // A new file by rename, as secretsync writes it: the directory mount shows it.
        await Deno.writeTextFile(`${dir}/token.tmp`, "second value");
        await Deno.rename(`${dir}/token.tmp`, `${dir}/token`);
        await podmanRuntime.signal(name, "USR1");
        const events = readerEvents(await waitForLog(name, /^USR1 /m));
        assert.deepEqual(events, [
          { event: "READY", digest: await sha256Hex("first value") },
          { event: "HUP", digest: await sha256Hex("first value") },
          { event: "USR1", digest: await sha256Hex("second value") },
        ]);
      });

      await t.step("exec() returns the command's code, stdout and stderr", async () => {
        const result = await podmanRuntime.exec(name, [
          "sh",
          "-c",
          "echo out; echo err >&2; exit 3",
        ]);
        assert.deepEqual(result, { code: 3, stdout: "out\n", stderr: "err\n" });
      });

      await t.step("exec() of a missing command is a result, not an error", async () => {
        const result = await podmanRuntime.exec(name, ["no-such-command"]);
        assert.deepEqual(result.code, 127);
        assert.match(result.stderr, /not found/);
      });

      await t.step("exists() is true for a running container", async () => {
        assert.deepEqual(await podmanRuntime.exists(name), true);
      });
    });
  });

  await t.step("exists() is true for a stopped container, false for an unknown one", async () => {
    const name = uniqueName("runtime-test-created");
    try {
      await podman([
        "create",
        "--name",
        name,
        "--label",
        "secretsync.test=1",
        BUSYBOX_IMAGE,
        "true",
      ]);
      assert.deepEqual(await podmanRuntime.exists(name), true);
    } finally {
      await removeContainer(name);
    }
    assert.deepEqual(await podmanRuntime.exists(name), false);
  });

  await t.step("signal() to an unknown container throws ReloadError naming it", async () => {
    const name = uniqueName("runtime-test-missing");
    const error = await reloadError(() => podmanRuntime.signal(name, "HUP"));
    assert.match(
      error.message,
      new RegExp(
        `^Cannot signal container "${name}" with HUP: podman exited with code 125: .*no such container`,
      ),
    );
  });
});

Deno.test("containerRuntime() gives the CLI safe argv and a minimal environment", async (t) => {
  await withTempDir(async (dir) => {
    // Prints its arguments, one per line, then its environment.
    const echo = await fakeCli(dir, "echo-cli", 'printf "%s\\n" "$@"; echo ---; env');

    await t.step("`--` before the container name, for both runtimes", async () => {
      for (const name of ["docker", "podman"] as const) {
        const runtime = containerRuntime(name, { bin: echo });
        const { stdout } = await runtime.exec("web-1", ["nginx", "-s", "reload"]);
        assert.deepEqual(stdout.split("---")[0], "exec\n--\nweb-1\nnginx\n-s\nreload\n");
      }
    });

    await t.step("signal() passes --signal=SIG as one argument", async () => {
      const argsFile = `${dir}/args`;
      const recorder = await fakeCli(dir, "record-cli", `printf "%s\\n" "$@" > ${argsFile}`);
      await containerRuntime("podman", { bin: recorder }).signal("web-1", "USR1");
      assert.deepEqual(await Deno.readTextFile(argsFile), "kill\n--signal=USR1\n--\nweb-1\n");
    });

    await t.step("only PATH, HOME and the runtime's own variables reach the CLI", async () => {
      const saved = Deno.env.get("OCI_TEST_PRIVATE_KEY");
      Deno.env.set("OCI_TEST_PRIVATE_KEY", "must-not-leak");
      Deno.env.set("SECRETSYNC_TEST_DOCKER_HOST", "x"); // a look-alike name is not enough
      try {
        const { stdout } = await containerRuntime("podman", { bin: echo }).exec("web-1", ["true"]);
        const names = stdout.split("---\n")[1].split("\n").filter(Boolean).map((l) =>
          l.split("=")[0]
        );
        const allowed = new Set([
          "PATH",
          "HOME",
          "CONTAINER_HOST",
          "CONTAINER_CONNECTION",
          "CONTAINERS_CONF",
          "CONTAINERS_STORAGE_CONF",
          "XDG_RUNTIME_DIR",
          "XDG_CONFIG_HOME",
          "XDG_DATA_HOME",
          "DBUS_SESSION_BUS_ADDRESS",
          "PWD", // set by the shell that runs the fake CLI, not passed by us
          "SHLVL",
        ]);
        assert.ok(names.includes("PATH"), `PATH missing from ${names}`);
        for (const n of names) {
          assert.ok(allowed.has(n), `unexpected variable ${n} in the CLI's environment`);
        }
        assert.ok(!stdout.includes("must-not-leak"));
      } finally {
        if (saved === undefined) Deno.env.delete("OCI_TEST_PRIVATE_KEY");
        else Deno.env.set("OCI_TEST_PRIVATE_KEY", saved);
        Deno.env.delete("SECRETSYNC_TEST_DOCKER_HOST");
      }
    });

    await t.step(
      "a name or signal that could be read as a flag is refused before any call",
      async () => {
        const runtime = containerRuntime("podman", { bin: `${dir}/never-called` });
        const cases: [() => Promise<unknown>, string][] = [
          [() => runtime.signal("--all", "HUP"), 'Cannot use container name "--all"'],
          [() => runtime.exec("-it", ["sh"]), 'Cannot use container name "-it"'],
          [() => runtime.exists(""), 'Cannot use container name ""'],
          [() => runtime.signal("web", "-9"), 'invalid signal "-9"'],
          [() => runtime.exec("web", []), "empty command"],
        ];
        for (const [call, expected] of cases) {
          const error = await reloadError(call);
          // Had the CLI been run, the message would say it could not be started.
          assert.ok(error.message.includes(expected), error.message);
        }
      },
    );
  });
});

Deno.test("containerRuntime() kills a hung CLI when its timeout passes", async () => {
  await withTempDir(async (dir) => {
    // The sleep is a child of the script (not exec'd), as a CLI's helper would be: it holds
    // the output pipes too, and must be killed with the CLI.
    const marker = `${Math.floor(Math.random() * 1e6)}`;
    const hung = await fakeCli(dir, "hung-cli", `sleep 30.${marker}; echo never`);
    const runtime = containerRuntime("podman", { bin: hung, timeoutMs: 300 });
    const started = Date.now();
    const error = await reloadError(() => runtime.signal("web", "HUP"));
    assert.equal(
      error.message,
      `Cannot signal container "web" with HUP: "${hung} kill" timed out after 300 ms and was killed`,
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 3_000, `took ${elapsed} ms`);
    // SIGKILL is delivered at once, but the process may take a moment to go.
    let left = processesMatching(`sleep 30.${marker}`);
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = processesMatching(`sleep 30.${marker}`);
    }
    assert.deepEqual(left, [], "the CLI's child survived its timeout");
  });
});
