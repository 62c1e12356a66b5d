/**
 * The project's tasks start `deno` with its update check off: `deno run` asks DNS for
 * dl.deno.land once a process has lived half a second, and these machines may reach loopback
 * only. (The CLI runs the tests start get it from `cliCommand`, see loopback_e2e_test.ts.)
 */
import assert from "node:assert/strict";

Deno.test("every task turns off Deno's update check before it starts deno", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const tasks = Object.entries(config.tasks);
  assert.ok(tasks.length > 0, "deno.json has no tasks");
  const without = tasks
    .filter(([, command]) => /\bdeno\b/.test(command))
    .filter(([, command]) => !command.startsWith("export DENO_NO_UPDATE_CHECK=1 && "))
    .map(([name]) => name);
  assert.deepEqual(without, []);
});
