/**
 * The streaming client against the stand-in's Streaming endpoints (real signatures), and the
 * stand-in's streaming model itself: cursor types, `opc-next-cursor`, expiry, the read-rate
 * limit, PutMessages, and the event a rotation puts on the stream.
 */
import assert from "node:assert/strict";
import { startOciStandIn } from "../oci/standin.ts";
import { signRequest } from "../oci/_signature.ts";
import { openStreamReader, StreamError } from "../../src/stream/client.ts";
import { parseEvent } from "../../src/stream/events.ts";

const SECRET = "ocid1.vaultsecret.oc1.iad.streamclient";

Deno.test("openStreamReader() reads the stand-in's stream with instance-principal signatures", async (t) => {
  const oci = await startOciStandIn({ streams: { cursorTtlMs: 300 } });
  const streamId = oci.createStream();
  const reader = await openStreamReader({
    auth: { mode: "instance_principal", imdsUrl: oci.imdsUrl, authEndpoint: oci.authEndpoint },
    streamId,
    endpoint: oci.streamEndpoint,
    timeoutMs: 5000,
    limit: 2,
  });
  try {
    await t.step("LATEST starts after what is there; the next cursor goes on", async () => {
      oci.putMessage(streamId, "before");
      const cursor = await reader.createCursor({ type: "LATEST" });
      const empty = await reader.getMessages(cursor);
      assert.deepEqual(empty.messages, []);
      oci.routeSecretEvents(streamId);
      oci.setSecret(SECRET, "value-1"); // a rotation puts its event on the stream
      const batch = await reader.getMessages(empty.nextCursor);
      assert.equal(batch.messages.length, 1);
      assert.equal(batch.messages[0].offset, 1);
      const event = parseEvent(batch.messages[0].value);
      assert.equal(event?.resourceId, SECRET);
      assert.equal(event?.eventType, "com.oraclecloud.vaultsecret.createsecretversion");
      assert.ok(Number.isFinite(batch.messages[0].timestamp));
      assert.deepEqual((await reader.getMessages(batch.nextCursor)).messages, []);
    });

    await t.step("TRIM_HORIZON, AT_OFFSET and AFTER_OFFSET; limit pages", async () => {
      oci.putMessage(streamId, "third");
      const all = await reader.getMessages(await reader.createCursor({ type: "TRIM_HORIZON" }));
      assert.deepEqual(all.messages.map((m) => m.offset), [0, 1], "limit 2");
      const rest = await reader.getMessages(all.nextCursor);
      assert.deepEqual(rest.messages.map((m) => new TextDecoder().decode(m.value)), ["third"]);
      const at = await reader.getMessages(
        await reader.createCursor({ type: "AT_OFFSET", offset: 1 }),
      );
      assert.deepEqual(at.messages.map((m) => m.offset), [1, 2]);
      const after = await reader.getMessages(
        await reader.createCursor({ type: "AFTER_OFFSET", offset: 1 }),
      );
      assert.deepEqual(after.messages.map((m) => m.offset), [2]);
    });

    await t.step("an offset beyond the stream or trimmed away is a cursor error", async () => {
      await assert.rejects(
        reader.createCursor({ type: "AFTER_OFFSET", offset: 50 }),
        (e) => e instanceof StreamError && e.kind === "cursor" && e.status === 400,
      );
      oci.trimStream(streamId, 1);
      await assert.rejects(
        reader.createCursor({ type: "AT_OFFSET", offset: 0 }),
        (e) => e instanceof StreamError && e.kind === "cursor",
      );
    });

    await t.step("a cursor expires (here after 300 ms)", async () => {
      const cursor = await reader.createCursor({ type: "LATEST" });
      await new Promise((r) => setTimeout(r, 400));
      const before = oci.calls.streams.expired;
      await assert.rejects(
        reader.getMessages(cursor),
        (e) => e instanceof StreamError && e.kind === "cursor" && /expired/.test(e.message),
      );
      assert.equal(oci.calls.streams.expired, before + 1);
    });

    await t.step("more than 5 GET/s from one consumer is a 429", async () => {
      await new Promise((r) => setTimeout(r, 1100)); // a fresh one-second window
      let cursor = await reader.createCursor({ type: "LATEST" });
      const outcomes: string[] = [];
      for (let i = 0; i < 7; i++) {
        try {
          cursor = (await reader.getMessages(cursor)).nextCursor;
          outcomes.push("ok");
        } catch (e) {
          outcomes.push(e instanceof StreamError ? e.kind : String(e));
        }
      }
      assert.deepEqual(outcomes.slice(0, 5), ["ok", "ok", "ok", "ok", "ok"]);
      assert.ok(outcomes.slice(5).every((o) => o === "throttled"), outcomes.join());
      // Another consumer (its own cursor chain) is not throttled by the first one.
      const other = await reader.createCursor({ type: "LATEST" });
      await reader.getMessages(other);
    });

    await t.step("an injected outage is an unavailable stream", async () => {
      oci.fault({ path: "streams" }, { status: 503, times: 1 });
      await assert.rejects(
        reader.createCursor({ type: "LATEST" }),
        (e) => e instanceof StreamError && e.kind === "unavailable" && e.status === 503,
      );
      oci.fault({ path: "streams" }, { reset: true, times: 1 });
      await assert.rejects(
        reader.createCursor({ type: "LATEST" }),
        (e) => e instanceof StreamError && e.kind === "unavailable",
      );
    });
  } finally {
    reader.close();
    await oci.close();
  }
});

