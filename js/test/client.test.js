import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, createClient } from "../src/client.js";
import { control, userMessage } from "../src/protocol.js";
import { initialState, reduce } from "../src/reducer.js";
import { fakeTimers, fakeWebSocketClass, frames } from "./helpers.js";

const TOKEN = "s3cr3t-T0KEN_value";
const TARGET = { url: "ws://127.0.0.1:4321/ws", token: TOKEN, session: "my session" };

/** The fake WebSocket, with the auth frame a socket sends on open kept apart in `auth`. */
function authApart() {
  const { FakeWebSocket, instances } = fakeWebSocketClass();
  class AuthApart extends FakeWebSocket {
    send(data) {
      const parsed = JSON.parse(data);
      if (parsed.type === "auth") {
        if (this.readyState !== 1) throw new Error("send on a socket that is not open");
        this.auth ??= [];
        this.auth.push(parsed.token);
      } else super.send(data);
    }
  }
  return { FakeWebSocket: AuthApart, instances };
}

function setup({ random = () => 0.5 } = {}) {
  const { FakeWebSocket, instances } = authApart();
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

test("connect offers the envelope dialect, sends the token as the first frame, session in the URL", () => {
  const { client, instances, connections } = setup();
  client.connect(TARGET);
  assert.equal(instances.length, 1);
  assert.equal(instances[0].url, "ws://127.0.0.1:4321/ws?session=my%20session");
  assert.deepEqual(instances[0].protocols, ["llmsock.envelope.v1"], "no token in a subprotocol: proxies log them");
  assert.ok(!instances[0].url.includes(TOKEN), "the token is not in the URL");
  assert.ok(!instances[0].url.includes("resume="), "nothing to resume on a first connect");
  assert.equal(connections.at(-1).state, "connecting");
  assert.equal(instances[0].auth, undefined, "nothing is sent before the socket opens");
  instances[0].serverOpen();
  assert.deepEqual(instances[0].auth, [TOKEN], "the token is the first frame");
  assert.equal(connections.at(-1).state, "connecting", "an open socket is not a connection until ready");
  instances[0].serverSend(frames.ready(0));
  assert.equal(connections.at(-1).state, "open");
  assert.equal(connections.at(-1).transport, "websocket");
  assert.ok(!JSON.stringify(connections).includes(TOKEN));
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
  assert.deepEqual(
    events.map((e) => e.type),
    ["ready", "user.message", "model.delta"],
  );
});

test("send writes JSON while open and refuses while not", () => {
  const { client, instances } = setup();
  assert.equal(client.send(userMessage("hi", "u1")), false);
  client.connect(TARGET);
  assert.equal(client.send(userMessage("hi", "u1")), false, "not open yet");
  instances[0].serverOpen();
  assert.equal(client.isOpen(), false, "open but no ready yet");
  assert.equal(client.send(userMessage("hi", "u1")), false, "nothing is sent before ready");
  assert.deepEqual(instances[0].sent, []);
  instances[0].serverSend(frames.ready(0));
  instances[0].sent.length = 0; // the get_history catch-up
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
  assert.deepEqual(ws.protocols, ["llmsock.envelope.v1"]);
  ws.serverOpen();
  ws.serverSend(frames.ready(17));
  assert.deepEqual(
    ws.sentJson().map((m) => m.data.type),
    ["get_history"],
    "catch-up after the reconnect",
  );
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
  const { client, instances, timers, connections } = setup();
  client.connect(TARGET);
  instances[0].serverClose(1006);
  assert.equal(timers.size, 1);
  const { state, retryInMs, detail } = connections.at(-1);
  assert.equal(state, "closed");
  assert.match(detail, /no transport answered \(closed \(1006\)\)/);
  timers.advance(retryInMs);
  assert.equal(instances.length, 2);
  assert.equal(instances[1].url, instances[0].url);
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
  assert.deepEqual(fresh.protocols, ["llmsock.envelope.v1"]);
  const before = events.length;
  old.serverSend(frames.user(1, "stale")); // a late frame from the replaced socket
  const pending = timers.pendingDelays();
  old.serverClose(1006);
  assert.equal(events.length, before);
  assert.deepEqual(timers.pendingDelays(), pending, "closing the replaced socket does not schedule a retry");
  assert.deepEqual(pending, [4000], "only the new socket's probe is pending");
  fresh.serverOpen();
  fresh.serverSend(frames.ready(0));
  assert.deepEqual(
    fresh.sentJson().map((m) => m.data.type),
    ["get_history"],
  );
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
  assert.deepEqual(timers.pendingDelays(), [4000], "the retry is gone; only the probe of the new socket waits");
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
    constructor(_url, protocols) {
      calls += 1;
      throw new SyntaxError(`invalid subprotocol ${protocols.join(",")}`);
    }
  }
  const client = createClient({
    WebSocket: ThrowingWebSocket,
    onConnection: (c) => connections.push(c),
    timers,
    random: () => 0.5,
  });
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
  const required = ["attempt", "detail", "retryInMs", "state", "transport"];
  for (const c of connections) {
    const keys = Object.keys(c).sort();
    // An `open` report also says whether it resumed and fell back; nothing else is ever added.
    const expected = c.state === "open" ? [...required, "fallback", "replayed", "resumed"].sort() : required;
    assert.deepEqual(keys, expected);
  }
  assert.ok(connections.some((c) => c.state === "open"));
});

