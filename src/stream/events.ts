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

/** The fields of an OCI event that the consumer reads. */
export interface SecretEvent {
  eventType: string;
  eventID: string;
  eventTime?: string;
  resourceId: string;
  compartmentId?: string;
}

const envelopeSchema = z.object({
  eventType: z.string().min(1),
  eventID: z.string().min(1),
  eventTime: z.string().optional(),
  data: z.object({
    resourceId: z.string().min(1),
    compartmentId: z.string().optional(),
  }),
});

/** What one message means for this host. */
export type EventDecision =
  | { action: "sync"; secretId: string; eventID: string; eventType: string }
  | { action: "ignore"; reason: "not-an-event" | "other-secret" | "event-type" | "duplicate" };

/** Options for {@linkcode decideMessage}. */
export interface DecideOptions {
  /** The secret OCIDs in the map. */
  secretIds: ReadonlySet<string>;
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
 * decideMessage(value, { secretIds: new Set(["ocid1.vaultsecret.oc1..a"]) }).action; // "sync"
 * decideMessage(value, { secretIds: new Set() }).action; // "ignore"
 * ```
 */
export function decideMessage(value: Uint8Array, opts: DecideOptions): EventDecision {
  const event = parseEvent(value);
  if (!event) return { action: "ignore", reason: "not-an-event" };
  if (!opts.secretIds.has(event.resourceId)) return { action: "ignore", reason: "other-secret" };
  if (opts.eventTypes && opts.eventTypes.size > 0 && !opts.eventTypes.has(event.eventType)) {
    return { action: "ignore", reason: "event-type" };
  }
  if (opts.seen?.has(event.eventID)) return { action: "ignore", reason: "duplicate" };
  return {
    action: "sync",
    secretId: event.resourceId,
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
