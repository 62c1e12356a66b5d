/**
 * A run pointed at the stand-in talks to it and to nothing else. Under `strace`, every address
 * `sync`, `watch --stream` and `doctor` connect or send to is on loopback: not the default
 * metadata address (the product's, were `--imds-url` ignored), and no DNS query (a name looked
 * up: `deno run`'s own update check asks for dl.deno.land once a process has lived half a second,
 * unless `DENO_NO_UPDATE_CHECK` is set, which `cliCommand` and every task do).
 */
import assert from "node:assert/strict";
import { type OciStandIn, startOciStandIn } from "../oci/standin.ts";
import {
  cli,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
  type Workspace,
} from "./harness.ts";

const TOKEN = "ocid1.vaultsecret.oc1.iad.amaaaaaaloopback";

/** Every IPv4 and IPv6 address in an strace log of connect and send calls. */
function addressesIn(trace: string): string[] {
  const v4 = [...trace.matchAll(/sin_addr=inet_addr\("([^"]+)"\)/g)].map((m) => m[1]);
  const v6 = [...trace.matchAll(/inet_pton\(AF_INET6, "([^"]+)"/g)].map((m) => m[1]);
  return [...v4, ...v6];
}

function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === "::1" || /^::ffff:127\./.test(address);
}

/** `strace` for `cliCommand`'s prefix: network calls of every thread, into `file`. */
function straceInto(file: string): string[] {
  return [
    "strace",
    "-f",
    "--seccomp-bpf",
    "-qq",
    "-e",
    "trace=connect,sendto,sendmsg,sendmmsg",
    "-o",
    file,
  ];
}

/**
 * Runs `body` with this process's DENO_NO_UPDATE_CHECK unset, so that only cliCommand can turn
 * the update check off in the CLI it starts.
 */
async function withoutInheritedNoUpdateCheck<T>(body: () => Promise<T>): Promise<T> {
  const inherited = Deno.env.get("DENO_NO_UPDATE_CHECK");
  Deno.env.delete("DENO_NO_UPDATE_CHECK");
  try {
    return await body();
  } finally {
    if (inherited !== undefined) Deno.env.set("DENO_NO_UPDATE_CHECK", inherited);
  }
}

/** Fails unless the trace saw the stand-in and nothing off loopback. */
async function assertLoopbackOnly(trace: string, oci: OciStandIn): Promise<void> {
  const text = await Deno.readTextFile(trace);
  const addresses = addressesIn(text);
  assert.ok(addresses.length > 0, "strace saw no connection at all");
  const port = new URL(oci.secretsEndpoint).port;
  assert.ok(text.includes(`htons(${port})`), "strace did not see the connection to the stand-in");
  assert.deepEqual(addresses.filter((a) => !isLoopback(a)), []);
}

async function workspaceWithToken(oci: OciStandIn): Promise<Workspace> {
  const ws = await makeWorkspace();
  oci.setSecret(TOKEN, secretValue("loopback"));
  await ws.writeMap([`${TOKEN},${ws.root}/token,0600,,`]);
  return ws;
}

Deno.test("addressesIn reads strace's IPv4 and IPv6 socket addresses", () => {
  const trace = [
    '7 connect(29, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.53")}, 16) = 0',
    '7 connect(30, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
    '7 connect(31, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
  ].join("\n");
  assert.deepEqual(addressesIn(trace), ["10.0.0.53", "2001:db8::1"]);
  assert.deepEqual(addressesIn(trace).filter((a) => !isLoopback(a)), ["10.0.0.53", "2001:db8::1"]);
  assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && !isLoopback("169.254.169.254"));
});

Deno.test("a sync pointed at the stand-in connects to loopback only: no DNS, no metadata address", async () => {
  // Each fetch answers after 1.2 s, so the process lives past the half second after which
  // `deno run` would look up its update server.
  const oci = await startOciStandIn({ latencyMs: 1200, latencyPaths: ["secrets"] });
  const ws = await workspaceWithToken(oci);
  try {
    const trace = `${ws.dir}/net.trace`;
    const { code, stderr } = await withoutInheritedNoUpdateCheck(() =>
      runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)], { prefix: straceInto(trace) })
    );
    assert.equal(code, 3, stderr);
    await assertLoopbackOnly(trace, oci);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});

Deno.test("watch --stream and doctor pointed at the stand-in connect to loopback only", async () => {
  const oci = await startOciStandIn();
  const ws = await workspaceWithToken(oci);
  const streamId = oci.createStream();
  oci.routeSecretEvents(streamId);
  try {
    const watchTrace = `${ws.dir}/watch.trace`;
    const child = await withoutInheritedNoUpdateCheck(() =>
      Promise.resolve(
        cli([
          "watch",
          ...ws.args(),
          ...instancePrincipalArgs(oci),
          "--stream",
          streamId,
          "--stream-endpoint",
          oci.streamEndpoint,
          "--poll",
          "200ms",
          "--interval",
          "1h",
        ], { prefix: straceInto(watchTrace), stdout: "null", stderr: "null" }).spawn(),
      )
    );
    try {
      // A first cycle, then stream polls, for longer than the half second above.
      const started = Date.now();
      while (oci.calls.streams.gets < 2 || Date.now() - started < 1500) {
        assert.ok(Date.now() - started < 30_000, "watch never read the stream");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok((oci.calls.secrets.get(TOKEN) ?? 0) >= 1, "watch fetched nothing");
    } finally {
      // strace's child is the CLI: stop it, and strace ends with it.
      const children = await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`)
        .catch(() => ""); // strace already gone
      const traced = children.trim().split(" ")[0];
      try {
        if (traced) Deno.kill(Number(traced), "SIGTERM");
        else child.kill("SIGTERM");
      } catch {
        // already ended
      }
      await child.status;
    }
    await assertLoopbackOnly(watchTrace, oci);

    const doctorTrace = `${ws.dir}/doctor.trace`;
    const doctor = await withoutInheritedNoUpdateCheck(() =>
      runCli(["doctor", ...ws.args(), ...instancePrincipalArgs(oci), "--runtime", "podman"], {
        prefix: straceInto(doctorTrace),
      })
    );
    assert.match(doctor.stdout, /^ok {3}auth instance_principal: fetched/m, doctor.stdout);
    await assertLoopbackOnly(doctorTrace, oci);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
