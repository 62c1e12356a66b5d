// The reloader's behaviour on each kind of target, with the edges replaced where no real one
// can show it: a recording ContainerRuntime (validation outcomes, output redaction), a fake
// systemctl script (there is no systemd here), and a real host process for pidfile: targets.
// The same paths run against real podman and servers in tests/e2e/recipes_e2e_test.ts.
import assert from "node:assert/strict";
import type { Logger } from "../../src/log.ts";
import type { Entry, Reload, Target } from "../../src/map.ts";
import { builtInRegistry } from "../../src/recipes.ts";
import { outputExcerpt, redact } from "../../src/reload/redact.ts";
import { createReloader } from "../../src/reload/reloader.ts";
import { readPidfile } from "../../src/reload/pidfile.ts";
import {
  type ContainerRuntime,
  type ExecResult,
  ReloadError,
  ValidationError,
} from "../../src/reload/runtime.ts";

const KEY_PEM =
  "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRET\n" +
  "hRANCAAT1KOhwndeDL9kLvWUqSLhDGKmDqksGabcdefgh\n-----END PRIVATE KEY-----\n";

/** A runtime that records every call and answers exec from a script. */
function fakeRuntime(answers: Record<string, ExecResult> = {}) {
  const calls: string[] = [];
  let created = 0;
  const runtime: ContainerRuntime = {
    name: "podman",
    signal: (container, signal) => {
      calls.push(`signal ${container} ${signal}`);
      return Promise.resolve();
    },
    exec: (container, argv) => {
      calls.push(`exec ${container} ${argv.join(" ")}`);
      return Promise.resolve(answers[argv.join(" ")] ?? { code: 0, stdout: "", stderr: "" });
    },
    exists: () => Promise.resolve(true),
    mounts: () => Promise.resolve([]),
  };
  return {
    calls,
    created: () => created,
    factory: () => {
      created++;
      return Promise.resolve(runtime);
    },
  };
}

function recordingLog() {
  const lines: string[] = [];
  const log: Logger = {
    log: (level, component, message) => lines.push(`${level} ${component} ${message}`),
  };
  return { lines, log };
}

const HUP: Reload = { kind: "signal", signal: "HUP" };

function action(target: Target, reload: Reload, paths = ["/run/secrets/x"]) {
  return { target, reload, paths };
}

async function reloadError(fn: () => Promise<unknown>): Promise<ReloadError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ReloadError, `expected a ReloadError, got ${error}`);
    return error;
  }
  assert.fail("expected a ReloadError");
}

const web: Target = { kind: "container", name: "web" };
const nginx: Reload = { kind: "recipe", name: "nginx" };

Deno.test("a container recipe validates in the container, then signals PID 1", async () => {
  const rt = fakeRuntime();
  const reloader = createReloader({ runtime: rt.factory, recipes: builtInRegistry() });
  await reloader.reload(action(web, nginx));
  assert.deepEqual(rt.calls, ["exec web nginx -t", "signal web HUP"]);

  const exec = fakeRuntime();
  await createReloader({ runtime: exec.factory }).reload(
    action({ kind: "container", name: "mail" }, { kind: "recipe", name: "postfix" }),
  );
  assert.deepEqual(exec.calls, ["exec mail postfix check", "exec mail postfix reload"]);
});