test("createClient requires a WebSocket constructor (no global fallback)", () => {
  assert.throws(() => createClient({}), TypeError);
});

// --- the transport ladder -------------------------------------------------------------------

const PROXY_URL = "ws://localhost:8888/proxy/4321/ws";
const DIRECT_URL = "ws://127.0.0.1:4321/ws";

/** A three-rung ladder; the comm rung makes its sockets with `create` (a separate fake class). */
function ladder() {
  const comm = fakeWebSocketClass();
  const created = [];
  const candidates = [
    { transport: "proxy", url: PROXY_URL, reason: "proxy (jupyter-server-proxy)" },
    { transport: "direct", url: DIRECT_URL, reason: "direct (the page is on this machine)" },
    {
      transport: "comm",
      url: "comm:",
      reason: "comm (the widget's channel)",
      create: (url, protocols) => {
        created.push({ url, protocols });
        return new comm.FakeWebSocket(url, protocols);
      },
    },
  ];
  return { candidates, commSockets: comm.instances, created };
}

function ladderSetup(options = {}) {
  const s = setup(options);
  const l = ladder();
  const target = { candidates: l.candidates, skipped: ["pre: skipped before"], token: TOKEN, session: "my session" };
  s.client.connect(target);
  return { ...s, ...l, target };
}

const noSecret = (connections) => assert.ok(!JSON.stringify(connections).includes(TOKEN), "no token in reports");

test("ladder: a candidate that closes before ready gives way to the next one at once", () => {
  const { instances, timers, connections, events } = ladderSetup();
  assert.equal(instances.length, 1);
  assert.equal(instances[0].url, `${PROXY_URL}?session=my%20session`);
  assert.deepEqual(connections.at(-1), {
    state: "connecting",
    transport: "proxy",
    detail: "trying proxy",
    retryInMs: null,
    attempt: 0,
  });
  instances[0].serverClose(1006);
  assert.equal(instances.length, 2, "the next rung is tried without waiting");
  assert.equal(instances[1].url, `${DIRECT_URL}?session=my%20session`);
  assert.deepEqual(instances[1].protocols, ["llmsock.envelope.v1"]);
  assert.equal(connections.at(-1).state, "connecting");
  assert.equal(connections.at(-1).transport, "direct");
  assert.equal(connections.at(-1).detail, "trying direct");
  assert.deepEqual(timers.pendingDelays(), [4000], "no backoff, only the new probe");
  assert.ok(!connections.some((c) => c.state === "closed"), "a rung giving way is not a disconnect");

  instances[1].serverOpen();
  assert.equal(connections.at(-1).state, "connecting");
  instances[1].serverSend(frames.ready(0));
  const open = connections.at(-1);
  assert.equal(open.state, "open");
  assert.equal(open.transport, "direct");
  assert.equal(
    open.detail,
    "fallback: direct (the page is on this machine) (pre: skipped before; proxy: closed (1006))",
  );
  assert.equal(open.fallback, true, "a rung above failed: the report says so");
  assert.deepEqual(timers.pendingDelays(), [15000], "the probe is cleared by ready; the heartbeat runs");
  assert.deepEqual(
    instances[1].sentJson().map((m) => m.data.type),
    ["get_history"],
  );
  assert.deepEqual(instances[0].sent, []);
  assert.deepEqual(
    events.map((e) => e.type),
    ["ready"],
  );
  noSecret(connections);
});

