import assert from "node:assert/strict";
import { parseWatchArgs } from "../../src/commands/watch.ts";
import { parseSyncArgs, syncCommand } from "../../src/commands/sync.ts";
import { UsageError } from "../../src/commands/usage.ts";
import { parseStreamFlags } from "../../src/stream/flags.ts";
import { readStreamStatus } from "../../src/stream/watch.ts";

const STREAM = "ocid1.stream.oc1.iad.amaaaaaastream";

Deno.test("parseWatchArgs() takes --interval and the stream flags, and gives the rest to sync's parser", () => {
  const options = parseWatchArgs(
    [
      "--map",
      "/etc/oci-secretsync/map.csv",
      "--stream",
      STREAM,
      "--stream-endpoint=https://cell-1.streaming.us-ashburn-1.oci.oraclecloud.com",
      "--poll",
      "10s",
      "--spread",
      "0",
      "--interval",
      "1h",
      "--event-types",
      "a.b, c.d,",
      "--json",
    ],
    parseSyncArgs,
    syncCommand().options,
  );
  assert.equal(options.intervalMs, 3_600_000);
  assert.deepEqual(options.stream, {
    streamId: STREAM,
    endpoint: "https://cell-1.streaming.us-ashburn-1.oci.oraclecloud.com",
    pollMs: 10_000,
    spreadMs: 0,
    fallbackIntervalMs: 900_000,
    outageGraceMs: 180_000,
    eventTypes: ["a.b", "c.d"],
  });
  assert.deepEqual(
    options.run,
    parseSyncArgs(["--map", "/etc/oci-secretsync/map.csv", "--json"]),
    "every other flag is sync's, parsed by sync",
  );
  assert.equal(parseWatchArgs([], parseSyncArgs, syncCommand().options).stream, undefined);
});

Deno.test("parseStreamFlags() names the flag and the value it refuses", () => {
  const base = { stream: STREAM, poll: "30s", spread: "30s", fallbackInterval: "15m" };
  const refused = (raw: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => parseStreamFlags(raw),
      (e) => e instanceof RangeError && pattern.test(e.message),
    );
  refused(
    { ...base, stream: "ocid1.vaultsecret.oc1.iad.x" },
    /--stream "ocid1.vaultsecret.oc1.iad.x" must be a stream OCID/,
  );
  refused({ ...base, streamEndpoint: "ftp://x" }, /--stream-endpoint "ftp:\/\/x"/);
  refused({ ...base, poll: "soon" }, /--poll "soon" must be a duration/);
  refused({ ...base, poll: "5m" }, /--poll "5m" must be under 5m \(cursors expire/);
  refused({ ...base, fallbackInterval: "10ms" }, /--fallback-interval "10ms"/);
  assert.throws(
    () => parseWatchArgs(["--stream", "nope"], parseSyncArgs, syncCommand().options),
    (e) => e instanceof UsageError && /--stream "nope"/.test(e.message),
  );
});

Deno.test("readStreamStatus() reads what the watch wrote, and says when it cannot", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(await readStreamStatus(dir), {});
    await Deno.writeTextFile(`${dir}/stream.json`, "{not json");
    assert.match((await readStreamStatus(dir)).warning ?? "", /Ignoring damaged/);
    await Deno.writeTextFile(
      `${dir}/stream.json`,
      JSON.stringify({ version: 1, streamId: STREAM, state: "reading", offset: 4 }),
    );
    assert.equal((await readStreamStatus(dir)).status?.offset, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
