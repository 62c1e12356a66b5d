/**
 * Runs the OCI stand-in on its own, for demos:
 *
 * ```sh
 * deno run -A tests/oci/serve.ts [--port 8123] [--config-dir DIR] [--secret OCID=FILE]... [--stream]
 * ```
 *
 * Seeds the secrets given with `--secret` (value read from FILE, so it never appears on a command
 * line), or two demo secrets with random values when none are given; writes an API key config
 * into `--config-dir` (default: a new temp dir); prints one JSON line on stdout with the URLs,
 * the config file, and each secret's OCID, version, size and sha256 (never the value); then
 * serves until SIGTERM or SIGINT. With `--stream`, a stream is created that every rotation
 * (`PUT /_standin/secrets/{id}`) puts its event on, and its OCID is printed as `streamId`. The control API (`/_standin/…`, see standin.ts) is on, so a
 * demo can rotate secrets and inject faults while it runs.
 *
 * @module
 */
import { startOciStandIn } from "./standin.ts";

function parseArgs(
  args: string[],
): { port: number; configDir?: string; secrets: [string, string][]; stream: boolean } {
  const out: { port: number; configDir?: string; secrets: [string, string][]; stream: boolean } = {
    port: 0,
    secrets: [],
    stream: false,
  };
  for (let i = 0; i < args.length; i++) {
    const value = args[i + 1];
    switch (args[i]) {
      case "--port":
        out.port = Number(value);
        i++;
        break;
      case "--config-dir":
        out.configDir = value;
        i++;
        break;
      case "--secret": {
        const eq = value?.indexOf("=") ?? -1;
        if (eq <= 0) throw new Error(`Cannot parse --secret "${value}": expected OCID=FILE`);
        out.secrets.push([value.slice(0, eq), value.slice(eq + 1)]);
        i++;
        break;
      }
      case "--stream":
        out.stream = true;
        break;
      default:
        throw new Error(`Unknown argument "${args[i]}"`);
    }
  }
  return out;
}

async function sha256Hex(b: Uint8Array): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>))
    .toHex();
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  const oci = await startOciStandIn({ port: args.port, control: true });
  const configDir = args.configDir ?? await Deno.makeTempDir({ prefix: "oci-standin-" });
  const { configFile, profile } = await oci.writeApiKeyConfig(configDir);

  const seeds: [string, Uint8Array][] = [];
  for (const [id, file] of args.secrets) seeds.push([id, await Deno.readFile(file)]);
  if (seeds.length === 0) {
    const random = () =>
      new TextEncoder().encode(
        crypto.getRandomValues(new Uint8Array(18)).toBase64({ alphabet: "base64url" }) + "\n",
      );
    seeds.push(["ocid1.vaultsecret.oc1.iad.amaaaaaademodbpassword", random()]);
    seeds.push(["ocid1.vaultsecret.oc1.iad.amaaaaaademoapitoken", random()]);
  }
  const secrets = [];
  for (const [id, bytes] of seeds) {
    const version = oci.setSecret(id, bytes);
    secrets.push({ id, version, bytes: bytes.length, sha256: await sha256Hex(bytes) });
  }

  const streamId = args.stream ? oci.createStream() : undefined;
  if (streamId) oci.routeSecretEvents(streamId);

  console.log(JSON.stringify({
    url: oci.url,
    ...(streamId ? { streamId, streamEndpoint: oci.streamEndpoint } : {}),
    imdsUrl: oci.imdsUrl,
    authEndpoint: oci.authEndpoint,
    secretsEndpoint: oci.secretsEndpoint,
    region: oci.region,
    tenancyId: oci.tenancyId,
    vaultId: oci.vaultId,
    configFile,
    profile,
    controlUrl: `${oci.url}/_standin/`,
    secrets,
  }));

  const stop = async () => {
    await oci.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