test("ladder: a candidate that never opens is dropped after probeMs", () => {
  const { client, instances, timers, connections } = ladderSetup();
  timers.advance(3999);
  assert.equal(instances.length, 1, "still waiting for ready");
  assert.equal(client.isOpen(), false);
  timers.advance(1);
  assert.equal(instances.length, 2, "the next rung after probeMs");
  assert.equal(instances[0].closedWith.code, 1000, "the silent socket is closed");
  instances[1].serverOpen();
  instances[1].serverSend(frames.ready(0));
  assert.match(connections.at(-1).detail, /proxy: no answer in 4 s/);
});

test("ladder: a candidate that opens but is late to say ready gets three probe times, and says so", () => {
  const { client, instances, timers, connections, events } = ladderSetup();
  const proxy = instances[0];
  proxy.serverOpen();
  timers.advance(4000);
  assert.equal(instances.length, 1, "an open socket is not given up after one probe time");
  assert.equal(connections.at(-1).state, "connecting");
  assert.equal(connections.at(-1).detail, "proxy: opened, no answer yet; waiting 8 s more");
  timers.advance(7999);
  assert.equal(instances.length, 1, "still waiting for ready");
  assert.equal(client.isOpen(), false);
  timers.advance(1);
  assert.equal(instances.length, 2, "the next rung after three probe times");
  assert.equal(proxy.closedWith.code, 1000, "the silent socket is closed");
  assert.equal(proxy.onmessage, null);
  proxy.serverSend(frames.ready(0)); // too late: ignored
  assert.equal(events.length, 0);
  assert.equal(connections.at(-1).transport, "direct");
  instances[1].serverOpen();
  instances[1].serverSend(frames.ready(0));
  assert.equal(connections.at(-1).state, "open");
  assert.match(connections.at(-1).detail, /^fallback: direct .*proxy: no answer in 12 s/);
  assert.equal(client.isOpen(), true);
});

test("ladder: probeMs is configurable", () => {
  const { FakeWebSocket, instances } = fakeWebSocketClass();
  const timers = fakeTimers();
  const connections = [];
  const client = createClient({
    WebSocket: FakeWebSocket,
    onConnection: (c) => connections.push(c),
    timers,
    probeMs: 1500,
  });
  client.connect({ candidates: ladder().candidates.slice(0, 2), token: TOKEN, session: "s" });
  assert.deepEqual(timers.pendingDelays(), [1500]);
  timers.advance(1500);
  assert.equal(instances.length, 2);
  instances[1].serverOpen();
  instances[1].serverSend(frames.ready(0));
  assert.match(connections.at(-1).detail, /proxy: no answer in 2 s/);
});

test("ladder: when every rung fails the client backs off, then starts again from the first", () => {
  const { instances, commSockets, created, timers, connections } = ladderSetup();
  instances[0].serverClose(1006);
  instances[1].serverClose(1006);
  assert.equal(created.length, 1, "the comm rung is made with its create()");
  commSockets[0].serverClose(1011, "kernel gone");
  const closed = connections.at(-1);
  assert.equal(closed.state, "closed");
  assert.equal(closed.retryInMs, 375);
  assert.equal(closed.transport, "proxy", "the next round starts at the top");
  assert.match(closed.detail, /^no transport answered \(closed \(1011: kernel gone\)\)$/);
  assert.deepEqual(timers.pendingDelays(), [375]);
  timers.advance(374);
  assert.equal(instances.length, 2);
  timers.advance(1);
  assert.equal(instances.length, 3, "a new round after the delay");
  assert.equal(instances[2].url, `${PROXY_URL}?session=my%20session`);

  // Second round: the delay grows; then direct works and the report lists this round's failures once.
  instances[2].serverClose(1006);
  instances[3].serverClose(1006);
  commSockets[1].serverClose(1006);
  assert.equal(connections.at(-1).retryInMs, 750);
  timers.advance(750);
  instances[4].serverClose(1006);
  instances[5].serverOpen();
  instances[5].serverSend(frames.ready(0));
  const open = connections.at(-1);
  assert.equal(open.state, "open");
  assert.equal(open.transport, "direct");
  assert.equal(
    open.detail,
    "fallback: direct (the page is on this machine) (pre: skipped before; proxy: closed (1006))",
  );
  assert.equal(open.fallback, true, "a rung above failed: the report says so");
  // A ready resets the schedule.
  instances[5].serverClose(1006);
  assert.equal(connections.at(-1).retryInMs, 375);
  noSecret(connections);
});

