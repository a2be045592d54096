// Token refresh, terminal close codes, sessions, presence, preferences and notifications,
// against a real gateway with the presence and sessions services behind it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { API_KEY, Service, client, mintToken, next, sleep, startRedis, uniquePrefix, until } from "./harness.mjs";
import { memoryStorage } from "../dist/goldwire.js";

let redis;
let gateway;
let presence;
let sessions;
before(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix();
  presence = await new Service("presence", redis.url, prefix).start();
  sessions = await new Service("sessions", redis.url, prefix).start();
  gateway = await new Service("gateway", redis.url, prefix, {
    jwt_leeway: 0,
    presence_url: presence.http,
    sessions_url: sessions.http,
  }).start();
});
after(async () => {
  await Promise.all([gateway?.kill(), presence?.kill(), sessions?.kill()]);
  await redis?.stop();
});

/** Connections the gateway has accepted so far (its own counter, read over /metrics). */
async function connectionsOpened() {
  const text = await (await fetch(gateway.http + "/metrics")).text();
  return Number(/goldwire_gateway_connections_opened_total (\d+)/.exec(text)[1]);
}

test("the token is refreshed on the live socket before it expires", async (t) => {
  let calls = 0;
  const gw = client(gateway.ws, {
    token: () => {
      calls++;
      return mintToken("ada", { ttl: 3 });
    },
    refreshAhead: 1000,
  });
  t.after(() => gw.close());
  const drops = [];
  gw.on("disconnected", (info) => drops.push(info));
  const first = await gw.connect();
  assert.equal(typeof first.expires_at, "number");
  // Outlive the first token by a second: the gateway would close with 4001 without a refresh.
  await until(() => Date.now() > first.expires_at + 1000, "the first token's expiry", 8000);
  assert.deepEqual(drops, [], "the socket never dropped");
  assert.ok(calls >= 2, `the token function was called again (${calls} calls)`);
  assert.deepEqual(await gw.ping(), { pong: true });
});

test("a fixed token that is refused is terminal: 4001, no reconnect", async (t) => {
  const before = await connectionsOpened();
  const gw = client(gateway.ws, { token: "not-a-jwt" });
  t.after(() => gw.close());
  const disconnected = next(gw, "disconnected");
  await assert.rejects(gw.connect(), (err) => err.code === "closed");
  const info = await disconnected;
  assert.deepEqual([info.code, info.reconnect], [4001, false]);
  await sleep(2500); // longer than the longest backoff: no attempt follows
  assert.equal(await connectionsOpened(), before + 1);
  assert.equal(gw.state, "disconnected");
});

test("a token function whose tokens keep failing stops after two tries", async (t) => {
  let calls = 0;
  const gw = client(gateway.ws, {
    token: () => {
      calls++;
      return mintToken("ada", { ttl: 3600 }).slice(0, -4) + "AAAA"; // a bad signature
    },
  });
  t.after(() => gw.close());
  await assert.rejects(gw.connect(), (err) => err.code === "closed");
  assert.equal(calls, 2);
});

test("a revoked session (4010) stops reconnecting and forgets the session id", async (t) => {
  const storage = memoryStorage();
  const tok = mintToken("ada");
  const gw = client(gateway.ws, { token: () => tok, storage });
  t.after(() => gw.close());
  const info = await gw.connect();
  assert.equal(storage.get("goldwire.session"), info.session_id);
  const disconnected = next(gw, "disconnected");
  const res = await fetch(`${gateway.http}/v2/sync/sessions/${info.session_id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${tok}` },
  });
  assert.equal(res.status, 200, await res.text());
  const gone = await disconnected;
  assert.deepEqual([gone.code, gone.reconnect], [4010, false]);
  assert.equal(storage.get("goldwire.session"), null);
});

test("the session id in storage resumes the session on the next page load", async (t) => {
  const storage = memoryStorage();
  const first = client(gateway.ws, { token: () => mintToken("ada"), storage });
  const opened = await first.connect();
  assert.equal(opened.session.resumed, false);
  first.close();
  const again = client(gateway.ws, { token: () => mintToken("ada"), storage });
  t.after(() => again.close());
  const resumed = await again.connect();
  assert.equal(resumed.session_id, opened.session_id);
  assert.equal(resumed.session.resumed, true);
});

