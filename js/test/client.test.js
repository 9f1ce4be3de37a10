import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, createClient } from "../src/client.js";
import { control, userMessage } from "../src/protocol.js";
import { fakeTimers, fakeWebSocketClass, frames } from "./helpers.js";

const TOKEN = "s3cr3t-T0KEN_value";
const TARGET = { url: "ws://127.0.0.1:4321/ws", token: TOKEN, session: "my session" };

function setup({ random = () => 0.5 } = {}) {
  const { FakeWebSocket, instances } = fakeWebSocketClass();
  const timers = fakeTimers();
  const events = [];
  const connections = [];
  let n = 0;
  const client = createClient({
    WebSocket: FakeWebSocket,
    onEvent: (e) => events.push(e),
    onConnection: (c) => connections.push(c),
    timers,
    random,
    newId: () => `id-${++n}`,
  });
  return { client, instances, timers, events, connections };
}

test("connect offers the envelope dialect and the token as subprotocols, session in the URL", () => {
  const { client, instances, connections } = setup();
  client.connect(TARGET);
  assert.equal(instances.length, 1);
  assert.equal(instances[0].url, "ws://127.0.0.1:4321/ws?session=my%20session");
  assert.deepEqual(instances[0].protocols, ["llmsock.envelope.v1", `llmsock.token.${TOKEN}`]);
  assert.ok(!instances[0].url.includes(TOKEN), "the token is not in the URL");
  assert.equal(connections.at(-1).state, "connecting");
  instances[0].serverOpen();
  assert.equal(connections.at(-1).state, "open");
  assert.equal(connections.at(-1).transport, "websocket");
});

test("after ready the client asks for the history with a JSON control frame", () => {
  const { client, instances, events } = setup();
  client.connect(TARGET);
  const ws = instances[0];
  ws.serverOpen();
  assert.deepEqual(ws.sent, [], "nothing is sent before ready");
  ws.serverSend(frames.ready(4));
  assert.equal(events[0].type, "ready");
  assert.deepEqual(ws.sentJson(), [{ type: "control", id: "id-1", data: { type: "get_history" } }]);
});

test("frames are parsed and handed on in order; garbage is dropped", () => {
  const { client, instances, events } = setup();
  client.connect(TARGET);
  const ws = instances[0];
  ws.serverOpen();
  ws.serverSend(frames.ready(0));
  ws.serverSend("{not json");
  ws.serverSend(frames.user(1, "hi"));
  ws.serverSend(frames.delta(2, "x"));
  assert.deepEqual(events.map((e) => e.type), ["ready", "user.message", "model.delta"]);
});

test("send writes JSON while open and refuses while not", () => {
  const { client, instances } = setup();
  assert.equal(client.send(userMessage("hi", "u1")), false);
  client.connect(TARGET);
  assert.equal(client.send(userMessage("hi", "u1")), false, "not open yet");
  instances[0].serverOpen();
  assert.equal(client.isOpen(), true);
  assert.equal(client.send(userMessage('{"type":"ping"}', "u2")), true);
  assert.equal(client.send(control("abort", "c1")), true);
  assert.deepEqual(instances[0].sentJson(), [
    { type: "user_message", id: "u2", data: { text: '{"type":"ping"}' } },
    { type: "control", id: "c1", data: { type: "abort" } },
  ]);
});

test("an unclean close reconnects with capped exponential backoff, then catches up", () => {
  const { client, instances, timers, connections } = setup({ random: () => 1 });
  client.connect(TARGET);
  instances[0].serverOpen();
  instances[0].serverSend(frames.ready(0));

  const delays = [];
  for (let i = 0; i < 8; i += 1) {
    instances.at(-1).serverClose(1006);
    const last = connections.at(-1);
    assert.equal(last.state, "closed");
    delays.push(last.retryInMs);
    assert.deepEqual(timers.pendingDelays(), [last.retryInMs]);
    const count = instances.length;
    timers.advance(last.retryInMs - 1);
    assert.equal(instances.length, count, "no reconnect before the delay");
    timers.advance(1);
    assert.equal(instances.length, count + 1, "reconnected after the delay");
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);

  const ws = instances.at(-1);
  assert.deepEqual(ws.protocols, ["llmsock.envelope.v1", `llmsock.token.${TOKEN}`]);
  ws.serverOpen();
  ws.serverSend(frames.ready(17));
  assert.deepEqual(ws.sentJson().map((m) => m.data.type), ["get_history"], "catch-up after the reconnect");
  // A successful ready resets the schedule.
  ws.serverClose(1001, "server stopping", true);
  assert.equal(connections.at(-1).retryInMs, 500);
});

test("backoff is jittered between half and all of the capped delay", () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 250);
  assert.equal(backoffDelay(0, { random: () => 1 }), 500);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 3000);
  assert.equal(backoffDelay(50, { random: () => 0 }), 5000);
  assert.equal(backoffDelay(50, { random: () => 1 }), 10000);
  assert.equal(backoffDelay(1000, { random: () => 0.999 }) <= 10000, true);
});