test("ladder: the chosen transport is kept across a reconnect", () => {
  const { instances, timers, connections } = ladderSetup();
  instances[0].serverClose(1006);
  instances[1].serverOpen();
  instances[1].serverSend(frames.ready(0));
  instances[1].serverClose(1006);
  assert.equal(connections.at(-1).state, "closed");
  assert.equal(connections.at(-1).transport, "direct");
  timers.advance(connections.at(-1).retryInMs);
  assert.equal(instances.length, 3);
  assert.equal(instances[2].url, `${DIRECT_URL}?session=my%20session`, "straight to the rung that worked");
  assert.equal(connections.at(-1).state, "connecting");
  assert.equal(connections.at(-1).transport, "direct");
  assert.equal(connections.at(-1).detail, "", "no 'trying' for a transport known to work");
  instances[2].serverOpen();
  instances[2].serverSend(frames.ready(0));
  assert.equal(connections.at(-1).state, "open");
  assert.equal(connections.at(-1).transport, "direct");
});

test("ladder: when the established transport does not say ready on reconnect, the ladder restarts", () => {
  const { instances, timers, connections } = ladderSetup();
  instances[0].serverClose(1006);
  instances[1].serverOpen();
  instances[1].serverSend(frames.ready(0));
  instances[1].serverClose(1006); // drop
  timers.advance(connections.at(-1).retryInMs);
  assert.equal(instances[2].url, `${DIRECT_URL}?session=my%20session`);
  instances[2].serverClose(1006); // the rung that worked fails before ready
  const closed = connections.at(-1);
  assert.equal(closed.state, "closed");
  assert.ok(closed.retryInMs > 0, "after a pause");
  assert.equal(instances.length, 3, "not at once");
  timers.advance(closed.retryInMs);
  assert.equal(instances.length, 4);
  assert.equal(instances[3].url, `${PROXY_URL}?session=my%20session`, "from the top again");
  assert.equal(connections.at(-1).detail, "trying proxy");
  assert.deepEqual(timers.pendingDelays(), [4000], "and probed again");
  instances[3].serverOpen();
  instances[3].serverSend(frames.ready(0));
  assert.equal(connections.at(-1).transport, "proxy");
  assert.equal(connections.at(-1).detail, "proxy (jupyter-server-proxy) (pre: skipped before)");
});

test("ladder: a candidate's create() is used instead of the WebSocket constructor", () => {
  const { client, instances, connections } = setup();
  const { candidates, commSockets, created } = ladder();
  client.connect({ candidates: [candidates[2]], token: TOKEN, session: "my session" });
  assert.equal(instances.length, 0, "the WebSocket constructor is not called");
  assert.equal(created.length, 1);
  assert.equal(created[0].url, "comm:?session=my%20session");
  assert.deepEqual(created[0].protocols, ["llmsock.envelope.v1"]);
  commSockets[0].serverOpen();
  commSockets[0].serverSend(frames.ready(0));
  assert.equal(connections.at(-1).state, "open");
  assert.equal(connections.at(-1).transport, "comm");
  assert.equal(connections.at(-1).detail, "comm (the widget's channel)");
  assert.equal(client.send(userMessage("hi", "u1")), true);
  assert.deepEqual(
    commSockets[0].sentJson().map((m) => m.type),
    ["control", "user_message"],
  );
});

