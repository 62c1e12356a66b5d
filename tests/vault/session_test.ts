import assert from "node:assert/strict";
import { readResourcePrincipal, tokenProblem } from "../../src/vault/session.ts";
import { VaultError } from "../../src/vault/error.ts";

function jwt(claims: unknown): string {
  const enc = (o: unknown) =>
    new TextEncoder().encode(JSON.stringify(o)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
  return `${enc({ alg: "RS256" })}.${enc(claims)}.c2ln`;
}

Deno.test("tokenProblem() reads exp without quoting the token", () => {
  const now = new Date("2026-12-02T08:00:00Z");
  const exp = now.getTime() / 1000;
  assert.equal(tokenProblem(jwt({ exp: exp + 60 }), now), undefined);
  assert.equal(tokenProblem(jwt({}), now), undefined, "no exp: the service decides");
  assert.equal(tokenProblem(jwt({ exp }), now), "expired at 2026-12-02T08:00:00.000Z");
  assert.equal(tokenProblem(jwt({ exp: "soon" }), now), "has an exp claim that is not a number");
  assert.equal(tokenProblem("abc", now), "is not a session token (a JWT)");
  assert.equal(
    tokenProblem("a.!!!.c", now),
    "is not a session token (its JWT claims do not decode)",
  );
  assert.equal(tokenProblem(`a.${btoa("null")}.c`, now), "is not a session token (a JWT)");
});

Deno.test("readResourcePrincipal() names the variable that is wrong", () => {
  const token = jwt({ exp: Date.now() / 1000 + 600 });
  const base: Record<string, string> = {
    OCI_RESOURCE_PRINCIPAL_VERSION: "2.2",
    OCI_RESOURCE_PRINCIPAL_RPST: token,
    OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM: "-----BEGIN PRIVATE KEY-----\n...",
    OCI_RESOURCE_PRINCIPAL_REGION: "iad",
  };
  const read = (env: Record<string, string>) => readResourcePrincipal((name) => env[name]);
  const ok = read(base);
  assert.equal(ok.token, token);
  assert.equal(ok.regionId, "iad");
  assert.equal(ok.passphrase, undefined);
  const fails = (env: Record<string, string>, re: RegExp) =>
    assert.throws(
      () => read(env),
      (e) => e instanceof VaultError && re.test(e.message) && !e.retryable,
    );
  fails(
    { ...base, OCI_RESOURCE_PRINCIPAL_VERSION: "" },
    /OCI_RESOURCE_PRINCIPAL_VERSION is not set/,
  );
  fails({ ...base, OCI_RESOURCE_PRINCIPAL_RPST: " " }, /OCI_RESOURCE_PRINCIPAL_RPST is not set/);
  fails(
    {
      ...base,
      OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM: "/k.pem",
      OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE: "pw",
    },
    /PRIVATE_PEM is a path, so OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE must be a path too/,
  );
  fails(
    { ...base, OCI_RESOURCE_PRINCIPAL_RPST: jwt({ exp: 1 }) },
    /OCI_RESOURCE_PRINCIPAL_RPST expired at 1970-01-01T00:00:01\.000Z; a token given as a value cannot be renewed/,
  );
});