test("presence is a member list kept from state and diffs, with status", async (t) => {
  const ada = client(gateway.ws, { token: () => mintToken("ada", { name: "Ada" }) });
  const bob = client(gateway.ws, { token: () => mintToken("bob", { name: "Bob" }) });
  t.after(() => {
    ada.close();
    bob.close();
  });
  await Promise.all([ada.connect(), bob.connect()]);
  const adaRoom = ada.room("doc:presence");
  const lists = [];
  adaRoom.on("presence", (members) => lists.push(members));
  await adaRoom.join();
  await bob.room("doc:presence").join();
  const ids = (members) => members.map((m) => m.user.id).sort().join(",");
  await until(() => ids(adaRoom.members) === "ada,bob", "ada to see bob");
  assert.equal(adaRoom.members.find((m) => m.user.id === "bob").user.name, "Bob");
  await bob.setStatus("busy");
  await until(() => adaRoom.members.find((m) => m.user.id === "bob")?.status === "busy",
    "bob's status to reach ada");
  await bob.room("doc:presence").leave();
  await until(() => ids(adaRoom.members) === "ada", "bob to leave ada's list");
  assert.ok(lists.every(Array.isArray), "every presence event is a whole list");
});

test("a room an operator kicks the user from is left: unjoined, not rejoined", async (t) => {
  const ada = client(gateway.ws, { token: () => mintToken("ada") });
  t.after(() => ada.close());
  await ada.connect();
  const room = ada.room("doc:kick");
  await room.join();
  const update = next(room, "update");
  const res = await fetch(gateway.http + "/v1/admin/rooms/doc:kick/kick", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ user: "ada" }),
  });
  assert.equal(res.status, 200, await res.text());
  assert.deepEqual(await update, { kind: "kicked" });
  assert.equal(room.state, "unjoined");
  await room.join(); // the page may ask again: the token still allows it
  assert.equal(room.state, "joined");
});

test("preferences and notifications arrive as client events", async (t) => {
  const tab1 = client(gateway.ws, { token: () => mintToken("cy") });
  const tab2 = client(gateway.ws, { token: () => mintToken("cy") });
  t.after(() => {
    tab1.close();
    tab2.close();
  });
  await Promise.all([tab1.connect(), tab2.connect()]);
  const changed = next(tab2, "preferences");
  const written = await tab1.setPreferences({ theme: "dark" }, 0);
  const prefs = await changed;
  assert.deepEqual(prefs, { values: { theme: "dark" }, version: written.version });
  await assert.rejects(tab2.setPreferences({ theme: "light" }, 0), (err) => err.code === "conflict");

  const notified = next(tab1, "notification");
  const res = await fetch(gateway.http + "/v1/publish", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ user: "cy", type: "notification", data: { text: "a comment" } }),
  });
  assert.equal(res.status, 200);
  assert.equal((await notified).data.text, "a comment");
});

test("client.sync: the inbox, preferences and room history over HTTP, with the client's token", async (t) => {
  const gw = client(gateway.ws, { token: () => mintToken("dee") });
  t.after(() => gw.close());
  await gw.connect();
  for (const text of ["first", "second"]) {
    const res = await fetch(gateway.http + "/v1/publish", {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ user: "dee", type: "notification", data: { text } }),
    });
    assert.equal(res.status, 200);
  }
  const inbox = await gw.sync.notifications();
  assert.equal(inbox.unread, 2);
  assert.deepEqual(inbox.items.map((n) => n.data.text), ["second", "first"], "newest first");
  assert.deepEqual(await gw.sync.ackNotifications({ ids: [inbox.items[0].id] }), { unread: 1 });

  const prefs = await gw.sync.preferences();
  assert.equal(prefs.version, 0);
  await gw.setPreferences({ theme: "dark" }, prefs.version);
  assert.deepEqual((await gw.sync.preferences()).values, { theme: "dark" });

  const room = gw.room("doc:history");
  await room.join();
  const sent = [];
  for (let n = 0; n < 3; n++) sent.push((await room.publish("document_update", { n })).offset);
  const all = await gw.sync.history("doc:history");
  assert.deepEqual(all.messages.map((m) => m.offset), sent);
  const after = await gw.sync.history("doc:history", { since: sent[0] });
  assert.deepEqual([after.recovered, after.messages.map((m) => m.offset)], [true, sent.slice(1)]);
  await assert.rejects(gw.sync.history("bad room name!"), (err) => err.status === 400 || err.status === 422);
});