test("ladder: a create() that throws gives way to the next rung without the token in the report", () => {
  const { client, instances, connections } = setup();
  const { candidates } = ladder();
  const throwing = {
    ...candidates[0],
    create: (_url, protocols) => {
      throw new SyntaxError(`bad ${protocols.join(",")}`);
    },
  };
  client.connect({ candidates: [throwing, candidates[1]], token: TOKEN, session: "s" });
  assert.equal(instances.length, 1);
  assert.equal(instances[0].url, `${DIRECT_URL}?session=s`);
  instances[0].serverOpen();
  instances[0].serverSend(frames.ready(0));
  assert.match(connections.at(-1).detail, /proxy: could not open the connection/);
  noSecret(connections);
});

test("ladder: close code 4400 on a rung is fatal, not a reason to try the next one", () => {
  const { instances, timers, connections } = ladderSetup();
  instances[0].serverOpen();
  instances[0].serverClose(4400, "invalid sessionId", true);
  assert.equal(instances.length, 1);
  assert.equal(timers.size, 0);
  assert.equal(connections.at(-1).state, "error");
  assert.match(connections.at(-1).detail, /4400/);
});

// --- resume ---------------------------------------------------------------------------------

/** Connect over one socket, take ready (epoch E1) and an empty history, then events 1..n. */
function resumable(n = 5) {
  const s = setup();
  s.client.connect(TARGET);
  const ws = s.instances[0];
  ws.serverOpen();
  ws.serverSend(frames.readyResume({ sequence: 0, epoch: "E1" }));
  ws.serverSend(frames.history(0, [], null, "idle", ws.sentJson()[0].id));
  for (let seq = 1; seq <= n; seq += 1) ws.serverSend(frames.diagnostic(seq));
  return s;
}

const resumeOf = (url) => new URL(url.replace(/^ws/, "http")).searchParams.get("resume");

test("resume: a reconnect asks for resume=<epoch>:<last sequence handed on>", () => {
  const { client, instances, timers, connections } = resumable(5);
  assert.deepEqual(client.position(), { epoch: "E1", seq: 5 });
  instances[0].serverClose(1006);
  timers.advance(connections.at(-1).retryInMs);
  const url = instances[1].url;
  assert.equal(url, "ws://127.0.0.1:4321/ws?session=my%20session&resume=E1%3A5");
  assert.equal(resumeOf(url), "E1:5");
  assert.ok(!url.includes(TOKEN));
});

test("resume: the history reply's sequence is a position too", () => {
  const { client, instances } = setup();
  client.connect(TARGET);
  instances[0].serverOpen();
  instances[0].serverSend(frames.readyResume({ sequence: 12, epoch: "E9" }));
  assert.deepEqual(client.position(), { epoch: "E9", seq: null }, "no position before the transcript is in");
  instances[0].serverSend(frames.history(12, []));
  assert.deepEqual(client.position(), { epoch: "E9", seq: 12 });
  instances[0].serverSend(frames.user(13, "q"));
  assert.deepEqual(client.position(), { epoch: "E9", seq: 13 });
});

test("resume: a drop between ready and the history reply does not resume past the missing transcript", () => {
  const { client, instances, timers, connections } = setup();
  client.connect(TARGET);
  instances[0].serverOpen();
  instances[0].serverSend(frames.readyResume({ sequence: 4, epoch: "E1" }));
  instances[0].serverSend(frames.delta(5, "x")); // before the reply (which would cover 1..5)
  instances[0].serverClose(1006);
  timers.advance(connections.at(-1).retryInMs);
  assert.equal(resumeOf(instances[1].url), null, "events 1..4 were never handed on: reload, do not resume");
  instances[1].serverOpen();
  instances[1].serverSend(frames.readyResume({ sequence: 5, epoch: "E1" }));
  assert.deepEqual(
    instances[1].sentJson().map((m) => m.data.type),
    ["get_history"],
  );
});

