import assert from "node:assert/strict";
import { secretsEndpoint } from "../../src/vault/open.ts";
import {
  AUTH_ENDPOINT_TEMPLATE,
  endpointIn,
  sdkRegion,
  SECRETS_ENDPOINT_TEMPLATE,
} from "../../src/vault/region.ts";
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

Deno.test("endpointIn() fills the SDK's templates as the SDK does, from a region and its realm", async () => {
  const sdk = await loadSdk();
  const { EndpointBuilder, InstancePrincipalsAuthenticationDetailsProviderBuilder, Region } =
    sdk.common;
  const builder = new InstancePrincipalsAuthenticationDetailsProviderBuilder();
  // The builder's two opossum circuits (one bare, one wrapped) hold timers.
  type Circuit = { shutdown(): void };
  (builder.circuitBreaker as unknown as Circuit).shutdown();
  (builder.authCircuitBreaker as unknown as { circuit: Circuit }).circuit.shutdown();
  const sdkAuthTemplate = (builder as unknown as { template: string }).template;
  assert.equal(AUTH_ENDPOINT_TEMPLATE, sdkAuthTemplate);
  assert.equal(
    SECRETS_ENDPOINT_TEMPLATE,
    (sdk.secrets.SecretsClient as unknown as { serviceEndpointTemplate: string })
      .serviceEndpointTemplate,
  );
  for (const id of ["us-ashburn-1", "eu-frankfurt-1", "uk-gov-london-1", "us-langley-1"]) {
    const region = Region.fromRegionId(id)!;
    // What IMDS's regionInfo says: the region ID and its realm's domain.
    const info = { regionId: id, secondLevelDomain: region.realm.secondLevelDomain };
    assert.equal(
      endpointIn(AUTH_ENDPOINT_TEMPLATE, info),
      EndpointBuilder.createEndpointFromRegion(sdkAuthTemplate, region),
      id,
    );
    assert.equal(endpointIn(SECRETS_ENDPOINT_TEMPLATE, info), secretsEndpoint(sdk, id), id);
    assert.deepEqual(sdkRegion(sdk, region.regionCode ?? id), info, `short code of ${id}`);
  }
  const dotted = { regionId: "xyz.example.com", secondLevelDomain: "ignored" };
  assert.equal(
    endpointIn(AUTH_ENDPOINT_TEMPLATE, dotted),
    EndpointBuilder.createEndpointForDottedRegion(sdkAuthTemplate, dotted.regionId, ""),
  );
  assert.equal(endpointIn(SECRETS_ENDPOINT_TEMPLATE, dotted), "https://secrets.xyz.example.com");
});