Deno.test("a failed validation reloads nothing and shows the validator's output, redacted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-redact-" });
  try {
    const password = "correct-horse-battery-staple";
    await Deno.writeTextFile(`${dir}/tls.key`, KEY_PEM);
    await Deno.writeTextFile(`${dir}/db`, password);
    const entries: Entry[] = [
      { line: 1, secretId: "a", path: `${dir}/tls.key`, mode: 0o600, target: web, reload: nginx },
      { line: 2, secretId: "b", path: `${dir}/db`, mode: 0o600 },
    ];
    const noise = Array.from({ length: 30 }, (_, i) => `noise line ${i}`).join("\n");
    const rt = fakeRuntime({
      "nginx -t": {
        code: 1,
        stdout: "stdout is not shown when there are errors",
        stderr: `${noise}\nnginx: [emerg] echoing ${password} and\n${KEY_PEM}` +
          "line with hRANCAAT1KOhwndeDL9kLvWUqSLhDGKmDqksGabcdefgh in it\n\x1b[31mtest failed\x1b[0m\n",
      },
    });
    const error = await reloadError(() =>
      createReloader({ runtime: rt.factory, entries }).reload(action(web, nginx))
    );
    assert.deepEqual(rt.calls, ["exec web nginx -t"], "no signal after a failed validation");
    assert.ok(error instanceof ValidationError, "a refusal, not a signal failure");
    assert.match(
      error.message,
      /^validation "nginx -t" failed in container "web" \(exit code 1\); not reloaded: \(14 earlier lines\) \| noise line 14 \| .* \| nginx: \[emerg\] echoing \[redacted\] and \| \[redacted private key\] \| line with \[redacted\] in it \| test failed$/,
    );
    assert.ok(!error.message.includes(password));
    assert.ok(!error.message.includes("SECRETSECRET"));
    assert.ok(!error.message.includes("stdout is not shown"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("outputExcerpt() falls back to stdout, caps lines, and says when there was nothing", () => {
  assert.equal(outputExcerpt({ code: 1, stdout: "", stderr: " \n" }, []), "no output");
  assert.equal(outputExcerpt({ code: 1, stdout: "only here\n", stderr: "" }, []), "only here");
  const long = "x".repeat(400);
  assert.equal(outputExcerpt({ code: 1, stdout: "", stderr: long }, []), `${"x".repeat(300)}…`);
  // Short values are left alone; PEM armour lines of a secret are not blanked.
  assert.equal(
    redact("abc -----BEGIN CERTIFICATE----- abc", [
      "abc",
      "-----BEGIN CERTIFICATE-----\nQUJDREVGR0hJSktMTU5P\n",
    ]),
    "abc -----BEGIN CERTIFICATE----- abc",
  );
});

Deno.test("an exec reload that fails is a reload failure with its output", async () => {
  const rt = fakeRuntime({
    "doveadm reload": { code: 75, stdout: "", stderr: "doveadm: Fatal: no master\n" },
  });
  const error = await reloadError(() =>
    createReloader({ runtime: rt.factory }).reload(action(web, { kind: "recipe", name: "dovecot" }))
  );
  assert.ok(!(error instanceof ValidationError), "the reload itself failed, not a validation");
  assert.equal(
    error.message,
    'reload command "doveadm reload" failed in container "web" (exit code 75): doveadm: Fatal: no master',
  );
});

Deno.test("a none recipe sends nothing, needs no runtime, and warns naming the target", async () => {
  const rt = fakeRuntime();
  const { lines, log } = recordingLog();
  await createReloader({ runtime: rt.factory, log }).reload(
    action({ kind: "container", name: "ldap" }, { kind: "recipe", name: "openldap" }),
  );
  assert.equal(rt.created(), 0);
  assert.deepEqual(rt.calls, []);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^warn reload Did not reload ldap \(recipe openldap\): slapd has no reload signal/,
  );
});

Deno.test("issue 8 #10: a stop signal is refused at reload time unless allowStopSignals", async () => {
  const web: Target = { kind: "container", name: "web" };
  for (const signal of ["KILL", "STOP", "TERM", "INT", "QUIT"]) {
    const rt = fakeRuntime();
    const error = await reloadError(() =>
      createReloader({ runtime: rt.factory }).reload(action(web, { kind: "signal", signal }))
    );
    assert.match(error.message, new RegExp(`^Refusing to reload web: ${signal} stops a process`));
    assert.deepEqual(rt.calls, []);
  }
  const rt = fakeRuntime();
  await createReloader({ runtime: rt.factory, allowStopSignals: true })
    .reload(action(web, { kind: "signal", signal: "TERM" }));
  assert.deepEqual(rt.calls, ["signal web TERM"]);
});

Deno.test("a signal a recipe forbids is refused at reload time too", async () => {
  const ldap: Target = { kind: "container", name: "ldap" };
  const entries: Entry[] = [
    {
      line: 3,
      secretId: "a",
      path: "/run/secrets/a",
      mode: 0o600,
      target: ldap,
      reload: { kind: "recipe", name: "openldap" },
    },
    {
      line: 4,
      secretId: "b",
      path: "/run/secrets/b",
      mode: 0o600,
      target: ldap,
      reload: { kind: "signal", signal: "HUP" },
    },
  ];
  const rt = fakeRuntime();
  const reloader = createReloader({ runtime: rt.factory, entries });
  const error = await reloadError(() =>
    reloader.reload(action(ldap, { kind: "signal", signal: "HUP" }))
  );
  assert.equal(
    error.message,
    'Refusing to reload ldap: HUP must not be sent to ldap: line 3 reloads it with recipe "openldap", which never sends HUP (see `secretsync recipe show openldap`)',
  );
  assert.deepEqual(rt.calls, []);
  await reloader.reload(action(ldap, { kind: "signal", signal: "USR1" }));
  assert.deepEqual(rt.calls, ["signal ldap USR1"]);
});

Deno.test("unit: targets go through systemctl (a fake one records its argv)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-systemctl-" });
  const log = `${dir}/argv`;
  const bin = `${dir}/systemctl`;
  const fake = (body: string) =>
    Deno.writeTextFile(bin, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${log}\n${body}\n`, { mode: 0o755 });
  const argv = async () => (await Deno.readTextFile(log)).trim().split("\n");
  const unit: Target = { kind: "unit", name: "web.service" };
  try {
    await fake("exit 0");
    const reloader = createReloader({
      runtime: () => Promise.reject(new Error("unused")),
      systemctl: bin,
    });
    await t.step("signal, signal recipe, validating recipe, exec recipe", async () => {
      await reloader.reload(action(unit, { kind: "signal", signal: "USR1" }));
      await reloader.reload(action(unit, { kind: "recipe", name: "postgres" }));
      await reloader.reload(action(unit, nginx));
      await reloader.reload(action(unit, { kind: "recipe", name: "postfix" }));
      assert.deepEqual(await argv(), [
        "kill --kill-who=main --signal=SIGUSR1 -- web.service",
        "kill --kill-who=main --signal=SIGHUP -- web.service",
        "reload -- web.service",
        "reload -- web.service",
      ]);
    });
    await t.step("a signal the unit's recipe forbids never reaches systemctl", async () => {
      const ldap: Target = { kind: "unit", name: "slapd.service" };
      const entry = (line: number, reload: Reload): Entry => ({
        line,
        secretId: `s${line}`,
        path: `/run/secrets/${line}`,
        mode: 0o600,
        target: ldap,
        reload,
      });
      const guarded = createReloader({
        runtime: () => Promise.reject(new Error("unused")),
        systemctl: bin,
        entries: [entry(2, { kind: "recipe", name: "openldap" }), entry(5, HUP)],
      });
      const before = (await argv()).length;
      const error = await reloadError(() => guarded.reload(action(ldap, HUP)));
      assert.match(error.message, /^Refusing to .*unit:slapd\.service/);
      assert.match(error.message, /line 2 .*openldap.*never sends HUP/);
      assert.equal((await argv()).length, before, "systemctl was not run");
    });
    await t.step("systemctl's failure is the reload's failure", async () => {
      await fake("echo 'Unit web.service not found.' >&2; exit 5");
      const error = await reloadError(() => reloader.reload(action(unit, nginx)));
      assert.equal(
        error.message,
        '"systemctl reload -- web.service" failed (exit code 5): Unit web.service not found.',
      );
    });
    await t.step("a hung systemctl is killed at the deadline", async () => {
      await fake("exec sleep 30");
      const quick = createReloader({
        runtime: () => Promise.reject(new Error("unused")),
        systemctl: bin,
        systemctlTimeoutMs: 300,
      });
      const error = await reloadError(() => quick.reload(action(unit, nginx)));
      assert.match(error.message, /timed out after 300 ms/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("issue 8 #1: a pidfile: target never quotes the file, nor reads a secret file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-pidleak-" });
  const secretFile = `${dir}/secret`;
  const { lines, log } = recordingLog();
  try {
    for (const secret of ["hunter2-PIDFILE-LEAK", "123456"]) {
      await Deno.writeTextFile(secretFile, secret, { mode: 0o600 });
      const error = await reloadError(() => readPidfile(secretFile));
      assert.ok(!error.message.includes(secret), error.message);
      assert.ok(!error.message.includes(secret.slice(0, 6)), error.message);
    }
    // The same file through a second name (a hard link outside the root) is refused before
    // anything is read, and so is the file named directly when the run writes it.
    await Deno.link(secretFile, `${dir}/other.pid`);
    assert.match(
      (await reloadError(() => readPidfile(`${dir}/other.pid`))).message,
      /it has 2 hard links; a pidfile has one/,
    );
    await Deno.remove(`${dir}/other.pid`);
    await Deno.writeTextFile(secretFile, `${Deno.pid === 2 ? 3 : 2}`);
    const entries: Entry[] = [{ line: 1, secretId: "a", path: secretFile, mode: 0o600 }];
    const reloader = createReloader({
      runtime: () => Promise.reject(new Error("unused")),
      entries,
      log,
    });
    const error = await reloadError(() =>
      reloader.reload(
        action({ kind: "pidfile", path: secretFile }, { kind: "signal", signal: "HUP" }),
      )
    );
    assert.match(error.message, /it is a file secretsync writes a secret into/);
    assert.deepEqual(lines, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pidfile: targets signal a real host process, after checking the pidfile", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-pidfile-" });
  const pidfile = `${dir}/server.pid`;
  const out = `${dir}/signals`;
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `trap 'echo HUP >> ${out}' HUP; trap 'echo USR1 >> ${out}' USR1; while :; do sleep 0.1; done`,
    ],
    stdin: "null",
  }).spawn();
  const received = async (n: number) => {
    for (let i = 0; i < 100; i++) {
      const text = await Deno.readTextFile(out).catch(() => "");
      const lines = text.split("\n").filter(Boolean);
      if (lines.length >= n) return lines;
      await new Promise((r) => setTimeout(r, 30));
    }
    assert.fail("the process did not receive the signal");
  };
  const target: Target = { kind: "pidfile", path: pidfile };
  const { lines, log } = recordingLog();
  const reloader = createReloader({ runtime: () => Promise.reject(new Error("unused")), log });
  try {
    await Deno.writeTextFile(pidfile, `${child.pid}\n`, { mode: 0o644 });
    await t.step("a bare signal, and a recipe's signal with its validation skipped", async () => {
      await reloader.reload(action(target, { kind: "signal", signal: "USR1" }));
      assert.deepEqual(await received(1), ["USR1"]);
      await reloader.reload(action(target, nginx));
      assert.deepEqual(await received(2), ["USR1", "HUP"]);
      assert.match(
        lines[0],
        /^warn reload Recipe nginx validates with "nginx -t" inside a container; not run for pidfile:/,
      );
    });
    await t.step("a recipe that runs a command cannot reach a host process", async () => {
      const error = await reloadError(() =>
        reloader.reload(action(target, { kind: "recipe", name: "postfix" }))
      );
      assert.match(error.message, /runs a command in a container/);
    });
    await t.step("unsafe or wrong pidfiles are refused", async () => {
      await Deno.chmod(pidfile, 0o666);
      assert.match(
        (await reloadError(() => readPidfile(pidfile))).message,
        /mode 0666 lets group or others write it/,
      );
      await Deno.chmod(pidfile, 0o644);
      for (
        const [text, why] of [
          ["1", /not the PID of a service/],
          ["abc", /not the PID/],
          [
            `${Deno.pid}`,
            /not the PID/,
          ],
          ["4000000", /no process with the PID it holds is running/],
          ["0123", /not the PID/],
        ] as const
      ) {
        await Deno.writeTextFile(pidfile, text);
        const message = (await reloadError(() => readPidfile(pidfile))).message;
        assert.match(message, why);
        // issue 8 #1: the file's content is never quoted.
        if (["abc", "4000000", "0123"].includes(text)) assert.ok(!message.includes(text), message);
      }
      assert.match(
        (await reloadError(() => readPidfile(`${dir}/missing.pid`))).message,
        /does not exist/,
      );
    });
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validates() says which target and reload run a validation step", () => {
  const reloader = createReloader({ runtime: fakeRuntime().factory });
  assert.equal(reloader.validates?.(web, nginx), true);
  assert.equal(reloader.validates?.(web, { kind: "signal", signal: "HUP" }), false);
  assert.equal(reloader.validates?.({ kind: "unit", name: "nginx.service" }, nginx), false);
  assert.equal(reloader.validates?.(web, { kind: "recipe", name: "no-such-recipe" }), false);
});
