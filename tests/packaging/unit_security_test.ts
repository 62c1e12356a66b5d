/**
 * Scores the service `secretsync install` writes with `systemd-analyze security --offline=yes`
 * (systemd's own exposure rating, 0 = locked down, 10 = exposed), for each runtime variant.
 * The files scored are the ones install wrote into a temp systemd directory, byte for byte.
 */
import assert from "node:assert/strict";
import { runInstall } from "../../src/commands/install.ts";
import type { Logger } from "../../src/log.ts";

/** Highest exposure accepted per variant: the docker target of issue 11, podman's as measured. */
const MAX_EXPOSURE = { docker: 2.5, podman: 5.0 } as const;

const silent: Logger = { log() {} };

/** `systemd-analyze security --offline=yes FILE`: the overall exposure, and the table. */
async function exposure(file: string): Promise<{ score: number; report: string }> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("systemd-analyze", {
      args: ["security", "--offline=yes", "--no-pager", file],
      env: { SYSTEMD_COLORS: "0", LC_ALL: "C.UTF-8" },
      stdin: "null",
    }).output();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error("systemd-analyze is not installed: apt-get install systemd (.ci/install-deps)");
  }
  const report = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const match = /Overall exposure level for \S+: (\d+\.\d)/.exec(report);
  assert.ok(match, `no overall exposure in:\n${report}`);
  return { score: Number(match[1]), report };
}

for (const runtime of ["docker", "podman"] as const) {
  Deno.test(`the ${runtime} service install writes scores <= ${MAX_EXPOSURE[runtime]} in systemd-analyze security`, async () => {
    const host = await Deno.makeTempDir({ prefix: "secretsync-security-" });
    try {
      await Deno.mkdir(`${host}/systemd`);
      await Deno.mkdir(`${host}/bin`);
      const code = await runInstall({
        prefixBin: `${host}/bin`,
        systemdDir: `${host}/systemd`,
        configDir: `${host}/etc`,
        enable: false,
        dryRun: false,
        runtime,
      }, { log: silent, standalone: false });
      assert.equal(code, 0);
      const service = `${host}/systemd/oci-secretsync.service`;
      assert.match(await Deno.readTextFile(service), new RegExp(`--runtime ${runtime} `));
      const { score, report } = await exposure(service);
      assert.ok(score <= MAX_EXPOSURE[runtime], `exposure ${score}:\n${report}`);
      // Not a unit that scores well by running nothing: it is the sandboxed secretsync.
      assert.match(report, /✓ NoNewPrivileges=/);
      assert.match(report, /✓ ProtectSystem=/);
    } finally {
      await Deno.remove(host, { recursive: true });
    }
  });
}

Deno.test("systemd-analyze security rates the unsandboxed service as exposed (the scoring is real)", async () => {
  const host = await Deno.makeTempDir({ prefix: "secretsync-security-" });
  try {
    const file = `${host}/plain.service`;
    await Deno.writeTextFile(
      file,
      "[Service]\nType=oneshot\nExecStart=/usr/local/bin/secretsync sync\n",
    );
    const { score } = await exposure(file);
    assert.ok(score > 8, `plain unit scored ${score}`);
  } finally {
    await Deno.remove(host, { recursive: true });
  }
});
