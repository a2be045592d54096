// Reconnect and recovery against real gateways: a gateway killed with -9 under traffic,
// a drain (4012), and history too short to replay (resync).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  Service, client, mintToken, next, publish, publishBatch, sleep, startProxy, startRedis, uniquePrefix, until,
} from "./harness.mjs";

let redis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

/** Two gateways on one Redis behind one proxy (the load balancer), pointed at the first. */
async function twoGateways(t, settings = {}) {
  const prefix = uniquePrefix();
  const a = await new Service("gateway", redis.url, prefix, settings).start();
  const b = await new Service("gateway", redis.url, prefix, settings).start();
  const proxy = await startProxy(a.port);
  t.after(async () => {
    await proxy.stop();
    await Promise.all([a.kill(), b.kill()]);
  });
  return { a, b, proxy };
}

function assertInOrderOnce(got, sent) {
  const offsets = got.map((m) => m.offset);
  assert.equal(new Set(offsets).size, offsets.length, "no message twice");
  assert.deepEqual(offsets, sent, "every message, in offset order");
  assert.deepEqual(got.map((m) => m.data.n), sent.map((_, i) => i));
}

test("a gateway killed with -9 under traffic: reconnect, replay, nothing lost or doubled", async (t) => {
  const { a, b, proxy } = await twoGateways(t);
  const gw = client(proxy.url, { token: () => mintToken("ada") });
  t.after(() => gw.close());
  await gw.connect();
  const room = gw.room("doc:kill");
  const got = [];
  room.on("message", (m) => got.push(m));
  await room.join();

  const marks = {};
  const rejoins = [];
  const drops = [];
  gw.on("disconnected", (info) => {
    marks.disconnected ??= performance.now();
    drops.push(info);
  });
  gw.on("connected", (info) => {
    if (info.reconnected) marks.connected ??= performance.now();
  });
  room.on("joined", (result) => {
    if (marks.killed) {
      marks.rejoined ??= performance.now();
      rejoins.push(result);
    }
  });

  const sent = [];
  for (let i = 0; i < 60; i++) {
    if (i === 20) {
      proxy.point(b.port); // the balancer sends new connections to the survivor
      marks.killed = performance.now();
      await a.kill();
    }
    sent.push(await publish(b.http, "doc:kill", { n: i }));
    await sleep(10);
  }
  await until(() => got.length >= sent.length, `${sent.length} messages (have ${got.length})`);
  await sleep(100); // a duplicate would arrive right behind the last message
  assertInOrderOnce(got, sent);
  assert.equal(drops[0].reconnect, true);
  assert.equal(rejoins.length, 1);
  assert.equal(rejoins[0].recovered, true, "rejoined with since and recovered");
  const ms = (x) => Math.round(x - marks.killed);
  t.diagnostic(`kill to disconnected ${ms(marks.disconnected)} ms, to connected ${ms(marks.connected)} ms, ` +
    `to rejoined and replayed ${ms(marks.rejoined)} ms`);
  console.log(`SDK_RECOVERY_MS ${ms(marks.connected)} ${ms(marks.rejoined)}`);
});

test("a draining gateway (4012) is left at once, with no backoff, and nothing is lost", async (t) => {
  const { a, b, proxy } = await twoGateways(t);
  const gw = client(proxy.url, { token: () => mintToken("ada"), minReconnectDelay: 5000 });
  t.after(() => gw.close());
  await gw.connect();
  const room = gw.room("doc:drain");
  const got = [];
  room.on("message", (m) => got.push(m));
  await room.join();
  const sent = [await publish(b.http, "doc:drain", { n: 0 })];
  await until(() => got.length === 1, "the first message");

  proxy.point(b.port);
  const disconnected = next(gw, "disconnected");
  const stopping = a.stop(); // SIGTERM: every socket gets 4012
  const info = await disconnected;
  assert.deepEqual([info.code, info.reconnect, info.delay], [4012, true, 0]);
  for (let i = 1; i < 5; i++) sent.push(await publish(b.http, "doc:drain", { n: i }));
  await stopping;
  await until(() => got.length >= sent.length, "the messages sent during the drain");
  assertInOrderOnce(got, sent);
});

test("history too short to replay: the room emits resync, then goes on live", async (t) => {
  const { a, b, proxy } = await twoGateways(t, { history_size: 2 });
  const gw = client(proxy.url, { token: () => mintToken("ada") });
  t.after(() => gw.close());
  await gw.connect();
  const room = gw.room("doc:short");
  const got = [];
  room.on("message", (m) => got.push(m));
  await room.join();
  await publish(b.http, "doc:short", { n: 0 });
  await until(() => got.length === 1, "the first message");

  proxy.point(1); // nothing listens there: the client retries while we publish
  await a.kill();
  // Streams trim whole nodes of 100 entries (MAXLEN ~), so push well past the history size.
  const last = (await publishBatch(b.http, "doc:short", 300)).at(-1);
  const resync = next(room, "resync");
  proxy.point(b.port);
  const info = await resync;
  assert.equal(info.reason, "not_recovered");
  assert.equal(info.offset, last, "resync says how far to reload");
  assert.equal(got.length, 1, "no partial replay is passed off as complete");
  const live = await publish(b.http, "doc:short", { n: 6 });
  await until(() => got.length === 2, "the next live message");
  assert.equal(got[1].offset, live);
});
