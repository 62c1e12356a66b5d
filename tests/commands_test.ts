import assert from "node:assert/strict";
import { parseCheckArgs } from "../src/commands/check.ts";
import { parseSyncArgs } from "../src/commands/sync.ts";
import { UsageError } from "../src/commands/usage.ts";

Deno.test("parseSyncArgs() gives the documented defaults", () => {
  assert.deepEqual(parseSyncArgs([]), {
    map: "/etc/oci-secretsync/map.csv",
    roots: ["/run/secrets"],
    auth: {
      mode: "instance_principal",
      imdsUrl: "http://169.254.169.254/opc/v2/",
      authEndpoint: undefined,
    },
    region: undefined,
    endpoint: undefined,
    runtime: "auto",
    concurrency: 8,
    stage: "CURRENT",
    dryRun: false,
    json: false,
    timeoutMs: 45_000,
    requestTimeoutMs: 10_000,
    maxBytes: 65536,
    stateDir: "/run/oci-secretsync",
    lockTimeoutMs: 60_000,
    recipesDir: undefined,
    metricsFile: undefined,
    allowExpired: false,
    warnExpiryMs: 14 * 86_400_000,
    allowStopSignals: false,
  });
});

Deno.test("parseSyncArgs() reads every flag", () => {
  const options = parseSyncArgs([
    ...["--map", "/etc/m.csv", "--root", "/run/a", "--root", "/run/b"],
    ...["--auth", "api-key", "--oci-config", "/etc/oci/config", "--profile", "OPS"],
    ...["--region", "eu-frankfurt-1", "--endpoint", "https://vault.example:8443"],
    ...["--runtime", "podman", "--concurrency", "3", "--stage", "previous", "--dry-run", "--json"],
    ...["--timeout", "20", "--request-timeout", "2", "--max-size", "1024"],
    ...["--state-dir", "/run/x", "--lock-timeout", "5", "--recipes-dir", "/etc/r"],
    ...["--metrics-file", "/var/lib/node_exporter/secretsync.prom"],
    ...["--allow-expired", "--warn-expiry", "36h"],
    "--allow-stop-signals",
  ]);
  assert.deepEqual(options, {
    map: "/etc/m.csv",
    roots: ["/run/a", "/run/b"],
    auth: { mode: "api_key", configFile: "/etc/oci/config", profile: "OPS" },
    region: "eu-frankfurt-1",
    endpoint: "https://vault.example:8443",
    runtime: "podman",
    concurrency: 3,
    stage: "PREVIOUS",
    dryRun: true,
    json: true,
    timeoutMs: 20_000,
    requestTimeoutMs: 2_000,
    maxBytes: 1024,
    stateDir: "/run/x",
    lockTimeoutMs: 5_000,
    recipesDir: "/etc/r",
    metricsFile: "/var/lib/node_exporter/secretsync.prom",
    allowExpired: true,
    warnExpiryMs: 36 * 3_600_000,
    allowStopSignals: true,
  });
});

Deno.test("parseSyncArgs() and parseCheckArgs() refuse bad values with one UsageError", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--concurrency", "65"], /--concurrency must be at most 64/],
    [["--concurrency", "2.5"], /--concurrency must be a whole number/],
    [["--stage", "0"], /--stage "0" must be/],
    [["--endpoint", "ftp://x"], /--endpoint "ftp:\/\/x" must be an http\(s\) URL/],
    [["--region", "EU Frankfurt"], /--region must look like/],
    [["--runtime", "lxc"], /--runtime must be auto, docker or podman/],
    [["--root", "/"], /--root "\/" must be an absolute, normalized directory other than \//],
    [["--root", "/run/a/../b"], /must be an absolute, normalized/],
    [["--state-dir", "state"], /--state-dir must be an absolute/],
    [["--metrics-file", "m.prom"], /--metrics-file must be an absolute, normalized path/],
    [["--warn-expiry", "2w"], /--warn-expiry "2w" must be a number and a unit/],
  ];
  for (const [args, pattern] of cases) {
    await t.step(args.join(" "), () => {
      assert.throws(
        () => parseSyncArgs(args),
        (e) => e instanceof UsageError && pattern.test(e.message),
      );
    });
  }
  assert.deepEqual(parseCheckArgs(["--root", "/srv/s"]), {
    map: "/etc/oci-secretsync/map.csv",
    roots: ["/srv/s"],
    stateDir: "/run/oci-secretsync",
    json: false,
    allowStopSignals: false,
  });
  assert.equal(parseCheckArgs(["--state-dir", "/var/lib/s"]).stateDir, "/var/lib/s");
});
