/**
 * Recipes beyond containers, through the real CLI against the OCI stand-in:
 *
 * - `unit:NAME.service`: this machine runs no systemd, so a fake `systemctl` first on PATH
 *   records its argv; what is proven is the command secretsync runs, not systemd's reaction.
 * - `pidfile:/path`: a real host process (sh with a HUP trap) whose pidfile the map names.
 * - a `none` recipe (openldap): nothing is sent, a warning is logged, the run succeeds.
 * - user recipes from `--recipes-dir`, map errors for recipes (exit 2), `recipe list/show`.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { PERMISSIONS } from "../../src/permissions.ts";
import { instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

/**
 * Whether the release permissions let the CLI signal a host process: read the pidfile (under
 * /run on a host; the workspace here) and run `kill`. Should they ever be dropped, pidfile:
 * targets fail with a message saying so, and this test stops running rather than failing.
 */
const PIDFILE_PERMITTED = PERMISSIONS.run.includes("kill") &&
  PERMISSIONS.read.some((path) => path === "/run" || path === "/");

const TOKEN = "ocid1.vaultsecret.oc1.iad.amaaaaaarecipetoken";

/** Runs `fn` with a directory holding a fake `systemctl` first on this process's PATH. */
async function withFakeSystemctl(
  body: string,
  fn: (log: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-fake-systemctl-" });
  const log = `${dir}/argv.log`;
  await Deno.writeTextFile(
    `${dir}/systemctl`,
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n${body}\n`,
    { mode: 0o755 },
  );
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", `${dir}:${path}`); // runCli's child inherits it
  try {
    await fn(log);
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(dir, { recursive: true });
  }
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

Deno.test("unit: targets run `systemctl reload` for a validating recipe and `systemctl kill` for a signal", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    await withFakeSystemctl("exit 0", async (log) => {
      oci.setSecret(TOKEN, secretValue("unit"));
      await ws.writeMap([
        `${TOKEN},${ws.root}/a,0600,unit:nginx.service,nginx`,
        `${TOKEN},${ws.root}/b,0600,unit:nginx.service,nginx`,
        `${TOKEN},${ws.root}/c,0600,unit:pg.service,postgres`,
        `${TOKEN},${ws.root}/d,0600,unit:app.service,USR1`,
      ]);
      const run = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
      assert.equal(run.code, 3, run.stderr);
      assert.deepEqual(await readLines(log), [
        "reload -- nginx.service",
        "kill --kill-who=main --signal=SIGHUP -- pg.service",
        "kill --kill-who=main --signal=SIGUSR1 -- app.service",
      ]);
    });
    await withFakeSystemctl("echo 'Job for nginx.service failed.' >&2; exit 1", async () => {
      oci.setSecret(TOKEN, secretValue("unit2"));
      const run = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        /Cannot reload unit:nginx.service with recipe nginx: "systemctl reload -- nginx.service" failed \(exit code 1\): Job for nginx.service failed./,
      );
    });
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test({
  name:
    "pidfile: targets signal the host process; the recipe's validation is skipped with a warning",
  ignore: !PIDFILE_PERMITTED,
}, async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const out = `${ws.dir}/hups`;
  const pidfile = `${ws.dir}/server.pid`;
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `trap 'echo HUP >> ${out}' HUP; echo $$ > ${pidfile}; while :; do sleep 0.1; done`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (let i = 0; i < 50 && (await readLines(pidfile)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await Deno.chmod(pidfile, 0o644);
    oci.setSecret(TOKEN, secretValue("pid"));
    await ws.writeMap([`${TOKEN},${ws.root}/a,0600,pidfile:${pidfile},nginx`]);
    const run = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(
      run.stderr,
      /\[WARN\] \(reload\) Recipe nginx validates with "nginx -t" inside a container; not run for pidfile:/,
    );
    for (let i = 0; i < 50 && (await readLines(out)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(await readLines(out), ["HUP"]);

    // A recipe that only runs a command cannot reach a host process: a map error.
    await ws.writeMap([`${TOKEN},${ws.root}/a,0600,pidfile:${pidfile},postfix`]);
    const rejected = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(rejected.code, 2);
    assert.match(rejected.stderr, /line 1: recipe "postfix" reloads by running a command/);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("recipe openldap sends nothing and warns; HUP to the same target is a map error", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    oci.setSecret(TOKEN, secretValue("ldap"));
    // No container "ldap" exists: had anything been sent, the run would fail.
    await ws.writeMap([`${TOKEN},${ws.root}/tls.crt,0644,ldap,openldap`]);
    const run = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /\[WARN\] \(reload\) Did not reload ldap \(recipe openldap\): slapd/);
    assert.doesNotMatch(run.stdout, /Reloaded ldap/, "a warning is not a reload");

    await ws.writeMap([
      `${TOKEN},${ws.root}/tls.crt,0644,ldap,openldap`,
      `${TOKEN},${ws.root}/tls.key,0600,ldap,HUP`,
    ]);
    const check = await runCli(["check", "--map", ws.map, "--root", ws.root]);
    assert.equal(check.code, 2);
    assert.match(
      check.stderr,
      /line 2: HUP must not be sent to ldap: line 1 reloads it with recipe "openldap"/,
    );
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("user recipes: a JSON file adds or overrides a recipe, `recipe list` shows its source, a bad file is exit 2", async () => {
  const ws = await makeWorkspace();
  try {
    const dir = `${ws.dir}/recipes.d`;
    await Deno.mkdir(dir, { mode: 0o755 });
    await Deno.writeTextFile(
      `${dir}/nginx.json`,
      JSON.stringify({
        name: "nginx",
        description: "nginx under a supervisor: nginx -s reload",
        images: ["example/nginx-supervised"],
        validate: ["nginx", "-t"],
        reload: { exec: ["nginx", "-s", "reload"] },
      }),
    );
    await Deno.writeTextFile(
      `${dir}/myapp.json`,
      JSON.stringify({
        name: "myapp",
        description: "our app re-reads its key on USR1",
        images: ["registry.example.com/myapp"],
        reload: { signal: "SIGUSR1" },
      }),
    );
    const list = await runCli(["recipe", "list", "--recipes-dir", dir]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^myapp +signal USR1 +- +file .*\/myapp.json$/m);
    assert.match(
      list.stdout,
      /^nginx +exec nginx -s reload +nginx -t +file .*\/nginx.json \(overrides built-in\)$/m,
    );
    assert.match(list.stdout, /^openldap +none \(see notes\) +- +built-in$/m);

    const json = JSON.parse(
      (await runCli(["recipe", "list", "--json", "--recipes-dir", dir])).stdout,
    );
    assert.deepEqual(
      json.map((r: { name: string; source: { kind: string } }) => [r.name, r.source.kind]),
      [
        ["dovecot", "built-in"],
        ["haproxy", "built-in"],
        ["myapp", "file"],
        ["nginx", "file"],
        ["openldap", "built-in"],
        ["postfix", "built-in"],
        ["postgres", "built-in"],
        ["traefik", "built-in"],
      ],
    );

    await ws.writeMap([`ocid1.vaultsecret.oc1..aaaa,${ws.root}/a,0600,web,myapp`]);
    const known = await runCli(["check", "--map", ws.map, "--root", ws.root, "--recipes-dir", dir]);
    assert.equal(known.code, 0, known.stderr);
    const unknown = await runCli(["check", "--map", ws.map, "--root", ws.root]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /"myapp" is neither a signal .* nor a known recipe \(see `secretsync recipe list`\)/,
    );

    await Deno.writeTextFile(
      `${dir}/broken.json`,
      JSON.stringify({ name: "broken", reload: { signal: "BOOM" } }),
    );
    const bad = await runCli(["check", "--map", ws.map, "--root", ws.root, "--recipes-dir", dir]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /Cannot use recipe file .*\/broken.json: field "description": .*field "reload.signal": "BOOM" is not a signal/,
    );
    const show = await runCli(["recipe", "show", "broken", "--recipes-dir", dir]);
    assert.equal(show.code, 2);
  } finally {
    await ws.cleanup();
  }
});
