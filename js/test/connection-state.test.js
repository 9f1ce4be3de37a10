import assert from "node:assert/strict";
import { test } from "node:test";

import {
  canSend,
  closeDetail,
  initialConnectionState,
  KERNEL_GONE,
  KERNEL_SILENT_WALKS,
  LATE_READY_FACTOR,
  step,
} from "../src/connection-state.js";
import { parse } from "../src/protocol.js";
import { frames } from "./helpers.js";

const SETTINGS = { baseMs: 500, capMs: 10000, probeMs: 4000, heartbeatMs: 15000, random: () => 0.5 };
const PROXY = "ws://localhost:8888/proxy/4321/ws";
const DIRECT = "ws://127.0.0.1:4321/ws";
const createComm = () => ({});
const CANDIDATES = [
  { transport: "proxy", url: PROXY, reason: "proxy (jupyter-server-proxy)" },
  { transport: "direct", url: DIRECT, reason: "direct (the page is on this machine)" },
  { transport: "comm", url: "comm:", reason: "comm (the widget's channel)", create: createComm },
];
const CONNECT = { type: "connect", candidates: CANDIDATES, skipped: ["pre: skipped"], session: "s", sameServer: false };

/** One effect as a short line, so a step's effects read as a list. */
function line(effect) {
  switch (effect.type) {
    case "open":
      return `open ${effect.socket} ${effect.url}`;
    case "close":
      return `close ${effect.socket} (${effect.code})`;
    case "detach":
      return `detach ${effect.socket}`;
    case "send":
      return `send ${effect.frame}`;
    case "start-timer":
      return `start ${effect.timer} ${effect.ms}`;
    case "stop-timer":
      return `stop ${effect.timer}`;
    case "deliver":
      return `deliver ${effect.event.type}`;
    case "report": {
      const { state, transport, detail, retryInMs } = effect.change;
      return `${state} ${transport}${retryInMs === null ? "" : ` in ${retryInMs}`}: ${detail}`;
    }
  }
}

/** Take the inputs in order; return the last step, with the effects of all of them. */
function run(inputs, { state = initialConnectionState(), settings = SETTINGS } = {}) {
  const effects = [];
  for (const input of inputs) {
    const next = step(state, input, settings);
    state = next.state;
    effects.push(...next.effects);
  }
  return { state, effects, lines: effects.map(line) };
}

/** The inputs of a socket's whole handshake: open, the ready frame, then the ready itself. */
function handshake(socket, frame = frames.ready(0)) {
  const event = parse(frame);
  return [
    { type: "opened", socket },
    { type: "frame", socket, event },
    { type: "ready", socket, event },
  ];
}

const closed = (socket, code = 1006, reason = "") => ({ type: "closed", socket, code, reason });
const timeout = (timer) => ({ type: "timeout", timer });

test("connect opens the first candidate, asks to resume nothing and gives it probeMs to say ready", () => {
  const { state, effects } = run([CONNECT]);
  assert.deepEqual(effects, [
    {
      type: "report",
      change: { state: "connecting", transport: "proxy", detail: "trying proxy", retryInMs: null, attempt: 0 },
    },
    { type: "open", socket: 1, url: `${PROXY}?session=s`, protocols: ["llmsock.envelope.v1"], create: null },
    { type: "start-timer", timer: "probe", ms: 4000 },
  ]);
  assert.equal(state.socket, 1);
  assert.deepEqual(state.timers, { probe: true, heartbeat: false, retry: false });
  assert.equal(canSend(state), false, "nothing goes out before ready");
});

test("an opened socket asks for the auth frame, unless its candidate makes its own (the comm)", () => {
  const cases = [
    { candidates: [CANDIDATES[0]], expected: ["send auth"] },
    { candidates: [CANDIDATES[1]], expected: ["send auth"] },
    { candidates: [CANDIDATES[2]], expected: [] },
  ];
  for (const { candidates, expected } of cases) {
    const { state } = run([{ ...CONNECT, candidates }]);
    const { effects } = step(state, { type: "opened", socket: 1 }, SETTINGS);
    assert.deepEqual(effects.map(line), expected, candidates[0].transport);
  }
  const comm = run([{ ...CONNECT, candidates: [CANDIDATES[2]] }]);
  assert.equal(comm.effects[1].create, createComm, "the comm rung's socket is made by its create()");
});

