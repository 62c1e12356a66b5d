/**
 * Secret references: what the map's first column may say.
 *
 * ```
 * ocid1.vaultsecret.oc1.iad.aaaa                    a secret by OCID
 * name:db-password@ocid1.vault.oc1.iad.bbbb         a secret by name, in one vault
 * REF?stage=PENDING   REF?version=4                 a stage or version for this line only
 * REF#password   REF#db.primary   REF#tls\.crt      one key of a JSON object secret
 * ```
 *
 * The parts come in this order: the secret, then at most one `?stage=`/`?version=`, then at
 * most one `#` key path. A key path is a dot-separated list of object keys; a key that contains
 * a dot writes it as `\.`, a backslash as `\\`; everything after the `#` belongs to the path.
 *
 * Parsing is pure and offline: `secretsync check` reports every bad reference with its line.
 *
 * @module
 */
import type { SecretLocator, SecretQuery, Selector } from "./vault/types.ts";

export type { SecretLocator, SecretQuery, Selector };

/** A parsed map reference. */
export interface SecretReference extends SecretQuery {
  /** The key path into a JSON object secret; absent: the whole secret. */
  key?: string[];
}

/** The result of {@link parseReference}. */
export type ParsedReference = { ok: true; ref: SecretReference } | { ok: false; message: string };

/** Stages OCI Vault knows. */
export const STAGES: readonly string[] = ["CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"];

/** `ocid1.vaultsecret.<realm>.<region>[.<future>].<unique>` */
const SECRET_OCID = /^ocid1\.vaultsecret\.[a-z0-9]+\.[a-z0-9-]*(\.[a-z0-9-]+)?\.[a-z0-9]{1,255}$/;
/** `ocid1.vault.<realm>.<region>[.<future>].<unique>` */
const VAULT_OCID = /^ocid1\.vault\.[a-z0-9]+\.[a-z0-9-]*(\.[a-z0-9-]+)?\.[a-z0-9]{1,255}$/;
/** OCI secret names: letters, digits, `-`, `_` and `.`. */
const SECRET_NAME = /^[A-Za-z0-9._-]{1,255}$/;
const VERSION = /^[1-9][0-9]{0,9}$/;

/**
 * Parses one reference. Never throws; a bad reference comes back with a message naming the
 * part that is wrong.
 *
 * @example
 * ```ts
 * const parsed = parseReference("name:db@ocid1.vault.oc1.iad.aaaa?stage=pending#users.app");
 * if (parsed.ok) {
 *   parsed.ref.secret; // { name: "db", vaultId: "ocid1.vault.oc1.iad.aaaa" }
 *   parsed.ref.version; // { stage: "PENDING" }
 *   parsed.ref.key; // ["users", "app"]
 * }
 * ```
 */
export function parseReference(text: string): ParsedReference {
  const hash = text.indexOf("#");
  const head = hash < 0 ? text : text.slice(0, hash);
  const question = head.indexOf("?");
  const where = question < 0 ? head : head.slice(0, question);

  const secret = parseLocator(where);
  if (typeof secret === "string") return { ok: false, message: secret };
  const ref: SecretReference = { secret };
  if (question >= 0) {
    const version = parseVersion(head.slice(question + 1));
    if (typeof version === "string") return { ok: false, message: version };
    ref.version = version;
  }
  if (hash >= 0) {
    const key = parseKeyPath(text.slice(hash + 1));
    if (typeof key === "string") return { ok: false, message: key };
    ref.key = key;
  }
  return { ok: true, ref };
}

function parseLocator(text: string): SecretLocator | string {
  if (text.startsWith("name:")) {
    const at = text.lastIndexOf("@");
    if (at < 0) {
      return `a reference by name needs its vault: name:SECRET_NAME@ocid1.vault.…`;
    }
    const name = text.slice("name:".length, at);
    const vaultId = text.slice(at + 1);
    if (!SECRET_NAME.test(name)) {
      return `secret name ${show(name)} must be 1 to 255 letters, digits, "-", "_" or "."`;
    }
    if (!VAULT_OCID.test(vaultId)) return `${show(vaultId)} is not a vault OCID (ocid1.vault.…)`;
    return { name, vaultId };
  }
  if (!SECRET_OCID.test(text)) {
    return `${
      show(text)
    } is not a secret OCID (ocid1.vaultsecret.…) or name:SECRET_NAME@VAULT_OCID`;
  }
  return { ocid: text };
}