test("resume: resumed:true sends no get_history and says how many events were replayed", () => {
  const { client, instances, timers, connections } = resumable(5);
  instances[0].serverClose(1006);
  timers.advance(connections.at(-1).retryInMs);
  const ws = instances[1];
  ws.serverOpen();
  ws.serverSend(frames.readyResume({ sequence: 7, epoch: "E1", resumed: true, replayed: 2 }));
  assert.deepEqual(ws.sent, [], "no catch-up request");
  const open = connections.at(-1);
  assert.equal(open.state, "open");
  assert.equal(open.resumed, true);
  assert.equal(open.replayed, 2);
  assert.equal(open.detail, "websocket; resumed, 2 events replayed");
  ws.serverSend(frames.diagnostic(6));
  ws.serverSend(frames.diagnostic(7));
  assert.deepEqual(client.position(), { epoch: "E1", seq: 7 });
  assert.equal(client.send(userMessage("next", "u9")), true);
});

test("resume: resumed:false reloads the transcript with get_history and says so", () => {
  const { client, instances, timers, connections } = resumable(5);
  instances[0].serverClose(1006);
  timers.advance(connections.at(-1).retryInMs);
  const ws = instances[1];
  assert.equal(resumeOf(ws.url), "E1:5");
  ws.serverOpen();
  ws.serverSend(frames.readyResume({ sequence: 0, epoch: "E2", resumed: false }));
  assert.deepEqual(
    ws.sentJson().map((m) => m.data.type),
    ["get_history"],
  );
  const open = connections.at(-1);
  assert.equal(open.state, "open");
  assert.equal(open.resumed, false);
  assert.equal(open.detail, "websocket; could not resume, reloaded the transcript");
  assert.deepEqual(client.position(), { epoch: "E2", seq: null }, "the old position is gone");
  ws.serverSend(frames.history(0, []));
  assert.deepEqual(client.position(), { epoch: "E2", seq: 0 });
});

test("resume: a new token (another server), another session or close() drops the position", () => {
  {
    const { client, instances } = resumable(5);
    client.connect({ ...TARGET, token: "another-server" });
    assert.equal(resumeOf(instances[1].url), null);
    assert.deepEqual(client.position(), { epoch: null, seq: null });
  }
  {
    const { client, instances } = resumable(5);
    client.connect({ ...TARGET, session: "other" });
    assert.equal(instances[1].url, "ws://127.0.0.1:4321/ws?session=other");
  }
  {
    const { client, instances } = resumable(5);
    client.close();
    client.connect(TARGET);
    assert.equal(resumeOf(instances[1].url), null);
  }
  {
    // The same server at another address (same token, same session) keeps the position.
    const { client, instances } = resumable(5);
    client.connect({ ...TARGET, url: "ws://127.0.0.1:9999/ws" });
    assert.equal(resumeOf(instances[1].url), "E1:5");
  }
});

test("resume: client + reducer after a drop give the same transcript as an uninterrupted run", () => {
  const turn = [
    frames.user(1, "question"),
    frames.status(2, "generating"),
    frames.start(3),
    frames.delta(4, "Hel"),
    frames.delta(5, "lo"),
    frames.delta(6, " wor"),
    frames.reasoning(7, "think"),
    frames.delta(8, "ld"),
    frames.end(9, "stop"), // no final text: the transcript is the deltas, so a duplicate would show
    frames.status(10, "idle"),
  ];

  function drive(interrupt) {
    const { FakeWebSocket, instances } = authApart();
    const timers = fakeTimers();
    let state = initialState();
    const client = createClient({
      WebSocket: FakeWebSocket,
      onEvent: (e) => (state = reduce(state, e)),
      onConnection: (c) => (state = reduce(state, { type: "connection", ...c })),
      timers,
      random: () => 0.5,
    });
    client.connect(TARGET);
    let ws = instances[0];
    ws.serverOpen();
    ws.serverSend(frames.readyResume({ sequence: 0, epoch: "E1" }));
    ws.serverSend(frames.history(0, [], null, "idle", ws.sentJson()[0].id));
    if (!interrupt) {
      for (const f of turn) ws.serverSend(f);
      return { state, instances };
    }
    for (const f of turn.slice(0, 5)) ws.serverSend(f); // events 1..5
    ws.serverClose(1006);
    assert.equal(state.connection.state, "closed");
    timers.advance(state.connection.retryInMs);
    ws = instances[1];
    assert.equal(resumeOf(ws.url), "E1:5");
    ws.serverOpen();
    // The server resumes and (being careful) replays from 3: events 3..5 are duplicates.
    ws.serverSend(frames.readyResume({ sequence: 10, status: "generating", epoch: "E1", resumed: true, replayed: 8 }));
    assert.deepEqual(ws.sent, [], "no get_history on a resumed connection");
    for (const f of turn.slice(2)) ws.serverSend(f);
    return { state, instances };
  }

  const straight = drive(false).state;
  const { state: resumed } = drive(true);
  const shape = (s) =>
    s.messages.map((m) => ({ role: m.role, text: m.text, status: m.status, reasoning: m.reasoning ?? "" }));
  assert.deepEqual(shape(resumed), shape(straight));
  assert.equal(resumed.messages[1].text, "Hello world", "no delta text twice");
  assert.equal(resumed.lastSeq, 10);
  assert.equal(resumed.status, "idle");
  assert.equal(resumed.connection.state, "open");
  assert.match(resumed.connection.detail, /resumed, 8 events replayed/);
});

