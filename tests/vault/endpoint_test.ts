import assert from "node:assert/strict";
import { secretsEndpoint } from "../../src/vault/open.ts";
import { loadSdk } from "../../src/vault/sdk.ts";

Deno.test("secretsEndpoint() is the endpoint the SDK's SecretsClient uses for a region", async () => {
  const sdk = await loadSdk();
  for (const region of ["us-ashburn-1", "eu-frankfurt-1", "uk-gov-london-1", "us-langley-1"]) {
    // Setting a region ID on a client makes it compute its endpoint; no request is sent.
    const client = new sdk.secrets.SecretsClient({
      authenticationDetailsProvider: undefined as never,
    });
    client.regionId = region;
    const sdkEndpoint = (client as unknown as { _endpoint: string })._endpoint;
    assert.equal(`${secretsEndpoint(sdk, region)}/20190301`, sdkEndpoint, region);
  }
});