function parseVersion(query: string): Selector | string {
  const eq = query.indexOf("=");
  const param = eq < 0 ? query : query.slice(0, eq);
  const value = eq < 0 ? "" : query.slice(eq + 1);
  if (param === "stage") {
    const stage = value.toUpperCase();
    if (STAGES.includes(stage)) return { stage };
    return `stage ${show(value)} must be one of ${STAGES.join(", ")}`;
  }
  if (param === "version") {
    if (VERSION.test(value)) return { versionNumber: Number(value) };
    return `version ${show(value)} must be a positive whole number`;
  }
  return `${show("?" + query)} must be ?stage=STAGE or ?version=N (one of them)`;
}

/**
 * Splits a key path at unescaped dots. `\.` is a dot inside a key, `\\` a backslash.
 *
 * @example
 * ```ts
 * parseKeyPath("tls\\.crt.pem"); // ["tls.crt", "pem"]
 * ```
 */
export function parseKeyPath(text: string): string[] | string {
  const keys: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      const next = text[i + 1];
      if (next !== "." && next !== "\\") {
        return `key path ${show(text)}: a backslash must be followed by "." or a backslash`;
      }
      current += next;
      i++;
    } else if (c === ".") {
      keys.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  keys.push(current);
  if (keys.some((k) => k === "")) {
    return `key path ${show(text)} has an empty key (write a dot inside a key as "\\.")`;
  }
  return keys;
}

/** Writes a key path back in the map's syntax. */
export function formatKeyPath(keys: readonly string[]): string {
  return keys.map((k) => k.replaceAll("\\", "\\\\").replaceAll(".", "\\.")).join(".");
}

/**
 * What one fetch is: the same secret at the same version, whatever key each line takes from
 * it. Lines with equal keys share one fetch. `defaultStage` is the run's `--stage`, so that
 * `REF` and `REF?stage=CURRENT` are one fetch when it is CURRENT.
 */
export function fetchKey(ref: SecretQuery, defaultVersion?: Selector): string {
  const secret = "ocid" in ref.secret
    ? ref.secret.ocid
    : `name:${ref.secret.name}@${ref.secret.vaultId}`;
  const version = ref.version ?? defaultVersion;
  const at = !version
    ? ""
    : "versionNumber" in version
    ? `?version=${version.versionNumber}`
    : `?stage=${version.stage}`;
  return secret + at;
}

/**
 * A reference in its canonical form: what `parseReference` reads back to the same value, with
 * the stage in capitals and the key path escaped one way.
 *
 * @example
 * ```ts
 * const parsed = parseReference("ocid1.vaultsecret.oc1.iad.aaaa?stage=pending#a\\.b");
 * if (parsed.ok) formatReference(parsed.ref); // "ocid1.vaultsecret.oc1.iad.aaaa?stage=PENDING#a\\.b"
 * ```
 */
export function formatReference(ref: SecretReference): string {
  return fetchKey(ref) + (ref.key ? `#${formatKeyPath(ref.key)}` : "");
}

/**
 * The reference of a map entry: its parsed `ref`, or, for a line that names a bare OCID (which
 * carries no `ref`), that OCID.
 */
export function referenceOf(entry: { secretId: string; ref?: SecretReference }): SecretReference {
  return entry.ref ?? { secret: { ocid: entry.secretId } };
}

/**
 * A test for "is this entry one of these secrets", for runs limited to some secrets: a name
 * selects an entry when it is the entry's reference (in any spelling that parses to the same
 * reference) or the OCID the entry's reference names.
 *
 * @example
 * ```ts
 * const selects = entrySelector(["ocid1.vaultsecret.oc1.iad.aaaa"]);
 * selects({ secretId: "ocid1.vaultsecret.oc1.iad.aaaa#password" }); // true
 * ```
 */
export function entrySelector(
  names: readonly string[],
): (entry: { secretId: string; ref?: SecretReference }) => boolean {
  const wanted = new Set(names.map((name) => {
    const parsed = parseReference(name);
    return parsed.ok ? formatReference(parsed.ref) : name;
  }));
  return (entry) => {
    const { secret } = referenceOf(entry);
    return wanted.has(entry.secretId) || ("ocid" in secret && wanted.has(secret.ocid));
  };
}

/** A part of a reference, quoted and capped, for messages. */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}