test("heartbeat: a silent connection is pinged, then dropped and reconnected", () => {
  const { client, instances, timers, connections } = setup();
  client.connect(TARGET);
  const ws = instances[0];
  ws.serverOpen();
  ws.serverSend(frames.ready(0));
  ws.sent.length = 0;
  timers.advance(15000); // frames were heard (the ready): no ping yet
  assert.deepEqual(ws.sent, []);
  timers.advance(15000); // silence for a whole period: a ping
  assert.deepEqual(
    ws.sentJson().map((m) => m.type),
    ["ping"],
  );
  ws.serverSend(JSON.stringify({ name: "interaction.session", data: { kind: "session", event: { type: "pong" } } }));
  timers.advance(15000); // it answered: alive
  assert.equal(instances.length, 1);
  timers.advance(15000); // silent again: ping
  timers.advance(15000); // and no answer: dead
  assert.equal(ws.closedWith.code, 4000);
  const closed = connections.at(-1);
  assert.equal(closed.state, "closed");
  assert.match(closed.detail, /no answer in 30 s/);
  timers.advance(closed.retryInMs);
  assert.equal(instances.length, 2, "it reconnects");
});

test("a listener that connects elsewhere while a drop is reported leaves one socket and no stray retry", () => {
  const { FakeWebSocket, instances } = authApart();
  const timers = fakeTimers();
  let moved = false;
  const client = createClient({
    WebSocket: FakeWebSocket,
    onConnection: (change) => {
      if (change.state !== "closed" || moved) return;
      moved = true;
      client.connect({ ...TARGET, url: "ws://127.0.0.1:5555/ws" });
    },
    timers,
    random: () => 0.5,
  });
  client.connect(TARGET);
  instances[0].serverOpen();
  instances[0].serverSend(frames.ready(0));
  instances[0].serverClose(1006);
  assert.equal(instances.length, 2, "the listener's connect opened the new address at once");
  assert.equal(instances[1].url, "ws://127.0.0.1:5555/ws?session=my%20session");
  assert.deepEqual(
    timers.pendingDelays(),
    [4000],
    "only the new socket's probe: the drop's retry belonged to the old state",
  );
  timers.advance(3999);
  assert.equal(instances.length, 2, "no second socket from a stray retry");
});

test("ladder: a comm rung that cannot be made (the kernel restarted) ends the attempts and says so", () => {
  const { client, instances, timers, connections } = setup();
  const { candidates } = ladder();
  const closedComm = {
    ...candidates[2],
    create: () => {
      throw new Error("Cannot send on a closed comm");
    },
  };
  client.connect({ candidates: [candidates[0], closedComm], token: TOKEN, session: "s" });
  instances[0].serverClose(1006);
  const last = connections.at(-1);
  assert.equal(last.state, "error");
  assert.equal(last.detail, "the kernel restarted: run the cell again (the widget's channel is closed)");
  assert.equal(timers.size, 0, "no retry is scheduled");
  assert.equal(instances.length, 1, "the dead address is not tried again");
  assert.equal(client.isOpen(), false);
  noSecret(connections);
});
