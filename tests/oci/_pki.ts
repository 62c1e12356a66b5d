/**
 * Key material for the stand-in, made at test time with the openssl CLI: an intermediate CA,
 * the instance's leaf certificate (subject carries `OU=opc-tenant:<tenancy>` as OCI's does; the
 * SDK reads the tenancy from there) and an API signing key. Memoized per tenancy, because RSA key
 * generation is the slowest part of starting a stand-in.
 *
 * @module
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";

/** Everything the stand-in needs to serve IMDS and verify signatures. */
export interface Pki {
  intermediateCertPem: string;
  leafCertPem: string;
  /** PKCS#1 PEM, as IMDS serves it. */
  leafKeyPem: string;
  leafPublicKey: KeyObject;
  /** base64 DER of the leaf certificate, as the SDK puts it into the federation body. */
  leafCertDerB64: string;
  /** sha1 of the DER, colon hex: the last part of the federation keyId. */
  leafSha1Fingerprint: string;
  apiKeyPem: string;
  apiPublicKey: KeyObject;
  /** md5 of the public key DER, colon hex, as in an OCI config file. */
  apiKeyFingerprint: string;
}

const cache = new Map<string, Promise<Pki>>();

/** Returns (and memoizes) the PKI for a tenancy and instance. */
export function getPki(tenancyId: string, instanceId: string): Promise<Pki> {
  const key = `${tenancyId} ${instanceId}`;
  let p = cache.get(key);
  if (!p) {
    p = makePki(tenancyId, instanceId);
    // A failed generation must not be cached forever.
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}

async function makePki(tenancyId: string, instanceId: string): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "oci-standin-pki-" });
  try {
    const f = (name: string) => `${dir}/${name}`;
    await openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.pem"),
      "-days",
      "2",
      "-subj",
      "/CN=PKISVC Identity Intermediate stand-in",
    );
    await openssl("genrsa", "-traditional", "-out", f("leaf.key"), "2048");
    const subj = `/CN=${instanceId}/OU=opc-certtype:instance` +
      `/OU=opc-compartment:${tenancyId}/OU=opc-instance:${instanceId}/OU=opc-tenant:${tenancyId}`;
    await openssl("req", "-new", "-key", f("leaf.key"), "-subj", subj, "-out", f("leaf.csr"));
    await openssl(
      "x509",
      "-req",
      "-in",
      f("leaf.csr"),
      "-CA",
      f("ca.pem"),
      "-CAkey",
      f("ca.key"),
      "-set_serial",
      "0x" + crypto.randomUUID().replaceAll("-", "").slice(0, 16),
      "-days",
      "2",
      "-out",
      f("leaf.pem"),
    );
    await openssl("genrsa", "-out", f("api.key"), "2048");

    const leafCertPem = await Deno.readTextFile(f("leaf.pem"));
    const leafKeyPem = await Deno.readTextFile(f("leaf.key"));
    const apiKeyPem = await Deno.readTextFile(f("api.key"));
    const leafDer = pemBody(leafCertPem);
    const apiPublicKey = createPublicKey(apiKeyPem);
    const apiDer = apiPublicKey.export({ type: "spki", format: "der" });
    return {
      intermediateCertPem: await Deno.readTextFile(f("ca.pem")),
      leafCertPem,
      leafKeyPem,
      leafPublicKey: createPublicKey(leafKeyPem),
      leafCertDerB64: leafDer.toBase64(),
      leafSha1Fingerprint: colonHex(createHash("sha1").update(leafDer).digest()),
      apiKeyPem,
      apiPublicKey,
      apiKeyFingerprint: colonHex(createHash("md5").update(apiDer).digest()),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function openssl(...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** The DER bytes inside a PEM block. */
export function pemBody(pem: string): Uint8Array {
  const b64 = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.fromBase64(b64);
}

function colonHex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
