/**
 * Certificates made at test time with the openssl CLI (`openssl ca -selfsign`, which takes any
 * validity window, so expired and not-yet-valid certificates are real ones), and their keys
 * re-encoded with node:crypto into PKCS#1, PKCS#8, SEC 1 or encrypted PKCS#8.
 */
import { createPrivateKey } from "node:crypto";

/** A self-signed certificate and its key, PEM. */
export interface TestCert {
  cert: string;
  /** PKCS#8 (`BEGIN PRIVATE KEY`). */
  key: string;
}

/** Options for {@link makeTestCert}. */
export interface TestCertOptions {
  /** @default "ec" (P-256) */
  type?: "rsa" | "ec" | "rsa-pss" | "ed25519";
  /** `YYYYMMDDHHMMSSZ`. @default one day ago */
  start?: string;
  /** `YYYYMMDDHHMMSSZ`. @default thirty days ahead */
  end?: string;
  /** Mark it a CA certificate (basicConstraints CA:TRUE). @default false */
  ca?: boolean;
}

const CA_CONFIG = `[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
unique_subject = no
copy_extensions = none
[p]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
[authority]
basicConstraints = critical,CA:TRUE
`;

/** Makes a self-signed certificate for `CN=<cn>` with openssl. */
export async function makeTestCert(cn: string, options: TestCertOptions = {}): Promise<TestCert> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-certs-" });
  try {
    await Deno.writeTextFile(`${dir}/ca.cnf`, CA_CONFIG);
    await Deno.writeTextFile(`${dir}/index.txt`, "");
    await Deno.writeTextFile(`${dir}/serial`, "01\n");
    const newkey = options.type === "rsa"
      ? ["-newkey", "rsa:2048"]
      : options.type === "rsa-pss"
      ? ["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"]
      : options.type === "ed25519"
      ? ["-newkey", "ed25519"]
      : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    await openssl(dir, [
      "req",
      "-new",
      ...newkey,
      "-nodes",
      "-keyout",
      "key.pem",
      "-out",
      "req.csr",
      "-subj",
      `/CN=${cn}`,
    ]);
    await openssl(dir, [
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-selfsign",
      "-keyfile",
      "key.pem",
      "-in",
      "req.csr",
      "-out",
      "cert.pem",
      "-notext",
      "-extensions",
      options.ca ? "authority" : "leaf",
      "-startdate",
      options.start ?? stamp(-86_400_000),
      "-enddate",
      options.end ?? stamp(30 * 86_400_000),
    ]);
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `YYYYMMDDHHMMSSZ`, `offsetMs` from now. */
export function stamp(offsetMs: number): string {
  return new Date(Date.now() + offsetMs).toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
}

/** The same key in another encoding. */
export function reencode(
  pkcs8: string,
  form: "pkcs1" | "sec1" | "pkcs8" | "encrypted" | "encrypted-pkcs1",
): string {
  const key = createPrivateKey(pkcs8);
  if (form === "encrypted-pkcs1") {
    // OpenSSL's legacy form: `Proc-Type: 4,ENCRYPTED` and `DEK-Info` headers over ciphertext.
    const type = key.asymmetricKeyType === "ec" ? "sec1" : "pkcs1";
    return key.export({ type, format: "pem", cipher: "aes-256-cbc", passphrase: "test" })
      .toString();
  }
  if (form === "encrypted") {
    return key.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "test" })
      .toString();
  }
  return key.export({ type: form, format: "pem" }).toString();
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}
