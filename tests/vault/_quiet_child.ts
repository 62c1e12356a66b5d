/**
 * Child process for quiet_test.ts. Exercises the vault client's noisy paths against a stand-in
 * run by the parent, and prints exactly one line: `RESULT <json>` (no secret values: lengths and
 * hashes only). Mode "raw" uses the SDK directly, without secretsync's silencing: the control
 * that proves the parent's capture would see SDK output.
 */
import { openVault, type VaultOptions } from "../../src/vault/mod.ts";

const env = JSON.parse(Deno.env.get("STANDIN") ?? "{}") as {
  imdsUrl: string;
  authEndpoint: string;
  secretsEndpoint: string;
  configFile: string;
  ids: Record<string, string>;
};
const mode = Deno.args[0] ?? "quiet";
const outcomes: Record<string, string> = {};

async function sha256(b: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>);
  return new Uint8Array(d).toHex();
}

async function attempt(label: string, fn: () => Promise<string>): Promise<void> {
  try {
    outcomes[label] = await fn();
  } catch (e) {
    outcomes[label] = `error: ${(e as Error).message}`;
  }
}

if (mode === "raw") {
  const common = await import("oci-common");
  const secrets = await import("oci-secrets");
  const dir = env.configFile;
  const provider = new common.ConfigFileAuthenticationDetailsProvider(dir, "DEFAULT");
  const client = new secrets.SecretsClient({ authenticationDetailsProvider: provider }, {
    retryConfiguration: common.NoRetryConfigurationDetails,
  });
  client.endpoint = env.secretsEndpoint;
  await attempt("raw404", async () => {
    await client.getSecretBundle({ secretId: env.ids.missing });
    return "ok";
  });
  client.close();
} else {
  const ip = (extra: Partial<VaultOptions> = {}): VaultOptions => ({
    auth: { mode: "instance_principal", imdsUrl: env.imdsUrl, authEndpoint: env.authEndpoint },
    endpoint: env.secretsEndpoint,
    stage: "CURRENT",
    ...extra,
  });
  const apiKey = (extra: Partial<VaultOptions> = {}): VaultOptions => ({
    auth: { mode: "api_key", configFile: env.configFile },
    endpoint: env.secretsEndpoint,
    stage: "CURRENT",
    ...extra,
  });
  const vault = await openVault(ip());
  // A short timeout only where a request hangs; the api_key vault has no federation to wait for.
  const quick = await openVault(apiKey({ timeoutMs: 300 }));
  for (const [label, id] of Object.entries(env.ids)) {
    await attempt(label, async () => {
      const b = await (label === "hung" ? quick : vault).fetch(id);
      return `ok ${b.version} ${b.bytes.length} ${await sha256(b.bytes)}`;
    });
  }
  vault.close();
  quick.close();
  await attempt("federationFails", async () => {
    (await openVault(
      ip({
        auth: {
          mode: "instance_principal",
          imdsUrl: env.imdsUrl,
          authEndpoint: `${env.authEndpoint}/fail`,
        },
      }),
    )).close();
    return "ok";
  });
  await attempt("apiKey404", async () => {
    const v = await openVault(apiKey());
    try {
      await v.fetch(env.ids.missing);
      return "ok";
    } finally {
      v.close();
    }
  });
}

console.log(`RESULT ${JSON.stringify(outcomes)}`);