test("a ready makes the socket the connection: probe off, heartbeat on, attempt 0, catch up unless resumed", () => {
  const cases = [
    {
      name: "first connect",
      ready: frames.ready(0),
      expected: ["stop probe", "start heartbeat 15000", "open proxy: proxy (jupyter-server-proxy) (pre: skipped)"],
      extra: { resumed: null, replayed: 0 },
      getHistory: true,
    },
    {
      name: "could not resume",
      ready: frames.readyResume({ epoch: "E2", resumed: false }),
      expected: [
        "stop probe",
        "start heartbeat 15000",
        "open proxy: proxy (jupyter-server-proxy) (pre: skipped); could not resume, reloaded the transcript",
      ],
      extra: { resumed: false, replayed: 0 },
      getHistory: true,
    },
    {
      name: "resumed",
      ready: frames.readyResume({ epoch: "E1", resumed: true, replayed: 3 }),
      expected: [
        "stop probe",
        "start heartbeat 15000",
        "open proxy: proxy (jupyter-server-proxy) (pre: skipped); resumed, 3 events replayed",
      ],
      extra: { resumed: true, replayed: 3 },
      getHistory: false,
    },
  ];
  for (const { name, ready, expected, extra, getHistory } of cases) {
    const before = run([CONNECT, { type: "opened", socket: 1 }]).state;
    const event = parse(ready);
    const { state, effects } = run([{ type: "ready", socket: 1, event }], { state: before });
    const lines = effects.map(line);
    assert.deepEqual(lines, getHistory ? [...expected, "send get_history"] : expected, name);
    const report = effects.find((e) => e.type === "report").change;
    assert.deepEqual({ resumed: report.resumed, replayed: report.replayed }, extra, name);
    assert.equal(state.readySeen && state.established && canSend(state), true, name);
    assert.equal(state.attempt, 0, name);
  }
});

test("a ready hands the event on first; frames after it are handed on and move the cursor", () => {
  const { lines, state } = run([
    CONNECT,
    ...handshake(1, frames.readyResume({ epoch: "E1" })),
    { type: "frame", socket: 1, event: parse(frames.history(4, [])) },
    { type: "frame", socket: 1, event: parse(frames.delta(5, "x")) },
    { type: "frame", socket: 1, event: null },
  ]);
  assert.deepEqual(lines.slice(3, 6), ["send auth", "deliver ready", "stop probe"], "handed on, then acted upon");
  assert.deepEqual(lines.slice(-2), ["deliver history", "deliver model.delta"], "garbage is not handed on");
  assert.deepEqual(state.cursor, { epoch: "E1", seq: 5 });
});

test("a heartbeat pings a silent connection and drops one that stays silent", () => {
  // Each row: an input after a ready on candidate 0, and the effects it makes.
  const script = [
    { input: timeout("heartbeat"), expected: ["start heartbeat 15000"], why: "the ready was heard" },
    { input: timeout("heartbeat"), expected: ["send ping", "start heartbeat 15000"], why: "silent: ping" },
    { input: "pong", expected: ["deliver pong"], why: "an answer" },
    { input: timeout("heartbeat"), expected: ["start heartbeat 15000"], why: "alive" },
    { input: timeout("heartbeat"), expected: ["send ping", "start heartbeat 15000"], why: "silent again" },
    {
      input: timeout("heartbeat"),
      expected: ["close 1 (4000)", "closed proxy in 375: no answer in 30 s", "start retry 375"],
      why: "no answer: dead",
    },
  ];
  let { state } = run([CONNECT, ...handshake(1)]);
  const pong = { type: "frame", socket: 1, event: parse({ data: { kind: "control", event: { type: "pong" } } }) };
  for (const { input, expected, why } of script) {
    const next = step(state, input === "pong" ? pong : input, SETTINGS);
    assert.deepEqual(next.effects.map(line), expected, why);
    state = next.state;
  }
  assert.equal(state.established, true, "the transport that worked is tried again");
  assert.equal(state.socket, null);
});

