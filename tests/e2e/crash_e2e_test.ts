/**
 * Crash safety: `kill -9` the CLI at random moments while it rewrites files, many times over.
 * Every target file must always hold exactly the old or the new value, never a partial or
 * empty file; the next run removes the temp files of the dead ones.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { cli, instancePrincipalArgs, makeWorkspace, runCli } from "./harness.ts";
const KILLS = Number(Deno.env.get("CRASH_KILLS") ?? 60);
// More files than the run writes at once (16): with fewer, every rename lands in one burst and a
// kill between two renames, which this test must see, is rare.
const FILES = 64;

Deno.test(`kill -9 at ${KILLS} random moments never leaves a partial file`, async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const ids = Array.from(
      { length: FILES },
      (_, i) => `ocid1.vaultsecret.oc1.iad.amaaaaaacrash${i}`,
    );
    // Large values make each write take long enough to be interrupted in the middle.
    const valueOf = (generation: number, i: number) =>
      `${generation}:${i}:`.padEnd(48 * 1024, String(generation % 10));
    let generation = 0;
    ids.forEach((id, i) => oci.setSecret(id, valueOf(generation, i)));
    await ws.writeMap(ids.map((id, i) => `${id},${ws.root}/s${i},0600`));
    const args = ["sync", ...ws.args(), ...instancePrincipalArgs(oci)];
    const timed = Date.now();
    assert.equal((await runCli(args)).code, 3);
    // Kills spread over the later 70% of a whole run, where the fetches and writes happen.
    const runMs = Date.now() - timed;

    const seed = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 100000);
    console.log(`crash seed: ${seed} (replay with CRASH_SEED=${seed})`);
    let state = seed;
    const rand = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let killedMidRun = 0;
    let killedBetweenFiles = 0;
    let tempSeen = 0;

    // Until KILLS kills have landed mid-run; a run that ended before its kill does not count.
    let kill = 0;
    for (; killedMidRun < KILLS && kill < 3 * KILLS; kill++) {
      generation++;
      ids.forEach((id, i) => oci.setSecret(id, valueOf(generation, i)));
      const child = cli(args, { stdout: "null", stderr: "null" }).spawn();
      if (kill % 2 === 0) {
        await new Promise((r) => setTimeout(r, runMs * (0.3 + 0.7 * rand())));
      } else {
        // Every other kill aims at the writes: wait for the first file's rename, then strike.
        const first = Deno.statSync(`${ws.root}/s0`).ino;
        const until = Date.now() + 2 * runMs;
        while (Deno.statSync(`${ws.root}/s0`).ino === first && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 1));
        }
        await new Promise((r) => setTimeout(r, rand() * 15));
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // It finished before the kill: still a valid sample of "old or new".
      }
      const status = await child.status;
      if (status.signal === "SIGKILL") killedMidRun++;

      let renewed = 0;
      for (let i = 0; i < FILES; i++) {
        const content = await Deno.readTextFile(`${ws.root}/s${i}`);
        if (content === valueOf(generation, i)) renewed++;
        // The new value, or an old one: a run killed before this file's rename keeps the last.
        const whole = Array.from({ length: generation + 1 }, (_, g) => valueOf(g, i)).includes(
          content,
        );
        assert.ok(
          whole,
          `kill ${kill}: s${i} holds a partial or foreign value (${content.length} bytes)`,
        );
      }
      if (renewed > 0 && renewed < FILES) killedBetweenFiles++;
      tempSeen += [...Deno.readDirSync(ws.root)].filter((e) => e.name.endsWith(".tmp")).length;
    }
    console.log(
      `crash: ${kill} runs (a whole run takes ${runMs} ms), ${killedMidRun} killed mid-run, ` +
        `${killedBetweenFiles} while rewriting files, ${tempSeen} temp files left by them`,
    );
    assert.ok(killedMidRun >= KILLS, `only ${killedMidRun} kills landed mid-run`);
    assert.ok(killedBetweenFiles > 0, "no kill landed while files were being rewritten");

    const final = await runCli(args);
    assert.ok([0, 3].includes(final.code), final.stderr);
    const names = [...Deno.readDirSync(ws.root)].map((e) => e.name);
    assert.deepEqual(
      names.filter((n) => n.endsWith(".tmp")),
      [],
      "the next run removed every temp file",
    );
    for (let i = 0; i < FILES; i++) {
      assert.equal(await Deno.readTextFile(`${ws.root}/s${i}`), valueOf(generation, i));
    }
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
