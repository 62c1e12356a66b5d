import assert from "node:assert/strict";
import { ENV_ALLOWLIST } from "../../src/reload/runtime.ts";
import * as common from "oci-common";
import { SecretsClient } from "oci-secrets";
import {
  cliCommand,
  COMPILE_FLAGS,
  permissionFlags,
  PERMISSIONS,
  REPO_ROOT,
  RUNTIME_FLAGS,
} from "../../scripts/permissions.ts";
import { OCI_REALM_DOMAINS } from "../../src/permissions.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Runs tests/packaging/access_probe.ts with exactly the runtime flags; one result per arg. */
async function probe(args: string[]): Promise<Record<string, string[]>> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${REPO_ROOT}/deno.json`,
      ...RUNTIME_FLAGS,
      `${REPO_ROOT}/tests/packaging/access_probe.ts`,
      ...args,
    ],
    cwd: "/",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(code, 0, decode(stderr));
  const results: Record<string, string[]> = {};
  for (const line of decode(stdout).trim().split("\n")) {
    const { arg, messages } = JSON.parse(line);
    results[arg] = messages;
  }
  return results;
}

Deno.test("permissionFlags() gives one flag per kind and never -A", () => {
  const flags = permissionFlags(PERMISSIONS);
  const kinds = flags.map((flag) => flag.slice(0, flag.indexOf("=")));
  assert.deepEqual(kinds, [
    "--allow-read",
    "--allow-write",
    "--allow-run",
    "--allow-env",
    "--ignore-env",
    "--allow-net",
    "--allow-sys",
  ]);
  assert.ok(flags.includes("--allow-run=docker,podman,systemctl,kill,findmnt"));
  for (const flag of [...RUNTIME_FLAGS, ...COMPILE_FLAGS]) {
    assert.ok(!/^(-A|--allow-all)$/.test(flag), flag);
    assert.ok(flag.includes("=") || !flag.startsWith("--allow-"), `${flag} has no list`);
  }
  assert.ok(RUNTIME_FLAGS.includes("--no-prompt"));
  assert.ok(COMPILE_FLAGS.includes("--no-code-cache"));
});

Deno.test("permissionFlags() refuses a value that would split into two", () => {
  assert.throws(
    () => permissionFlags({ ...PERMISSIONS, read: ["/a,/b"] }),
    /contains a comma/,
  );
});

Deno.test("PERMISSIONS.env covers every variable reload/runtime.ts passes to docker and podman", () => {
  const names = Object.values(ENV_ALLOWLIST).flat();
  assert.ok(names.length > 5);
  for (const name of names) assert.ok(PERMISSIONS.env.includes(name), `${name} is missing`);
  assert.equal(new Set(PERMISSIONS.env).size, PERMISSIONS.env.length, "no duplicates");
});

Deno.test("PERMISSIONS.net allows the Secrets endpoint of every region the SDK knows", () => {
  const client = new SecretsClient({ authenticationDetailsProvider: undefined as never });
  try {
    const realms = new Set(common.Realm.values().map((realm) => realm.secondLevelDomain));
    for (const domain of realms) assert.ok(OCI_REALM_DOMAINS.includes(domain), domain);
    for (const region of common.Region.values()) {
      client.region = region;
      const url = new URL(client.endpoint);
      assert.equal(url.protocol, "https:", region.regionId);
      const allowed = OCI_REALM_DOMAINS.some((domain) => url.hostname.endsWith(`.${domain}`));
      assert.ok(allowed, `${region.regionId}: ${url.hostname}`);
    }
  } finally {
    client.close();
  }
});

Deno.test("the runtime flags grant the built-in paths and hosts and nothing else", async (t) => {
  const results = await probe([
    "read:/etc/oci-secretsync/map.csv",
    "write:/run/secrets/db_password",
    "write:/etc/systemd/system/oci-secretsync.service",
    "net:https://secrets.vaults.eu-frankfurt-1.oci.oraclecloud.com/20190301/secretbundles/x",
    "net:https://auth.us-langley-1.oraclegovcloud.com/v1/x509",
    "net:http://169.254.169.254/opc/v2/instance/region",
    "net:http://127.0.0.1:8080/",
    "read:/srv/secrets/map.csv",
    "write:/srv/secrets",
    "write:/usr/local/bin/other",
    "net:https://example.com/",
    "net:http://secrets.vaults.eu-frankfurt-1.oci.oraclecloud.com/",
    "open:/etc/hostname",
  ]);
  await t.step("allowed", () => {
    for (const arg of Object.keys(results).slice(0, 7)) assert.deepEqual(results[arg], [], arg);
  });
  await t.step("a path outside says which paths it may use and where to read on", () => {
    const [message] = results["write:/srv/secrets"];
    assert.match(
      message,
      /^Cannot write "\/srv\/secrets": this secretsync build may only write in /,
    );
    assert.match(message, /\/run\/secrets/);
    assert.match(message, /README, "Permissions"/);
    assert.match(results["read:/srv/secrets/map.csv"][0], /^Cannot read "\/srv\/secrets\/map.csv"/);
    assert.equal(results["write:/usr/local/bin/other"].length, 1);
  });
  await t.step("a host outside, or plain http to OCI, is refused with a way out", () => {
    assert.match(results["net:https://example.com/"][0], /^Cannot connect to example.com:443: /);
    assert.match(results["net:https://example.com/"][0], /HTTPS_PROXY/);
    assert.equal(
      results["net:http://secrets.vaults.eu-frankfurt-1.oci.oraclecloud.com/"].length,
      1,
    );
  });
  await t.step("explainNotCapable() rewrites Deno's advice, which a binary cannot follow", () => {
    const [message] = results["open:/etc/hostname"];
    assert.match(
      message,
      /^Cannot read "\/etc\/hostname": this secretsync build may only read in /,
    );
    assert.doesNotMatch(message, /run again with/);
  });
});

Deno.test("cliCommand() runs the CLI from another directory with the compiled flags", async () => {
  const { code, stdout, stderr } = await cliCommand(["--help"]).output();
  assert.equal(code, 0, decode(stderr));
  assert.match(decode(stdout), /Commands:[\s\S]*install/);
  assert.equal(decode(stderr), "", "nothing on stderr: no SDK or Deno notices");
});

Deno.test("cliCommand() rejects a relative fixture path", () => {
  assert.throws(() => cliCommand(["check"], { paths: ["tmp"] }), /must be absolute/);
});