test("heartbeatMs 0 turns the heartbeat off", () => {
  const { state, lines } = run([CONNECT, ...handshake(1)], { settings: { ...SETTINGS, heartbeatMs: 0 } });
  assert.ok(!lines.some((l) => l.includes("heartbeat")));
  assert.deepEqual(state.timers, { probe: false, heartbeat: false, retry: false });
});

test("what a close means depends on its code and on whether the socket or its candidate said ready", () => {
  const cases = [
    {
      name: "a candidate that never said ready gives way to the next one at once",
      before: [CONNECT, { type: "opened", socket: 1 }],
      close: closed(1),
      expected: [
        "detach 1",
        "stop probe",
        "connecting direct: trying direct",
        `open 2 ${DIRECT}?session=s`,
        "start probe 4000",
      ],
      candidate: 1,
      skipped: ["pre: skipped", "proxy: closed (1006)"],
    },
    {
      name: "when the last candidate fails, the ladder starts again from the top after a pause",
      before: [CONNECT, closed(1), closed(2)],
      close: closed(3, 1011, "kernel gone"),
      expected: [
        "detach 3",
        "stop probe",
        "closed proxy in 375: no transport answered (closed (1011: kernel gone))",
        "start retry 375",
      ],
      candidate: 0,
      skipped: ["pre: skipped"],
    },
    {
      name: "a connection that said ready is retried on the same candidate",
      before: [CONNECT, closed(1), ...handshake(2)],
      close: closed(2, 1001, "server stopping"),
      expected: [
        "detach 2",
        "stop heartbeat",
        "closed direct in 375: closed (1001: server stopping)",
        "start retry 375",
      ],
      candidate: 1,
      established: true,
    },
    {
      name: "the candidate that worked failing before ready restarts the ladder after a pause",
      before: [CONNECT, closed(1), ...handshake(2), closed(2), timeout("retry")],
      close: closed(3),
      expected: ["detach 3", "stop probe", "closed proxy in 750: closed (1006)", "start retry 750"],
      candidate: 0,
      established: false,
      skipped: ["pre: skipped"],
    },
    {
      name: "4400 (invalid session id) is an error, never a retry",
      before: [CONNECT, { type: "opened", socket: 1 }],
      close: closed(1, 4400, "invalid sessionId 'a.b'"),
      expected: ["detach 1", "stop probe", "error proxy: closed (4400: invalid sessionId 'a.b')"],
      candidate: 0,
    },
    {
      name: "4400 after ready too",
      before: [CONNECT, ...handshake(1)],
      close: closed(1, 4400, ""),
      expected: ["detach 1", "stop heartbeat", "error proxy: closed (4400)"],
      candidate: 0,
    },
  ];
  for (const { name, before, close, expected, candidate, skipped, established } of cases) {
    const { state } = run(before);
    const next = step(state, close, SETTINGS);
    assert.deepEqual(next.effects.map(line), expected, name);
    assert.equal(next.state.candidate, candidate, name);
    if (skipped) assert.deepEqual(next.state.skipped, skipped, name);
    if (established !== undefined) assert.equal(next.state.established, established, name);
  }
});

test("a close event's words: its code (1006 when missing) and at most 120 characters of reason", () => {
  const cases = [
    [1006, "", "closed (1006)"],
    [undefined, undefined, "closed (1006)"],
    ["1000", "x", "closed (1006: x)"],
    [1011, "kernel gone", "closed (1011: kernel gone)"],
    [1000, "r".repeat(200), `closed (1000: ${"r".repeat(120)})`],
  ];
  for (const [code, reason, expected] of cases) assert.equal(closeDetail(code, reason), expected);
});

