/**
 * `deno task demo`: a real sync against the OCI stand-in, no cloud account needed.
 *
 * Starts the stand-in from `tests/oci/` on 127.0.0.1 (instance metadata, federation and the
 * Secrets API, verifying every request signature as OCI does), writes a map into a temporary
 * directory, and runs `secretsync sync` three times: everything new, nothing new, one rotated
 * secret. Prints each run's log and what is on disk, never the values.
 */
import { startOciStandIn } from "../tests/oci/standin.ts";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
const secrets = {
  db: "ocid1.vaultsecret.oc1.iad.amaaaaaademodbpassword",
  tls: "ocid1.vaultsecret.oc1.iad.amaaaaaademotlskey",
};

const oci = await startOciStandIn();
const dir = await Deno.makeTempDir({ prefix: "secretsync-demo-" });
const root = `${dir}/secrets`;
await Deno.mkdir(root, { mode: 0o700 });
await Deno.chmod(root, 0o700);
try {
  oci.setSecret(secrets.db, randomValue());
  oci.setSecret(secrets.tls, randomValue());
  const map = `${dir}/map.csv`;
  await Deno.writeTextFile(
    map,
    [
      "# ocid,path,mode,target,reload",
      `${secrets.db},${root}/db_password,0600,,`,
      `${secrets.tls},${root}/tls/server.key,0400,,`,
      `${secrets.db},${root}/app/db_password,0440,,`,
    ].join("\n") + "\n",
  );
  console.log(`OCI stand-in on ${oci.url}; map ${map}:\n`);
  console.log(await Deno.readTextFile(map));
  const args = [
    "sync",
    ...["--map", map, "--root", root, "--state-dir", `${dir}/state`],
    ...[
      "--imds-url",
      oci.imdsUrl,
      "--auth-endpoint",
      oci.authEndpoint,
      "--endpoint",
      oci.secretsEndpoint,
    ],
  ];

  await run("1. first run: every file is new", args);
  await run("2. second run: nothing changed", args);
  const version = oci.setSecret(secrets.db, randomValue());
  await run(`3. the stand-in rotated the database password to version ${version}`, args);
  console.log(`\nEvery request was signed and verified (${oci.calls.rejected} rejected).`);
} finally {
  await Deno.remove(dir, { recursive: true });
  await oci.close();
}

async function run(title: string, args: string[]): Promise<void> {
  console.log(`\n== ${title}\n$ secretsync ${args.map((a) => a.replace(dir, "$DEMO")).join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: "null",
  }).spawn().status;
  console.log(`exit code ${code}; on disk:`);
  for (const path of await files(root)) {
    const info = await Deno.stat(path);
    const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
    const hex = [...new Uint8Array(digest)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    console.log(
      `  ${(info.mode! & 0o7777).toString(8).padStart(4, "0")}  ${
        String(info.size).padStart(4)
      } B  ` +
        `sha256 ${hex}…  inode ${info.ino}  ${path.replace(dir, "$DEMO")}`,
    );
  }
}

async function files(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const item of Deno.readDir(dir)) {
    const path = `${dir}/${item.name}`;
    if (item.isDirectory) found.push(...await files(path));
    else found.push(path);
  }
  return found.sort();
}

function randomValue(): string {
  return crypto.randomUUID();
}
