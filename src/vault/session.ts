/**
 * Session-token credentials: a token OCI issued (keyId `ST$<token>`) and the private key it was
 * issued for. Two sources:
 *
 * - `security_token`: an OCI config file profile with `security_token_file` and `key_file`, as
 *   `oci session authenticate` writes it (laptops, hosts outside OCI).
 * - `resource_principal`: the `OCI_RESOURCE_PRINCIPAL_*` environment, version 2.2 (OCI
 *   Container Instances, Functions): the RPST and the private key as values or absolute paths.
 *
 * oci-common has providers for both (`SessionAuthDetailProvider`, the resource principal
 * builder), and they run under Deno, but neither fits a timer job: they never look at the
 * token's expiry (an expired token is found by a 401 from the service), the session provider's
 * refresh talks to `auth.<region>.oraclecloud.com` with no way to point it elsewhere, and the
 * resource principal builder's messages name variables that do not exist. Both are a token and
 * a key read from files or the environment, so they are read here, checked (a JWT whose `exp`
 * has passed is refused before any request), and handed to the SDK's signer through its
 * three-method provider interface. The config file is still parsed by oci-common.
 *
 * @module
 */
import type { AuthenticationDetailsProvider } from "oci-common";
import { explainNotCapable } from "../permissions.ts";
import { describe } from "./describe.ts";
import { VaultError } from "./error.ts";
import type { Sdk } from "./sdk.ts";

/** A session token and its key: all a request signer needs. */
export interface SessionCredentials {
  /** The token (a JWT), sent as keyId `ST$<token>`. */
  token: string;
  /** PEM private key, PKCS#1 or PKCS#8, possibly encrypted. */
  privateKeyPem: string;
  passphrase?: string;
  /** Region from the config file or the environment. */
  regionId?: string;
  /** What to tell the user when the service refuses the token (HTTP 401). */
  on401: string;
}

/** Variables of resource principal version 2.2. */
export const RP_ENV = {
  version: "OCI_RESOURCE_PRINCIPAL_VERSION",
  rpst: "OCI_RESOURCE_PRINCIPAL_RPST",
  privatePem: "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
  passphrase: "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE",
  region: "OCI_RESOURCE_PRINCIPAL_REGION",
} as const;

/** The SDK's provider interface over fixed credentials. */
export function sessionProvider(credentials: SessionCredentials): AuthenticationDetailsProvider {
  return {
    getKeyId: () => Promise.resolve(`ST$${credentials.token}`),
    getPrivateKey: () => credentials.privateKeyPem,
    getPassphrase: () => credentials.passphrase ?? null,
  };
}

/**
 * Reads a `security_token` profile. Throws `VaultError` (not retryable) naming the file, the
 * profile and what is wrong; an expired token names `oci session refresh`.
 */
export function readSecurityToken(
  sdk: Sdk,
  configFile: string,
  profile: string,
  now: Date = new Date(),
): SessionCredentials {
  const refresh = `run \`oci session refresh --profile ${profile}\` ` +
    "(or `oci session authenticate` once it can no longer be refreshed)";
  const fail = (what: string): never => {
    throw new VaultError(
      `Cannot use the session token of profile "${profile}" in "${configFile}": ${what}`,
      { secretId: "", retryable: false },
    );
  };
  const { ConfigFileReader } = sdk.common;
  let config: ReturnType<typeof ConfigFileReader.parseFileFromPath>;
  try {
    config = ConfigFileReader.parseFileFromPath(configFile, profile);
  } catch (e) {
    return fail(e instanceof Deno.errors.NotCapable ? explainNotCapable(e) : describe(e));
  }
  const path = (key: string): string => {
    const value = config.get(key);
    if (!value) {
      return fail(
        `it has no ${key} (write one with \`oci session authenticate --profile-name ${profile}\`)`,
      );
    }
    return ConfigFileReader.expandUserHome(value);
  };
  const tokenFile = path("security_token_file");
  const keyFile = path("key_file");
  const token = readFile(tokenFile, "security_token_file", fail).trim();
  const privateKeyPem = readFile(keyFile, "key_file", fail);
  const problem = tokenProblem(token, now);
  if (problem) {
    return fail(
      `the token in "${tokenFile}" ${problem}${
        problem.startsWith("expired") ? `; ${refresh}` : ""
      }`,
    );
  }
  return {
    token,
    privateKeyPem,
    passphrase: config.get("pass_phrase") ?? undefined,
    regionId: config.get("region") ?? undefined,
    on401: `the session token may have expired or been revoked: ${refresh}`,
  };
}