test("the probe: a silent candidate gives way to the next; a silent known transport restarts the ladder", () => {
  const fresh = run([CONNECT, timeout("probe")]);
  assert.deepEqual(fresh.lines.slice(-4), [
    "close 1 (1000)",
    "connecting direct: trying direct",
    `open 2 ${DIRECT}?session=s`,
    "start probe 4000",
  ]);
  assert.deepEqual(fresh.state.skipped, ["pre: skipped", "proxy: no answer in 4 s"]);

  const known = run([CONNECT, ...handshake(1), closed(1), timeout("retry"), timeout("probe")]);
  assert.deepEqual(known.lines.slice(-3), [
    "close 2 (1000)",
    "closed proxy in 750: no answer in 4 s",
    "start retry 750",
  ]);
  assert.equal(known.state.established, false, "the next round walks the ladder from the top");
  const retried = run([timeout("retry")], { state: known.state });
  assert.equal(retried.lines[0], "connecting proxy: trying proxy");
});

test("failures back off exponentially up to the cap; a ready starts the schedule again", () => {
  const settings = { ...SETTINGS, random: () => 1 };
  const one = { ...CONNECT, candidates: [CANDIDATES[1]] };
  let { state } = run([one, ...handshake(1)], { settings });
  const delays = [];
  for (let i = 0; i < 8; i += 1) {
    const next = run([closed(state.socket), timeout("retry")], { state, settings });
    delays.push(next.effects.find((e) => e.type === "report" && e.change.state === "closed").change.retryInMs);
    state = next.state;
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  assert.equal(state.attempt, 8);
  const after = run([...handshake(state.socket), closed(state.socket)], { state, settings });
  assert.equal(after.lines.at(-1), "start retry 500");
});

test("a socket that cannot be made counts as a failed candidate, or as a failed retry once established", () => {
  const fresh = run([CONNECT, { type: "open-failed", socket: 1 }]);
  assert.deepEqual(fresh.lines.slice(3), [
    "stop probe",
    "connecting direct: trying direct",
    `open 2 ${DIRECT}?session=s`,
    "start probe 4000",
  ]);
  assert.deepEqual(fresh.state.skipped, ["pre: skipped", "proxy: could not open the connection (bad URL)"]);

  const known = run([CONNECT, ...handshake(1), closed(1), timeout("retry"), { type: "open-failed", socket: 2 }]);
  assert.deepEqual(known.lines.slice(-3), [
    "stop probe",
    "closed proxy in 750: could not open the connection (bad URL)",
    "start retry 750",
  ]);
  assert.equal(known.state.socket, null);
});

test("inputs about a socket that is no longer current, or a timer that is not running, change nothing", () => {
  const { state } = run([CONNECT, closed(1)]); // socket 2 (direct) is current
  const stale = [
    { type: "opened", socket: 1 },
    { type: "open-failed", socket: 1 },
    { type: "frame", socket: 1, event: parse(frames.user(1, "late")) },
    { type: "ready", socket: 1, event: parse(frames.ready(0)) },
    closed(1),
    timeout("retry"),
    timeout("heartbeat"),
  ];
  for (const input of stale) {
    const next = step(state, input, SETTINGS);
    assert.equal(next.state, state, input.type);
    assert.deepEqual(next.effects, [], input.type);
  }
});

test("the same target again is a no-op while a socket exists, and 'go now' while waiting to retry", () => {
  const same = { ...CONNECT, sameServer: true };
  const connected = run([CONNECT]).state;
  const again = step(connected, same, SETTINGS);
  assert.equal(again.state, connected);
  assert.deepEqual(again.effects, []);

  const waiting = run([CONNECT, closed(1), closed(2), closed(3)]).state;
  assert.equal(waiting.timers.retry, true);
  const now = step(waiting, same, SETTINGS);
  assert.deepEqual(now.effects.map(line), [
    "stop retry",
    "connecting proxy: trying proxy",
    `open 4 ${PROXY}?session=s`,
    "start probe 4000",
  ]);
  assert.equal(now.state.attempt, 0);
});

test("a reconnect resumes from the cursor unless the session or the server changed", () => {
  const one = { ...CONNECT, candidates: [CANDIDATES[1]], sameServer: true };
  const { state } = run([
    one,
    ...handshake(1, frames.readyResume({ epoch: "E1" })),
    { type: "frame", socket: 1, event: parse(frames.history(5, [])) },
  ]);
  const cases = [
    { name: "a drop", inputs: [closed(1), timeout("retry")], url: `${DIRECT}?session=s&resume=E1%3A5` },
    {
      name: "another address",
      inputs: [{ ...one, candidates: [CANDIDATES[0]] }],
      url: `${PROXY}?session=s&resume=E1%3A5`,
    },
    { name: "another server", inputs: [{ ...one, sameServer: false }], url: `${DIRECT}?session=s` },
    { name: "another session", inputs: [{ ...one, session: "t" }], url: `${DIRECT}?session=t` },
    { name: "after close", inputs: [{ type: "close" }, one], url: `${DIRECT}?session=s` },
  ];
  for (const { name, inputs, url } of cases) {
    const { effects } = run(inputs, { state });
    assert.equal(effects.filter((e) => e.type === "open").at(-1).url, url, name);
  }
});

test("close stops every timer and the socket, reports closed, and later inputs change nothing", () => {
  const { state } = run([CONNECT, ...handshake(1)]);
  const next = step(state, { type: "close" }, SETTINGS);
  assert.deepEqual(next.effects.map(line), ["stop heartbeat", "close 1 (1000)", "closed websocket: "]);
  assert.equal(canSend(next.state), false);
  for (const input of [closed(1), timeout("heartbeat"), { type: "opened", socket: 1 }]) {
    assert.equal(step(next.state, input, SETTINGS).state, next.state);
  }
});

test("with no candidate at all the client says why, and opens nothing", () => {
  const { lines, state } = run([{ ...CONNECT, candidates: [], skipped: ["direct: the page is remote"] }]);
  assert.deepEqual(lines, ["error websocket: no way to reach the server (direct: the page is remote)"]);
  assert.equal(state.socket, null);
});

test("over a long run the state's timers and socket always match the effects: at most one socket, no timer twice", () => {
  const inputs = [
    CONNECT,
    { type: "opened", socket: 1 },
    timeout("probe"),
    { type: "open-failed", socket: 2 },
    closed(3),
    timeout("retry"),
    ...handshake(4),
    timeout("heartbeat"),
    timeout("heartbeat"),
    timeout("heartbeat"),
    timeout("retry"),
    { ...CONNECT, sameServer: true },
    ...handshake(5),
    closed(5, 1006),
    timeout("retry"),
    { ...CONNECT, session: "other" },
    { type: "close" },
  ];
  let state = initialConnectionState();
  const running = new Set();
  let socket = null;
  for (const input of inputs) {
    if (input.type === "timeout") running.delete(input.timer); // it fired
    if (input.type === "open-failed" && input.socket === socket) socket = null; // it never was
    const next = step(state, input, SETTINGS);
    for (const effect of next.effects) {
      if (effect.type === "start-timer") {
        assert.ok(!running.has(effect.timer), `${effect.timer} started while running`);
        running.add(effect.timer);
      } else if (effect.type === "stop-timer") {
        assert.ok(running.delete(effect.timer), `${effect.timer} stopped while not running`);
      } else if (effect.type === "open") {
        assert.equal(socket, null, "a socket opened while another is current");
        socket = effect.socket;
      } else if (effect.type === "close" || effect.type === "detach") {
        assert.equal(effect.socket, socket);
        socket = null;
      }
    }
    state = next.state;
    const flagged = Object.entries(state.timers)
      .filter(([, on]) => on)
      .map(([name]) => name);
    assert.deepEqual(flagged.sort(), [...running].sort(), `after ${input.type}`);
    assert.equal(state.socket, socket, `after ${input.type}`);
  }
});

test("a candidate's own probe time (the kernel's connect timeout) replaces probeMs", () => {
  const slow = CANDIDATES.map((c) => ({ ...c, probeMs: 12000 }));
  const { lines, state } = run([{ ...CONNECT, candidates: slow }, timeout("probe")]);
  assert.deepEqual(lines.slice(1, 3), [`open 1 ${PROXY}?session=s`, "start probe 12000"]);
  assert.deepEqual(state.skipped, ["pre: skipped", "proxy: no answer in 12 s"]);
  assert.equal(lines.at(-1), "start probe 12000", "the next rung has the same time");
  for (const probeMs of [0, -1, Number.NaN, undefined]) {
    const odd = CANDIDATES.map((c) => ({ ...c, probeMs }));
    assert.equal(run([{ ...CONNECT, candidates: odd }]).lines.at(-1), "start probe 4000", String(probeMs));
  }
});

test("a socket that opened but is late to say ready gets LATE_READY_FACTOR probe times, and the view is told", () => {
  assert.equal(LATE_READY_FACTOR, 3);
  const late = run([CONNECT, { type: "opened", socket: 1 }, timeout("probe")]);
  assert.deepEqual(late.lines.slice(-2), [
    "connecting proxy: proxy: opened, no answer yet; waiting 8 s more",
    "start probe 8000",
  ]);
  assert.equal(late.state.socket, 1, "the socket is kept");
  const answered = run(
    [
      { type: "frame", socket: 1, event: parse(frames.ready(0)) },
      { type: "ready", socket: 1, event: parse(frames.ready(0)) },
    ],
    {
      state: late.state,
    },
  );
  assert.equal(
    answered.lines.at(-2),
    "open proxy: proxy (jupyter-server-proxy) (pre: skipped)",
    "a late ready is taken",
  );
  const given = run([timeout("probe")], { state: late.state });
  assert.deepEqual(given.lines, [
    "close 1 (1000)",
    "connecting direct: trying direct",
    `open 2 ${DIRECT}?session=s`,
    "start probe 4000",
  ]);
  assert.deepEqual(given.state.skipped, ["pre: skipped", "proxy: no answer in 12 s"]);
  const again = run([{ type: "opened", socket: 2 }, timeout("probe")], { state: given.state });
  assert.equal(again.lines.at(-1), "start probe 8000", "each socket gets its own extension");
});

test("an open report says fallback when a rung above the one taken was tried and failed", () => {
  const cases = [
    { name: "the first rung", inputs: [CONNECT, ...handshake(1)], fallback: false, prefix: "open proxy: proxy" },
    {
      name: "the comm after both sockets",
      inputs: [CONNECT, closed(1), timeout("probe"), ...handshake(3)],
      fallback: true,
      prefix:
        "open comm: fallback: comm (the widget's channel) (pre: skipped; proxy: closed (1006); direct: no answer in 4 s)",
    },
    {
      name: "a reconnect on the rung fallen back to",
      inputs: [CONNECT, closed(1), ...handshake(2), closed(2), timeout("retry"), ...handshake(3)],
      fallback: true,
      prefix: "open direct: fallback: direct",
    },
  ];
  for (const { name, inputs, fallback, prefix } of cases) {
    const { effects } = run(inputs);
    const open = effects.filter((e) => e.type === "report" && e.change.state === "open").at(-1);
    assert.equal(open.change.fallback, fallback, name);
    assert.ok(line(open).startsWith(prefix), `${name}: ${line(open)}`);
  }
});

test("a gone kernel ends the attempts with KERNEL_GONE: a comm that cannot be made, a server that refuses the token", () => {
  const cases = [
    {
      name: "the widget's comm is closed",
      before: [CONNECT, closed(1), closed(2)],
      input: { type: "open-failed", socket: 3 },
      detail: `${KERNEL_GONE} (the widget's channel is closed)`,
    },
    {
      name: "the comm rung that worked cannot be made again",
      before: [{ ...CONNECT, candidates: [CANDIDATES[2]] }, ...handshake(1), closed(1), timeout("retry")],
      input: { type: "open-failed", socket: 2 },
      detail: `${KERNEL_GONE} (the widget's channel is closed)`,
    },
    {
      name: "another server on the old address",
      before: [CONNECT, ...handshake(1), closed(1), timeout("retry"), { type: "opened", socket: 2 }],
      input: closed(2, 4401, "invalid token"),
      detail: `${KERNEL_GONE} (the server on this address does not know this view: closed (4401: invalid token))`,
    },
  ];
  for (const { name, before, input, detail } of cases) {
    const { state } = run(before);
    const next = step(state, input, SETTINGS);
    const last = next.effects.at(-1);
    assert.equal(last.type, "report", name);
    assert.deepEqual([last.change.state, last.change.detail, last.change.retryInMs], ["error", detail, null], name);
    assert.deepEqual(next.state.timers, { probe: false, heartbeat: false, retry: false }, `${name}: no retry`);
    assert.equal(next.state.socket, null, name);
    // A live kernel's connect (a new server: a new token) starts again.
    const revived = step(next.state, { ...CONNECT, sameServer: false }, SETTINGS);
    assert.equal(revived.effects.at(-1).type, "start-timer", name);
  }
  const late = run([CONNECT, { type: "opened", socket: 1 }]);
  const slow = step(late.state, closed(1, 4401, "no auth frame in time"), SETTINGS);
  assert.equal(slow.state.socket, 2, "a 4401 for a late auth frame is not a gone kernel: the next rung");
});

test("walks that end with the sockets failing after one worked and the comm silent mean a gone kernel", () => {
  // A socket rung worked; then the server vanished: each walk's sockets close (the proxy's once
  // it has accepted the socket: nothing is behind it), and the comm says nothing.
  const walk = (first) => [{ type: "opened", socket: first }, closed(first), closed(first + 1), timeout("probe")];
  let { state } = run([CONNECT, ...handshake(1), closed(1), timeout("retry"), closed(2), timeout("retry")]);
  let socket = 3;
  for (let i = 1; i < KERNEL_SILENT_WALKS; i += 1) {
    const next = run(walk(socket), { state });
    assert.match(next.lines.at(-2), /^closed proxy in \d+: no transport answered \(no answer in 4 s\)$/, `walk ${i}`);
    state = run([timeout("retry")], { state: next.state }).state;
    socket += 3;
  }
  const last = run(walk(socket), { state });
  assert.equal(
    last.lines.at(-1),
    `error proxy: ${KERNEL_GONE} (its server refuses connections and the widget's channel is silent)`,
  );
  assert.deepEqual(last.state.timers, { probe: false, heartbeat: false, retry: false }, "no more attempts");

  // Signs of life keep the view retrying: the comm answered (a kernel without a server), a socket
  // stayed open, a server closed one; and so does a view on which no socket rung ever worked (only the comm reaches this
  // kernel, and a busy one is silent).
  const alive = [
    { name: "the comm answers", inputs: [closed(3), closed(4), closed(5, 1011, "no server in this kernel")] },
    {
      name: "the comm opens",
      inputs: [closed(3), closed(4), { type: "opened", socket: 5 }, timeout("probe"), timeout("probe")],
    },
    {
      name: "a socket stays open (a busy server is slow, not gone)",
      inputs: [{ type: "opened", socket: 3 }, timeout("probe"), timeout("probe"), closed(4), timeout("probe")],
    },
    {
      name: "a server closes a socket with a code of its own (full)",
      inputs: [{ type: "opened", socket: 3 }, closed(3, 1013, "full"), closed(4), timeout("probe")],
    },
  ];
  const start = run([CONNECT, ...handshake(1), closed(1), timeout("retry"), closed(2), timeout("retry")]).state;
  for (const { name, inputs } of alive) {
    let s = start;
    for (let i = 0; i < KERNEL_SILENT_WALKS + 1; i += 1) {
      const next = run(
        inputs.map((input) => ("socket" in input ? { ...input, socket: input.socket + 3 * i } : input)),
        {
          state: s,
        },
      );
      assert.notEqual(next.effects.at(-1).change?.state, "error", `${name}, walk ${i}`);
      s = run([timeout("retry")], { state: next.state }).state;
    }
  }
  let never = run([CONNECT]).state;
  for (let i = 0; i < KERNEL_SILENT_WALKS + 1; i += 1) {
    const next = run([closed(3 * i + 1), closed(3 * i + 2), timeout("probe")], { state: never });
    assert.match(next.lines.at(-1), /^start retry/, `never worked, walk ${i}`);
    never = run([timeout("retry")], { state: next.state }).state;
  }
});
