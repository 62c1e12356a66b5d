// The recipe schema, the built-in recipes (one shared table test runs every one of them through
// the same checks), user recipe files, and the map checks recipes add.
import assert from "node:assert/strict";
import { parseMap } from "../../src/map.ts";
import {
  BUILT_IN_RECIPES,
  builtInRegistry,
  loadRecipes,
  parseRecipe,
  type Recipe,
  RecipeError,
  recipeProblems,
  type RecipeRegistry,
} from "../../src/recipes.ts";
import { reloadSteps } from "../../src/reload/reloader.ts";
import { runRecipe } from "../../src/commands/recipe.ts";
import { RELOAD_SIGNALS } from "../../src/signals.ts";

const RECIPES_DIR = new URL("../../recipes/", import.meta.url);

async function throwsRecipeError(fn: () => unknown, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof RecipeError, `expected a RecipeError, got ${error}`);
    assert.match(error.message, pattern);
    return;
  }
  assert.fail("expected a RecipeError");
}

async function capture(options: Parameters<typeof runRecipe>[0]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runRecipe(options, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("every built-in recipe passes the same checks", async (t) => {
  const names = new Set<string>();
  const empty = await Deno.makeTempDir({ prefix: "secretsync-no-recipes-" });
  for (const spec of BUILT_IN_RECIPES) {
    await t.step(String(spec.name), async () => {
      const recipe = parseRecipe(spec, "test");
      names.add(recipe.name);

      // One module per recipe, named after it.
      const module = await import(new URL(`${recipe.name}.ts`, RECIPES_DIR).href);
      assert.equal(module.default, spec, `recipes/${recipe.name}.ts exports this recipe`);

      // Documented: notes, and sources that quote the server's own documentation.
      assert.ok(recipe.notes.length >= 2, "at least two notes");
      assert.ok(recipe.sources.length >= 1, "at least one source");
      for (const source of recipe.sources) {
        assert.match(source.url, /^https:\/\//);
        assert.ok(source.fact.length >= 20, `a real fact for ${source.url}`);
      }

      // Exactly one reload kind, and it never sends what it forbids.
      const kinds = [recipe.reload.signal, recipe.reload.exec, recipe.reload.none]
        .filter((k) => k !== undefined);
      assert.equal(kinds.length, 1);
      if (recipe.reload.signal) {
        assert.ok(RELOAD_SIGNALS.includes(recipe.reload.signal));
        assert.ok(!recipe.neverSignals.includes(recipe.reload.signal));
      }

      // A user could write the same recipe as JSON: the schema is one.
      assert.deepEqual(parseRecipe(JSON.parse(JSON.stringify(spec)), "json"), recipe);

      // Every kind of target gets a plan (or a clear refusal for exec on a pidfile).
      const reload = { kind: "recipe" as const, name: recipe.name };
      const container = reloadSteps({ kind: "container", name: "c" }, reload, recipe);
      const unit = reloadSteps({ kind: "unit", name: "u.service" }, reload, recipe);
      assert.ok(container.length >= 1 && unit.length >= 1);
      if (recipe.validate) {
        assert.deepEqual(container[0], { kind: "validate", command: recipe.validate });
      }
      if (recipe.reload.exec) {
        assert.throws(() => reloadSteps({ kind: "pidfile", path: "/p" }, reload, recipe));
      } else {
        assert.ok(reloadSteps({ kind: "pidfile", path: "/p" }, reload, recipe).length >= 1);
      }
      if (recipe.reload.none !== undefined) {
        assert.deepEqual(container.map((s) => s.kind), ["warn"], "a none recipe sends nothing");
      }

      // `recipe show` prints all of it.
      const shown = await capture({
        action: "show",
        name: recipe.name,
        json: false,
        recipesDir: "/nonexistent-dir-x",
      });
      assert.equal(shown.code, 2, "an explicit --recipes-dir must exist");
      const show = await capture({
        action: "show",
        name: recipe.name,
        json: false,
        recipesDir: empty,
      });
      assert.equal(show.code, 0, show.err);
      for (const source of recipe.sources) assert.ok(show.out.includes(source.url));
      assert.ok(show.out.includes(recipe.description));
    });
  }
  assert.deepEqual(
    [...names].sort(),
    ["dovecot", "haproxy", "nginx", "openldap", "postfix", "postgres", "traefik"],
  );
  await Deno.remove(empty);
});

Deno.test("the built-in recipes encode the facts the README promises", () => {
  const get = (name: string): Recipe => builtInRegistry().get(name)!.recipe;
  assert.deepEqual(get("nginx").validate, ["nginx", "-t"]);
  assert.equal(get("nginx").reload.signal, "HUP");
  assert.deepEqual(get("haproxy").validate, [
    "haproxy",
    "-c",
    "-f",
    "/usr/local/etc/haproxy/haproxy.cfg",
  ]);
  assert.equal(get("haproxy").reload.signal, "HUP");
  assert.deepEqual(get("postfix").reload.exec, ["postfix", "reload"]);
  assert.deepEqual(get("dovecot").reload.exec, ["doveadm", "reload"]);
  assert.equal(get("postgres").reload.signal, "HUP");
  // slapd shuts down on HUP; Traefik exits on it.
  for (const name of ["openldap", "traefik"]) {
    assert.equal(get(name).reload.signal, undefined);
    assert.ok(get(name).reload.none);
    assert.ok(get(name).neverSignals.includes("HUP"));
  }
});

Deno.test("parseRecipe() names every bad field", async (t) => {
  const good = {
    name: "myapp",
    description: "reloads on USR1",
    images: ["example/myapp"],
    reload: { signal: "sigusr1" },
  };
  await t.step("a minimal recipe gets defaults and a normalized signal", () => {
    assert.deepEqual(parseRecipe(good, "x"), {
      ...good,
      reload: { signal: "USR1" },
      neverSignals: [],
      notes: [],
      sources: [],
    });
  });
  const cases: [string, unknown, RegExp][] = [
    [
      "two reload kinds",
      { ...good, reload: { signal: "HUP", exec: ["x"] } },
      /field "reload": must have exactly one of/,
    ],
    ["no reload kind", { ...good, reload: {} }, /field "reload": must have exactly one/],
    [
      "an unknown signal",
      { ...good, reload: { signal: "KILL" } },
      /field "reload.signal": "KILL" is not a signal/,
    ],
    ["an empty command", { ...good, reload: { exec: [] } }, /field "reload.exec": a command needs/],
    ["a newline in an argument", { ...good, validate: ["a\nb"] }, /field "validate.0"/],
    [
      "a name that is a signal",
      { ...good, name: "hup" },
      /field "name": must not be a signal name/,
    ],
    ["an upper-case name", { ...good, name: "Nginx" }, /field "name"/],
    ["a typo'd field", { ...good, valdiate: ["x"] }, /valdiate/],
    [
      "a forbidden own signal",
      { ...good, neverSignals: ["USR1"] },
      /field "reload.signal": USR1 is in neverSignals/,
    ],
    ["no images", { ...good, images: [] }, /field "images"/],
    [
      "an http source",
      { ...good, sources: [{ url: "http://x", fact: "y" }] },
      /field "sources.0.url"/,
    ],
    ["not an object", [1, 2], /Cannot use x: field "\(the recipe\)"/],
  ];
  for (const [what, spec, pattern] of cases) {
    await t.step(what, () => throwsRecipeError(() => parseRecipe(spec, "x"), pattern));
  }
});

Deno.test("loadRecipes() reads user files: adds, overrides by name, and rejects what is unsafe", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-recipes-" });
  const write = (name: string, value: unknown, mode = 0o644) =>
    Deno.writeTextFile(
      `${dir}/${name}`,
      typeof value === "string" ? value : JSON.stringify(value),
      { mode },
    )
      .then(() => Deno.chmod(`${dir}/${name}`, mode));
  const mine = {
    name: "mine",
    description: "custom",
    images: ["example/mine"],
    reload: { exec: ["mine", "reload"] },
  };
  try {
    await t.step("missing directory: an error only when it was named", async () => {
      assert.equal((await loadRecipes({ dir: `${dir}/nope` })).names().length, 7);
      await throwsRecipeError(
        () => loadRecipes({ dir: `${dir}/nope`, required: true }),
        /Cannot read recipes directory .*\/nope: it does not exist/,
      );
    });
    await t.step("a new recipe and an override", async () => {
      await write("mine.json", mine);
      await write("z-nginx.json", { ...mine, name: "nginx", description: "override" });
      await write("README.md", "not a recipe");
      await write(".hidden.json", "{ not json");
      const registry = await loadRecipes({ dir });
      assert.deepEqual(registry.get("mine")?.source, {
        kind: "file",
        path: `${dir}/mine.json`,
        overrides: false,
      });
      assert.deepEqual(registry.get("nginx")?.source, {
        kind: "file",
        path: `${dir}/z-nginx.json`,
        overrides: true,
      });
      assert.equal(registry.get("nginx")?.recipe.description, "override");
      assert.equal(registry.get("haproxy")?.source.kind, "built-in");
    });
    await t.step("two files defining one name", async () => {
      await write("other.json", mine);
      await throwsRecipeError(
        () => loadRecipes({ dir }),
        /other.json: recipe "mine" is already defined in .*mine.json/,
      );
      await Deno.remove(`${dir}/other.json`);
    });
    await t.step("a bad file names the file and the field", async () => {
      await write("bad.json", { ...mine, name: "bad", reload: { signal: "BOOM" } });
      await throwsRecipeError(
        () => loadRecipes({ dir }),
        /Cannot use recipe file .*\/bad.json: field "reload.signal"/,
      );
      await write("bad.json", "{ nope");
      await throwsRecipeError(() => loadRecipes({ dir }), /bad.json: not valid JSON/);
      await Deno.remove(`${dir}/bad.json`);
    });
    await t.step("a file or directory others can write is refused", async () => {
      await write("mine.json", mine, 0o666);
      await throwsRecipeError(
        () => loadRecipes({ dir }),
        /mine.json: mode 0666 lets group or others write it/,
      );
      await write("mine.json", mine, 0o644);
      await Deno.chmod(dir, 0o777);
      await throwsRecipeError(() => loadRecipes({ dir }), /recipes directory .*: mode 0777/);
      await Deno.chmod(dir, 0o755);
    });
    await t.step(
      "`recipe list` shows the source; `recipe show` of an unknown name is exit 2",
      async () => {
        const list = await capture({ action: "list", json: false, recipesDir: dir });
        assert.equal(list.code, 0);
        assert.match(list.out, /^mine +exec mine reload +- +file .*mine.json$/m);
        assert.match(list.out, /^nginx .*\(overrides built-in\)$/m);
        const missing = await capture({
          action: "show",
          name: "nope",
          json: false,
          recipesDir: dir,
        });
        assert.equal(missing.code, 2);
        assert.match(missing.err, /no recipe "nope"; see `secretsync recipe list`/);
        const json = await capture({ action: "show", name: "mine", json: true, recipesDir: dir });
        assert.equal(
          JSON.parse(json.out).targets["pidfile:/PATH"][0].startsWith("cannot be used"),
          true,
        );
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recipeProblems() rejects what a recipe cannot honour before anything is fetched", () => {
  const registry: RecipeRegistry = builtInRegistry();
  const problems = (lines: string[]) => {
    const map = parseMap(lines.join("\n"), { roots: ["/run/secrets"], recipes: registry.names() });
    assert.ok(map.ok, JSON.stringify(map));
    return recipeProblems(map.ok ? map.entries : [], registry).map((p) =>
      `${p.line}: ${p.message}`
    );
  };
  const id = "ocid1.vaultsecret.oc1..aaaa";
  assert.deepEqual(
    problems([`${id},/run/secrets/a,0600,web,nginx`, `${id},/run/secrets/b,0600,web,USR1`]),
    [],
  );
  assert.deepEqual(
    problems([`${id},/run/secrets/a,0600,ldap,openldap`, `${id},/run/secrets/b,0600,ldap,SIGHUP`]),
    [
      '2: HUP must not be sent to ldap: line 1 reloads it with recipe "openldap", which never sends HUP (see `secretsync recipe show openldap`)',
    ],
  );
  // A recipe's own signal counts too: nginx's HUP on a container another line calls openldap.
  assert.match(
    problems([`${id},/run/secrets/a,0600,x,nginx`, `${id},/run/secrets/b,0600,x,openldap`])[0],
    /^1: HUP must not be sent to x/,
  );
  assert.match(
    problems([`${id},/run/secrets/a,0600,pidfile:/run/p.pid,dovecot`])[0],
    /^1: recipe "dovecot" reloads by running a command/,
  );
  assert.deepEqual(problems([`${id},/run/secrets/a,0600,pidfile:/run/p.pid,postgres`]), []);
});

Deno.test("issue 8 #10: KILL, STOP, TERM, INT and QUIT are refused as reloads unless allowed", () => {
  const registry: RecipeRegistry = builtInRegistry();
  const id = "ocid1.vaultsecret.oc1..aaaa";
  for (const signal of ["KILL", "sigstop", "TERM", "INT", "QUIT"]) {
    for (const target of ["web", "unit:web.service", "pidfile:/run/web.pid"]) {
      const map = parseMap(`${id},/run/secrets/a,0600,${target},${signal}`, {
        roots: ["/run/secrets"],
      });
      assert.ok(map.ok);
      const problems = recipeProblems(map.entries, registry);
      assert.equal(problems.length, 1, `${target} ${signal}`);
      assert.match(
        problems[0].message,
        /stops a process, it does not reload it; give --allow-stop-signals/,
      );
      assert.deepEqual(recipeProblems(map.entries, registry, { allowStopSignals: true }), []);
    }
  }
});
