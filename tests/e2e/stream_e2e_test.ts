/**
 * `secretsync watch --stream` end to end: the CLI as a subprocess with the binary's permissions,
 * against the stand-in's vault and stream (loopback only). A rotation in the stand-in puts its
 * event on the stream, as an OCI Events rule would.
 *
 * Takes about 20 s: short polls (1 s), spreads (1 s) and outage times (2 s) stand in for the
 * defaults.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import {
  assertNoLeak,
  cli,
  instancePrincipalArgs,
  makeWorkspace,
  runCli,
  secretValue,
  type Workspace,
} from "./harness.ts";
import type { OciStandIn } from "../oci/standin.ts";

const A = "ocid1.vaultsecret.oc1.iad.streame2ea";
const OTHER = "ocid1.vaultsecret.oc1.iad.streame2eother";
const POLL_MS = 1000;
const SPREAD_MS = 1000;

/** Where the watch writes its Prometheus text file. */
function metricsFile(ws: Workspace): string {
  return `${ws.dir}/textfile/secretsync.prom`;
}

/** A running watch process and everything it printed so far. */
interface Watcher {
  output(): string;
  kill(signal: Deno.Signal): Promise<number>;
}

function startWatch(oci: OciStandIn, ws: Workspace, streamId: string): Watcher {
  const child = cli([
    "watch",
    ...ws.args(),
    ...instancePrincipalArgs(oci),
    "--stream",
    streamId,
    "--stream-endpoint",
    oci.streamEndpoint,
    "--poll",
    `${POLL_MS}ms`,
    "--spread",
    `${SPREAD_MS}ms`,
    "--interval",
    "1h",
    "--fallback-interval",
    "2s",
    "--stream-outage",
    "2s",
    "--metrics-file",
    metricsFile(ws),
  ]).spawn();
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  return {
    output: () => text,
    async kill(signal) {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
      const { code } = await child.status;
      await drained;
      return code;
    },
  };
}

async function waitFor(what: string, ok: () => Promise<boolean> | boolean, ms: number) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const read = (path: string) => Deno.readTextFile(path).catch(() => "");
const totalSecretCalls = (oci: OciStandIn) =>
  [...oci.calls.secrets.values()].reduce((a, b) => a + b, 0);

