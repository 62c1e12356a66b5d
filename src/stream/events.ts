/**
 * Which stream messages matter: an OCI Events message (CloudEvents 0.1 envelope) whose
 * `data.resourceId` is a secret in the map. Pure functions, no I/O.
 *
 * The vault's secret event types are not listed on a page we could find, so any event type is
 * accepted by default and `--event-types` narrows it (README, "Rotation events").
 *
 * @module
 */
import { z } from "zod";
import type { SecretLocator } from "../vault/types.ts";

/** The fields of an OCI event that the consumer reads. */
export interface SecretEvent {
  eventType: string;
  eventID: string;
  eventTime?: string;
  resourceId: string;
  /** The secret's name, when the event carries one. */
  resourceName?: string;
  compartmentId?: string;
}

/**
 * Which map secrets an event is about: the run selectors (an OCID, or a name reference in its
 * canonical form) of the entries it concerns; empty when none.
 */
export type SecretMatcher = (event: SecretEvent) => readonly string[];

/**
 * The matcher for a map: an entry that names its secret by OCID matches events whose
 * `data.resourceId` is that OCID; an entry that names it by name (`name:NAME@VAULT`) matches
 * events whose `data.resourceName` is NAME (events carry no vault OCID: a same-named secret in
 * another vault costs one fetch and no write).
 *
 * @example
 * ```ts
 * const match = secretMatcher([
 *   { secretId: "ocid1.vaultsecret.oc1.iad.aaaa" },
 *   { secretId: "name:db@ocid1.vault.oc1.iad.bbbb", ref: { secret: { name: "db", vaultId: "ocid1.vault.oc1.iad.bbbb" } } },
 * ]);
 * match({ eventType: "t", eventID: "e", resourceId: "ocid1.vaultsecret.oc1.iad.aaaa" });
 * // ["ocid1.vaultsecret.oc1.iad.aaaa"]
 * ```
 */
export function secretMatcher(
  entries: readonly { secretId: string; ref?: { secret: SecretLocator } }[],
): SecretMatcher {
  const byOcid = new Set<string>();
  const byName = new Map<string, Set<string>>();
  for (const entry of entries) {
    const secret = entry.ref?.secret ?? { ocid: entry.secretId };
    if ("ocid" in secret) byOcid.add(secret.ocid);
    else byName.set(secret.name, (byName.get(secret.name) ?? new Set()).add(entry.secretId));
  }
  return (event) => {
    const out = byOcid.has(event.resourceId) ? [event.resourceId] : [];
    if (event.resourceName) out.push(...(byName.get(event.resourceName) ?? []));
    return out;
  };
}

const envelopeSchema = z.object({
  eventType: z.string().min(1),
  eventID: z.string().min(1),
  eventTime: z.string().optional(),
  data: z.object({
    resourceId: z.string().min(1),
    resourceName: z.string().optional().catch(undefined),
    compartmentId: z.string().optional().catch(undefined),
  }),
});

/** What one message means for this host. */
export type EventDecision =
  | {
    action: "sync";
    /** The run selectors of the entries concerned. */
    secrets: readonly string[];
    resourceId: string;
    eventID: string;
    eventType: string;
  }
  | { action: "ignore"; reason: "not-an-event" | "other-secret" | "event-type" | "duplicate" };

/** Options for {@linkcode decideMessage}. */
export interface DecideOptions {
  /** Which map secrets an event is about (see {@linkcode secretMatcher}). */
  match: SecretMatcher;
  /** Accepted event types; empty or undefined: any. */
  eventTypes?: ReadonlySet<string>;
  /** Event IDs already acted on (a replayed or duplicated delivery). */
  seen?: { has(id: string): boolean };
}

/**
 * Parses a message value as an OCI event; null when it is not one (not JSON, or no
 * `eventType`, `eventID` or `data.resourceId`).
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode(JSON.stringify({
 *   eventType: "com.oraclecloud.vaultsecret.createsecretversion",
 *   eventID: "e1",
 *   data: { resourceId: "ocid1.vaultsecret.oc1..a" },
 * }));
 * parseEvent(bytes)?.resourceId; // "ocid1.vaultsecret.oc1..a"
 * ```
 */
export function parseEvent(value: Uint8Array): SecretEvent | null {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(value));
  } catch {
    return null;
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) return null;
  const e = parsed.data;
  return {
    eventType: e.eventType,
    eventID: e.eventID,
    eventTime: e.eventTime,
    resourceId: e.data.resourceId,
    resourceName: e.data.resourceName,
    compartmentId: e.data.compartmentId,
  };
}

/**
 * Decides what a message asks of this host: sync one secret, or nothing (and why).
 *
 * @example
 * ```ts
 * const value = new TextEncoder().encode(JSON.stringify({
 *   eventType: "x", eventID: "e1", data: { resourceId: "ocid1.vaultsecret.oc1..a" },
 * }));
 * const match = secretMatcher([{ secretId: "ocid1.vaultsecret.oc1..a" }]);
 * decideMessage(value, { match }).action; // "sync"
 * decideMessage(value, { match: () => [] }).action; // "ignore"
 * ```
 */
export function decideMessage(value: Uint8Array, opts: DecideOptions): EventDecision {
  const event = parseEvent(value);
  if (!event) return { action: "ignore", reason: "not-an-event" };
  const secrets = opts.match(event);
  if (secrets.length === 0) return { action: "ignore", reason: "other-secret" };
  if (opts.eventTypes && opts.eventTypes.size > 0 && !opts.eventTypes.has(event.eventType)) {
    return { action: "ignore", reason: "event-type" };
  }
  if (opts.seen?.has(event.eventID)) return { action: "ignore", reason: "duplicate" };
  return {
    action: "sync",
    secrets,
    resourceId: event.resourceId,
    eventID: event.eventID,
    eventType: event.eventType,
  };
}

/** A set that remembers the last `capacity` IDs added (oldest forgotten first). */
export class RecentIds {
  #ids = new Set<string>();
  constructor(readonly capacity = 10_000) {}
  has(id: string): boolean {
    return this.#ids.has(id);
  }
  add(id: string): void {
    this.#ids.delete(id);
    this.#ids.add(id);
    while (this.#ids.size > this.capacity) {
      this.#ids.delete(this.#ids.values().next().value as string);
    }
  }
}