Deno.test("the stand-in's Streaming endpoints verify signatures and take PutMessages", async () => {
  const oci = await startOciStandIn();
  try {
    const streamId = oci.createStream();
    const { keyId, privateKeyPem } = oci.apiKey();
    const base = `${oci.streamEndpoint}/20180418/streams/${streamId}`;
    const rejectedBefore = oci.calls.rejected;
    assert.equal((await fetch(`${base}/cursors`, { method: "POST", body: "{}" })).status, 401);
    assert.equal(oci.calls.rejected, rejectedBefore + 1);

    const body = new TextEncoder().encode(JSON.stringify({
      messages: [{ key: null, value: new TextEncoder().encode("hello").toBase64() }],
    }));
    const put = await fetch(`${base}/messages`, {
      method: "POST",
      headers: signRequest("POST", `${base}/messages`, body, { keyId, privateKey: privateKeyPem }),
      body,
    });
    assert.equal(put.status, 200);
    const result = await put.json();
    assert.equal(result.failures, 0);
    assert.equal(result.entries[0].offset, 0);
    assert.equal(new TextDecoder().decode(oci.streamMessages(streamId)[0].value), "hello");

    // The body is part of the signature: a different body with the same headers is refused.
    const tampered = new TextEncoder().encode(JSON.stringify({ messages: [{ value: "aGk=" }] }));
    const bad = await fetch(`${base}/messages`, {
      method: "POST",
      headers: signRequest("POST", `${base}/messages`, body, { keyId, privateKey: privateKeyPem }),
      body: tampered,
    });
    assert.equal(bad.status, 401);
    await bad.body?.cancel();
  } finally {
    await oci.close();
  }
});

Deno.test("the default stream endpoint's domain is the region's realm's, from the SDK's tables", async () => {
  const { regionFromTables } = await import("../../src/stream/client.ts");
  assert.deepEqual(await regionFromTables("us-gov-ashburn-1"), {
    regionId: "us-gov-ashburn-1",
    secondLevelDomain: "oraclegovcloud.com",
  });
  assert.deepEqual(await regionFromTables("iad"), {
    regionId: "us-ashburn-1",
    secondLevelDomain: "oraclecloud.com",
  });
  assert.equal((await regionFromTables("xx-nowhere-9")).secondLevelDomain, "oraclecloud.com");
});