/**
 * Reads resource principal 2.2 credentials from `env`. A value that is an absolute path is read
 * from that file (the platform may replace the file; each run reads it again). Throws
 * `VaultError` (not retryable) naming the variable.
 */
export function readResourcePrincipal(
  env: (name: string) => string | undefined,
  now: Date = new Date(),
): SessionCredentials {
  const fail = (what: string): never => {
    throw new VaultError(`Cannot use the resource principal: ${what}`, {
      secretId: "",
      retryable: false,
    });
  };
  const need = (name: string): string => {
    const value = env(name)?.trim();
    if (!value) return fail(`${name} is not set`);
    return value;
  };
  const version = need(RP_ENV.version);
  if (version !== "2.2") fail(`${RP_ENV.version} is "${version}"; only 2.2 is supported`);
  const rpst = need(RP_ENV.rpst);
  const pem = need(RP_ENV.privatePem);
  const passphrase = env(RP_ENV.passphrase) || undefined;
  const pemIsPath = pem.startsWith("/");
  if (pemIsPath && passphrase !== undefined && !passphrase.startsWith("/")) {
    fail(`${RP_ENV.privatePem} is a path, so ${RP_ENV.passphrase} must be a path too`);
  }
  const token = rpst.startsWith("/") ? readFile(rpst, RP_ENV.rpst, fail).trim() : rpst;
  const privateKeyPem = pemIsPath ? readFile(pem, RP_ENV.privatePem, fail) : pem;
  const pass = pemIsPath && passphrase
    ? readFile(passphrase, RP_ENV.passphrase, fail).trim()
    : passphrase;
  const problem = tokenProblem(token, now);
  if (problem) {
    const renew = rpst.startsWith("/")
      ? "the platform renews the file; if it stays expired, check the resource's identity"
      : "a token given as a value cannot be renewed: give a file path the platform renews";
    fail(
      `the token in ${RP_ENV.rpst} ${problem}${problem.startsWith("expired") ? `; ${renew}` : ""}`,
    );
  }
  return {
    token,
    privateKeyPem,
    passphrase: pass,
    regionId: env(RP_ENV.region)?.trim() || undefined,
    on401: "the resource principal session token may have expired or been revoked " +
      `(${RP_ENV.rpst})`,
  };
}

/**
 * Why a session token cannot be used, or undefined: it must be a JWT, and its `exp`, when it
 * has one, must lie in the future. Never quotes the token.
 *
 * @example
 * ```ts
 * tokenProblem("not-a-jwt", new Date()); // "is not a session token (a JWT)"
 * ```
 */
export function tokenProblem(token: string, now: Date): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return "is not a session token (a JWT)";
  let claims: { exp?: unknown };
  try {
    const json = new TextDecoder().decode(
      Uint8Array.fromBase64(parts[1], { alphabet: "base64url" }),
    );
    claims = JSON.parse(json);
  } catch {
    return "is not a session token (its JWT claims do not decode)";
  }
  if (claims === null || typeof claims !== "object") return "is not a session token (a JWT)";
  if (claims.exp === undefined) return undefined;
  if (typeof claims.exp !== "number") return "has an exp claim that is not a number";
  if (claims.exp * 1000 <= now.getTime()) {
    return `expired at ${new Date(claims.exp * 1000).toISOString()}`;
  }
  return undefined;
}

function readFile(path: string, what: string, fail: (what: string) => never): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) return fail(explainNotCapable(e));
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : describe(e);
    return fail(`cannot read ${what} "${path}": ${why}`);
  }
}
