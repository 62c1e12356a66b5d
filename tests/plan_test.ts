import assert from "node:assert/strict";
import type { Entry } from "../src/map.ts";
import { planReloads } from "../src/plan.ts";

function entry(path: string, container?: string, signal?: string): Entry {
  return {
    line: 1,
    secretId: "ocid1.vaultsecret.oc1..a",
    path,
    mode: 0o600,
    ...(container ? { target: { kind: "container" as const, name: container } } : {}),
    ...(signal ? { reload: { kind: "signal" as const, signal } } : {}),
  };
}

Deno.test("planReloads() signals each container once per distinct signal, in map order", () => {
  const plan = planReloads([
    entry("/run/secrets/a", "web", "HUP"),
    entry("/run/secrets/b", "db", "USR1"),
    entry("/run/secrets/c", "web", "HUP"),
    entry("/run/secrets/d", "web", "USR2"),
  ]);
  assert.deepEqual(plan.map((a) => [a.target, a.reload, a.paths]), [
    [{ kind: "container", name: "web" }, { kind: "signal", signal: "HUP" }, [
      "/run/secrets/a",
      "/run/secrets/c",
    ]],
    [{ kind: "container", name: "db" }, { kind: "signal", signal: "USR1" }, ["/run/secrets/b"]],
    [{ kind: "container", name: "web" }, { kind: "signal", signal: "USR2" }, ["/run/secrets/d"]],
  ]);
});

Deno.test("planReloads() plans nothing for entries without a container or signal", () => {
  assert.deepEqual(planReloads([entry("/run/secrets/a"), entry("/run/secrets/b", "web")]), []);
  assert.deepEqual(planReloads([]), []);
});
