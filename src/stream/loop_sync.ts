/**
 * A stream watch's `sync` through a watch loop that runs cycles one at a time (`trigger(ids)`
 * asks for a cycle of some secrets, `trigger()` for a full one, and requests made while a
 * cycle runs are merged). The stream watch must know when the entries of its events are
 * applied, to save its offset only then; the loop only takes requests. This bridge turns a
 * request into a promise, settled when a cycle that covers it ends.
 *
 * The watch command calls `cycleEnded(secretIds, code)` after each cycle, and `cancel()` when it
 * stops.
 *
 * @example
 * ```ts
 * const loop = { trigger(_ids?: readonly string[]) {} };
 * const bridge = createLoopSync(loop);
 * const applied = bridge.sync(["ocid1.vaultsecret.oc1.iad.a"]);
 * bridge.cycleEnded(["ocid1.vaultsecret.oc1.iad.a"], 3);
 * await applied; // true
 * ```
 *
 * @module
 */

/** What the bridge needs of the loop. */
export interface LoopTrigger {
  trigger(secretIds?: readonly string[]): void;
}

/** The bridge; see the module doc. */
export interface LoopSync {
  /** Asks the loop for a cycle; true when a cycle covering it ended with exit 0 or 3. */
  sync(secrets?: readonly string[]): Promise<boolean>;
  /** A cycle ended: of these secrets, or a full one (undefined). */
  cycleEnded(secretIds: readonly string[] | undefined, code: number): void;
  /** The loop stopped: every open request settles false. */
  cancel(): void;
}

/** Creates the bridge. */
export function createLoopSync(loop: LoopTrigger): LoopSync {
  const waiting = new Set<{ secrets?: readonly string[]; resolve(ok: boolean): void }>();
  let cancelled = false;
  return {
    sync(secrets) {
      if (cancelled) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        waiting.add({ secrets, resolve });
        loop.trigger(secrets);
      });
    },
    cycleEnded(secretIds, code) {
      const ok = code === 0 || code === 3;
      const ran = secretIds === undefined ? undefined : new Set(secretIds);
      for (const w of waiting) {
        // A full cycle covers every request; a partial one those whose secrets all ran.
        const covered = ran === undefined ||
          (w.secrets !== undefined && w.secrets.every((s) => ran.has(s)));
        if (!covered) continue;
        waiting.delete(w);
        w.resolve(ok);
      }
    },
    cancel() {
      cancelled = true;
      for (const w of waiting) w.resolve(false);
      waiting.clear();
    },
  };
}
