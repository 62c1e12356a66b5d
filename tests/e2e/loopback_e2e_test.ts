/**
 * A run pointed at the stand-in talks to it and to nothing else. Under `strace`, every address a
 * `sync` connects or sends to is on loopback: not the default metadata address (the product's,
 * when `--imds-url` is ignored), and no DNS query (a name looked up: `deno run`'s own update
 * check asks for dl.deno.land once a process has lived half a second, unless
 * `DENO_NO_UPDATE_CHECK` is set, which `cliCommand` and every task do).
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { instancePrincipalArgs, makeWorkspace, runCli, secretValue } from "./harness.ts";

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
  const ws = await makeWorkspace();
  try {
    oci.setSecret(TOKEN, secretValue("loopback"));
    await ws.writeMap([`${TOKEN},${ws.root}/token,0600,,`]);
    const trace = `${ws.dir}/net.trace`;
    // Only cliCommand may turn the update check off here, not this process's environment.
    const inherited = Deno.env.get("DENO_NO_UPDATE_CHECK");
    Deno.env.delete("DENO_NO_UPDATE_CHECK");
    const { code, stderr } = await runCli(["sync", ...ws.args(), ...instancePrincipalArgs(oci)], {
      prefix: [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-qq",
        "-e",
        "trace=connect,sendto,sendmsg,sendmmsg",
        "-o",
        trace,
      ],
    }).finally(() => {
      if (inherited !== undefined) Deno.env.set("DENO_NO_UPDATE_CHECK", inherited);
    });
    assert.equal(code, 3, stderr);
    const addresses = addressesIn(await Deno.readTextFile(trace));
    const port = new URL(oci.secretsEndpoint).port;
    assert.ok(addresses.length > 0, "strace saw no connection at all");
    assert.ok(
      (await Deno.readTextFile(trace)).includes(`htons(${port})`),
      "strace did not see the connection to the stand-in",
    );
    assert.deepEqual(addresses.filter((a) => !isLoopback(a)), []);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