test("a failed handshake (close before open) also retries", () => {
  const { client, instances, timers } = setup();
  client.connect(TARGET);
  instances[0].serverClose(1006);
  assert.equal(timers.size, 1);
  timers.advance(10000);
  assert.equal(instances.length, 2);
});

test("close code 4400 (invalid session id) is an error, not a retry", () => {
  const { client, instances, timers, connections } = setup();
  client.connect(TARGET);
  instances[0].serverOpen();
  instances[0].serverClose(4400, "invalid sessionId 'a.b'", true);
  assert.equal(timers.size, 0);
  assert.equal(connections.at(-1).state, "error");
  assert.match(connections.at(-1).detail, /4400/);
});

test("a new connect message replaces the socket; the old one's frames are ignored", () => {
  const { client, instances, events, timers } = setup();
  client.connect(TARGET);
  const old = instances[0];
  old.serverOpen();
  old.serverSend(frames.ready(0));
  assert.equal(client.connect({ ...TARGET, url: "ws://127.0.0.1:5555/ws", token: "new-token" }), true);
  assert.equal(instances.length, 2);
  assert.equal(old.closedWith.code, 1000);
  assert.equal(old.onmessage, null);
  const fresh = instances[1];
  assert.equal(fresh.url, "ws://127.0.0.1:5555/ws?session=my%20session");
  assert.deepEqual(fresh.protocols, ["llmsock.envelope.v1", "llmsock.token.new-token"]);
  const before = events.length;
  old.serverSend(frames.user(1, "stale")); // a late frame from the replaced socket
  old.serverClose(1006);
  assert.equal(events.length, before);
  assert.equal(timers.size, 0, "closing the replaced socket does not schedule a retry");
  fresh.serverOpen();
  fresh.serverSend(frames.ready(0));
  assert.deepEqual(fresh.sentJson().map((m) => m.data.type), ["get_history"]);
});

test("the same connect message again is a no-op while a socket exists", () => {
  const { client, instances } = setup();
  client.connect(TARGET);
  instances[0].serverOpen();
  assert.equal(client.connect({ ...TARGET }), false);
  assert.equal(instances.length, 1);
});

test("the same connect message while waiting to retry reconnects at once", () => {
  const { client, instances, timers } = setup();
  client.connect(TARGET);
  instances[0].serverClose(1006);
  assert.equal(timers.size, 1);
  assert.equal(client.connect({ ...TARGET }), true);
  assert.equal(instances.length, 2);
  assert.equal(timers.size, 0);
});

test("close stops everything: no retry, no more events", () => {
  const { client, instances, timers, events } = setup();
  client.connect(TARGET);
  const ws = instances[0];
  ws.serverOpen();
  client.close();
  assert.equal(ws.closedWith.code, 1000);
  ws.serverSend(frames.ready(0));
  ws.serverClose(1006);
  assert.equal(events.length, 0);
  assert.equal(timers.size, 0);
  assert.equal(client.send(userMessage("x", "u")), false);
});

test("a constructor that throws is reported without the token and retried", () => {
  const timers = fakeTimers();
  const connections = [];
  let calls = 0;
  class ThrowingWebSocket {
    constructor(url, protocols) {
      calls += 1;
      throw new SyntaxError(`invalid subprotocol ${protocols.join(",")}`);
    }
  }
  const client = createClient({ WebSocket: ThrowingWebSocket, onConnection: (c) => connections.push(c), timers, random: () => 0.5 });
  client.connect({ ...TARGET, token: "bad token" });
  assert.equal(calls, 1);
  assert.equal(connections.at(-1).state, "closed");
  assert.ok(!JSON.stringify(connections).includes("bad token"));
  timers.advance(10000);
  assert.ok(calls >= 2);
});

test("the token never appears in anything passed to onConnection or onEvent", () => {
  const { client, instances, timers, connections, events } = setup();
  client.connect(TARGET);
  instances[0].serverOpen();
  instances[0].serverSend(frames.ready(0));
  instances[0].serverClose(1006, `reason mentioning nothing`);
  timers.advance(10000);
  instances[1].serverClose(4400, "bad id");
  client.connect({ ...TARGET, url: "ws://127.0.0.1:9/ws" });
  client.close();
  assert.ok(connections.length >= 5);
  const seen = JSON.stringify([connections, events]);
  assert.ok(!seen.includes(TOKEN));
  for (const c of connections) {
    assert.deepEqual(Object.keys(c).sort(), ["attempt", "detail", "retryInMs", "state", "transport"]);
  }
});

test("createClient requires a WebSocket constructor (no global fallback)", () => {
  assert.throws(() => createClient({}), TypeError);
});