Deno.test("watch --stream: rotations arrive within poll + spread + 1 s; unrelated and duplicate events cost nothing; restart resumes; outage falls back", async (t) => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  const streamId = oci.createStream();
  oci.routeSecretEvents(streamId);
  const path = `${ws.root}/a.txt`;
  const values: string[] = [];
  const rotate = (id: string) => {
    const v = secretValue("stream");
    values.push(v);
    oci.setSecret(id, v);
    return v;
  };
  await ws.writeMap([`${A},${path},0600`]);
  await Deno.mkdir(`${ws.dir}/textfile`);
  let watcher: Watcher | undefined;
  let outputs = "";
  try {
    const v1 = rotate(A);
    rotate(OTHER);
    watcher = startWatch(oci, ws, streamId);
    await waitFor("the first full sync", async () => (await read(path)) === v1, 15_000);

    await t.step("a rotation reaches the file within poll + spread + 1 s", async () => {
      // Let the watcher reach its polling rhythm (cursor at LATEST made, full sync done).
      await waitFor("the stream read", () => oci.calls.streams.gets >= 2, 10_000);
      const federations = oci.calls.federation;
      for (let i = 0; i < 3; i++) {
        const v = rotate(A);
        const t0 = Date.now();
        await waitFor("the rotated value", async () => (await read(path)) === v, 10_000);
        const took = Date.now() - t0;
        assert.ok(took <= POLL_MS + SPREAD_MS + 1000, `took ${took} ms`);
      }
      assert.equal(oci.calls.federation, federations, "one vault client: no token per event");
    });

    await t.step("an unrelated secret's event causes no vault call", async () => {
      const before = totalSecretCalls(oci);
      const gets = oci.calls.streams.gets;
      rotate(OTHER);
      await waitFor("two more reads", () => oci.calls.streams.gets >= gets + 3, 10_000);
      await new Promise((r) => setTimeout(r, SPREAD_MS + 200));
      assert.equal(totalSecretCalls(oci), before);
    });

    await t.step(
      "a duplicate event causes no write, a replayed one one fetch and no write",
      async () => {
        const message = oci.streamMessages(streamId).findLast((m) =>
          new TextDecoder().decode(m.value).includes(A)
        )!;
        const inode = (await Deno.stat(path)).ino;
        const updatedBefore = watcher!.output().split("Updated ").length;
        const callsBefore = oci.secretCalls(A);
        oci.putMessage(streamId, message.value); // the same eventID again
        const gets = oci.calls.streams.gets;
        await waitFor("reads", () => oci.calls.streams.gets >= gets + 3, 10_000);
        await new Promise((r) => setTimeout(r, SPREAD_MS + 200));
        assert.equal(oci.secretCalls(A), callsBefore, "same eventID: not even a fetch");
        oci.emitSecretEvent(streamId, A); // a new event for the version already in place
        await waitFor("the fetch", () => oci.secretCalls(A) === callsBefore + 1, 10_000);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal((await Deno.stat(path)).ino, inode, "the file was not rewritten");
        assert.equal(watcher!.output().split("Updated ").length, updatedBefore);
      },
    );

    await t.step("a killed watcher resumes from its offset and misses nothing", async () => {
      const saved = JSON.parse(await Deno.readTextFile(`${ws.stateDir}/stream-offset.json`));
      assert.equal(saved.streamId, streamId);
      outputs += await watcher!.kill("SIGKILL");
      outputs += watcher!.output();
      const missed = rotate(A); // while no watcher runs
      const missedAt = oci.streamMessages(streamId).at(-1)!.offset;
      const cursorsBefore = oci.calls.streams.created.length;
      watcher = startWatch(oci, ws, streamId);
      await waitFor("the missed rotation", async () => (await read(path)) === missed, 10_000);
      assert.match(
        watcher.output(),
        new RegExp(`Resuming ${streamId} after offset ${saved.offset}`),
      );
      // The watch's start cycle (a full sync) may write the missed value before the stream's
      // cursor exists: wait for the cursor itself.
      await waitFor(
        "the resumed cursor",
        () => oci.calls.streams.created.length > cursorsBefore,
        10_000,
      );
      // The cursor starts right after the saved offset, and the missed event is read from it.
      assert.deepEqual(oci.calls.streams.created.at(-1), {
        type: "AFTER_OFFSET",
        offset: saved.offset,
      });
      await waitFor(
        "the missed event",
        () => watcher!.output().includes(`for ${A} at offset ${missedAt}`),
        10_000,
      );
      // And for its sync (a fetch that finds the file in line): an event still pending would
      // fetch whatever is current when it is applied, late, and blur the next step.
      await waitFor("the missed event's sync", () => {
        const out = watcher!.output();
        const read = out.indexOf(`for ${A} at offset ${missedAt}`);
        return read >= 0 && /Cycle \d+ \(for 1 secret/.test(out.slice(read));
      }, 10_000);
    });

    await t.step("a stream outage falls back to the fallback interval and recovers", async () => {
      oci.fault({ path: "streams" }, { status: 503 });
      await waitFor(
        "the outage to be noticed",
        () => watcher!.output().includes("Cannot read stream"),
        10_000,
      );
      const during = rotate(A);
      // Fallback: declared after 2 s, full sync every 2 s.
      await waitFor("a fallback full sync", async () => (await read(path)) === during, 10_000);
      // Announced in the tick that starts the first fallback sync, or the next one.
      await waitFor(
        "the fallback announcement",
        () => /full sync every 2 s until it is back/.test(watcher!.output()),
        5_000,
      );
      oci.clearFaults();
      await waitFor("recovery", () => watcher!.output().includes("reachable again"), 10_000);
      // stream.json is written at the end of the step that logged the recovery.
      await waitFor("stream.json to say reading", async () => {
        const status = JSON.parse(await read(`${ws.stateDir}/stream.json`) || "{}");
        return status.state === "reading" && status.streamId === streamId;
      }, 5000);
      // `status` and the metrics file show the stream as up again, with its offset and lag.
      await waitFor("the metrics file to say the stream is up", async () => {
        const text = await read(metricsFile(ws));
        return text.includes(`secretsync_stream_up{stream="${streamId}"} 1`);
      }, 5000);
      const prom = await read(metricsFile(ws));
      assert.match(prom, new RegExp(`secretsync_stream_offset\\{stream="${streamId}"\\} \\d+`));
      assert.match(prom, /secretsync_stream_lag_seconds\{stream="[^"]+"\} [\d.e-]+/);
      assert.match(prom, /secretsync_stream_last_event_timestamp_seconds\{/);
      const status = await runCli(["status", "--state-dir", ws.stateDir, "--json", "--no-timer"]);
      const stream = JSON.parse(status.stdout).stream;
      assert.equal(stream.streamId, streamId);
      assert.equal(stream.state, "reading");
      assert.equal(stream.reachable, true);
      assert.equal(stream.unreachableSince, null);
      assert.equal(typeof stream.offset, "number");
      assert.equal(typeof stream.lastEvent?.offset, "number");
      const text = await runCli(["status", "--state-dir", ws.stateDir, "--no-timer"]);
      assert.match(
        text.stdout,
        new RegExp(
          `Stream: +${streamId.replaceAll(".", "\\.")} \\(partition 0\\): reading; offset \\d+`,
        ),
      );
      outputs += status.stdout + status.stderr + text.stdout + text.stderr + prom;
      const after = rotate(A);
      const t0 = Date.now();
      await waitFor("a rotation after recovery", async () => (await read(path)) === after, 10_000);
      assert.ok(Date.now() - t0 <= POLL_MS + SPREAD_MS + 1000);
    });

    await t.step("SIGTERM stops the watch with exit code 0", async () => {
      assert.equal(await watcher!.kill("SIGTERM"), 0);
      outputs += watcher!.output();
      watcher = undefined;
      assert.equal(oci.calls.rejected, 0, oci.rejections.join("\n"));
    });
  } finally {
    if (watcher) {
      await watcher.kill("SIGKILL");
      outputs += watcher.output();
    }
    assertNoLeak(values, outputs);
    await oci.close();
    await ws.cleanup();
  }
});
