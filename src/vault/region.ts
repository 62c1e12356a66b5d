/**
 * Regions and service endpoints, without the SDK when instance metadata says enough.
 *
 * An endpoint is a template filled with a region ID and its realm's domain ("oraclecloud.com"
 * for OC1). The SDK knows the domain from its region tables (plus ~/.oci/regions-config.json and
 * the environment); OCI's instance metadata says it directly: `GET instance/regionInfo` answers
 * `{"realmKey","realmDomainComponent","regionKey","regionIdentifier"}` (the SDK's own
 * `Region.enableInstanceMetadata` reads the same document). When IMDS answers it, no table is
 * needed and the SDK is not loaded; when it does not (an older IMDS, a stand-in), the region
 * name from `instance/region` is looked up in the SDK's tables exactly as the SDK's instance
 * principal builder does. The templates are the SDK's (tests/vault/endpoint_test.ts compares
 * them with the SDK's own).
 *
 * @module
 */
import { z } from "zod";
import { BodyTooLarge, readCappedBody } from "../http_body.ts";
import { describe } from "./describe.ts";
import type { Sdk } from "./sdk.ts";

/** A region ID and the domain of its realm. */
export interface RegionInfo {
  /** "us-ashburn-1" */
  regionId: string;
  /** "oraclecloud.com" */
  secondLevelDomain: string;
}

/** The federation endpoint template of the SDK's instance principal builder. */
export const AUTH_ENDPOINT_TEMPLATE = "https://auth.{region}.{secondLevelDomain}";
/** `SecretsClient.serviceEndpointTemplate` of oci-secrets. */
export const SECRETS_ENDPOINT_TEMPLATE = "https://secrets.vaults.{region}.oci.{secondLevelDomain}";

/**
 * A service endpoint in a region, as the SDK's `EndpointBuilder.createEndpointFromRegion` fills
 * a template (a dotted region ID is a full domain: `https://<service>.<regionId>`).
 *
 * @example
 * ```ts
 * endpointIn(AUTH_ENDPOINT_TEMPLATE, {
 *   regionId: "us-ashburn-1",
 *   secondLevelDomain: "oraclecloud.com",
 * }); // "https://auth.us-ashburn-1.oraclecloud.com"
 * ```
 */
export function endpointIn(template: string, region: RegionInfo): string {
  if (region.regionId.includes(".")) {
    const service = template.substring(template.lastIndexOf("/") + 1, template.indexOf("."));
    return `https://${service}.${region.regionId}`;
  }
  return template.replace("{secondLevelDomain}", region.secondLevelDomain)
    .replace("{region}", region.regionId);
}

const regionInfoSchema = z.object({
  realmKey: z.string().min(1),
  // A domain name: it becomes the host of the federation request, which carries the instance's
  // certificate signed with its key.
  realmDomainComponent: z.string().trim().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i),
  regionKey: z.string().min(1),
  regionIdentifier: z.string().regex(/^[a-z0-9.-]+$/i),
});

/** An IMDS read that did not give what was asked for; `status` when IMDS answered. */
export class ImdsReadError extends Error {
  override name = "ImdsReadError";
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/**
 * The most an IMDS answer may hold: what is read (PEM certificates and keys of a few KB, a
 * region) is far smaller; a bigger answer is refused, never buffered whole.
 */
export const IMDS_MAX_BYTES = 64 * 1024;

/**
 * GETs an IMDS v2 resource as text (`Authorization: Bearer Oracle`). Throws `ImdsReadError`
 * for an answer other than 200 or one over {@linkcode IMDS_MAX_BYTES}; network errors and
 * aborts are thrown as they are.
 */
export async function imdsText(base: string, path: string, signal: AbortSignal): Promise<string> {
  const res = await fetch(`${base}${path}`, {
    headers: { Authorization: "Bearer Oracle" },
    signal,
  });
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new ImdsReadError(`IMDS answered HTTP ${res.status} for ${path}`, res.status);
  }
  try {
    return new TextDecoder().decode(await readCappedBody(res, IMDS_MAX_BYTES));
  } catch (e) {
    if (e instanceof BodyTooLarge) {
      throw new ImdsReadError(`IMDS answered ${path} with more than ${IMDS_MAX_BYTES} bytes`);
    }
    throw e;
  }
}

/**
 * The instance's region from IMDS: `instance/regionInfo` when it answers a valid document, else
 * `instance/region` looked up in the SDK's region tables (loaded only then). Throws on failure
 * of the fallback (network errors and aborts as they are, `ImdsReadError` otherwise).
 */
export async function readImdsRegion(
  imdsUrl: string,
  signal: AbortSignal,
  loadSdk: () => Promise<Sdk>,
): Promise<RegionInfo> {
  const base = imdsUrl.endsWith("/") ? imdsUrl : imdsUrl + "/";
  const info = await readRegionInfo(base, signal);
  if (info) return info;
  const text = (await imdsText(base, "instance/region", signal)).trim();
  if (!/^[a-z0-9.-]+$/i.test(text)) {
    throw new ImdsReadError("IMDS answered instance/region with something that is no region");
  }
  return sdkRegion(await loadSdk(), text);
}

/** `instance/regionInfo`, or undefined when IMDS does not serve it (or serves nonsense). */
async function readRegionInfo(base: string, signal: AbortSignal): Promise<RegionInfo | undefined> {
  let text: string;
  try {
    text = await imdsText(base, "instance/regionInfo", signal);
  } catch (e) {
    if (e instanceof ImdsReadError) return undefined;
    throw e; // IMDS is down or the deadline passed: the fallback would not fare better
  }
  let parsed: z.infer<typeof regionInfoSchema>;
  try {
    parsed = regionInfoSchema.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
  // The SDK registers regions and realms lower-cased.
  return {
    regionId: parsed.regionIdentifier.trim().toLocaleLowerCase("en-US"),
    secondLevelDomain: parsed.realmDomainComponent.trim().toLocaleLowerCase("en-US"),
  };
}

/**
 * A region name or short code ("iad") from IMDS, resolved as the SDK's instance principal
 * builder does: short code to ID, the ID's known region, else registered under OC1.
 */
export function sdkRegion(sdk: Sdk, name: string): RegionInfo {
  const { Region, Realm } = sdk.common;
  const id = Region.getRegionIdFromShortCode(name);
  let region: ReturnType<typeof Region.fromRegionId>;
  try {
    region = Region.fromRegionId(id);
  } catch (e) {
    throw new ImdsReadError(`IMDS names region "${name}": ${describe(e)}`);
  }
  // The SDK's builder means to register an unknown region under OC1 (its fromRegionId returns
  // undefined rather than throwing, so it fails instead); registering is what it intends.
  region ??= Region.register(id, Realm.OC1);
  return { regionId: region.regionId, secondLevelDomain: region.realm.secondLevelDomain };
}
