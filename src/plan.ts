/**
 * Decides what to reload after a run's writes: one action per target and reload, however many
 * of that target's secrets changed. Pure, so the rules are tested on plain data.
 *
 * @module
 */
import type { Entry, Reload, Target } from "./map.ts";

/** One reload to perform, with the changed paths that caused it (for messages). */
export interface ReloadAction {
  target: Target;
  reload: Reload;
  paths: string[];
}

/**
 * Plans the reloads for the entries whose file content changed, in map order. Entries without
 * a target or reload need none. A target named with two different signals gets both, once each.
 *
 * @example
 * ```ts
 * import { planReloads } from "./plan.ts";
 * import type { Entry } from "./map.ts";
 * const web = { target: { kind: "container", name: "web" }, reload: { kind: "signal", signal: "HUP" } } as const;
 * const a: Entry = { line: 1, secretId: "ocid1.vaultsecret.oc1..a", path: "/run/secrets/a", mode: 0o600, ...web };
 * const b: Entry = { line: 2, secretId: "ocid1.vaultsecret.oc1..b", path: "/run/secrets/b", mode: 0o600, ...web };
 * planReloads([a, b]); // one action for container "web", HUP, with both paths
 * ```
 */
export function planReloads(changed: readonly Entry[]): ReloadAction[] {
  const actions = new Map<string, ReloadAction>();
  for (const entry of changed) {
    if (!entry.target || !entry.reload) continue;
    const key = `${targetLabel(entry.target)}\0${reloadLabel(entry.reload)}`;
    const action = actions.get(key);
    if (action) {
      action.paths.push(entry.path);
    } else {
      actions.set(key, { target: entry.target, reload: entry.reload, paths: [entry.path] });
    }
  }
  return [...actions.values()];
}

/** How a target reads in messages and keys: `web`, `unit:nginx.service`, `pidfile:/run/x.pid`. */
export function targetLabel(target: Target): string {
  switch (target.kind) {
    case "container":
      return target.name;
    case "unit":
      return `unit:${target.name}`;
    case "pidfile":
      return `pidfile:${target.path}`;
  }
}

/** How a reload reads in messages: `signal HUP` or `recipe nginx`. */
export function reloadLabel(reload: Reload): string {
  return reload.kind === "signal" ? `signal ${reload.signal}` : `recipe ${reload.name}`;
}
