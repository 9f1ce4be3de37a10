import assert from "node:assert/strict";
import { test } from "node:test";

import { parse } from "../src/protocol.js";
import { initialState, MAX_INFOS, MAX_NOTICES, reduce } from "../src/reducer.js";
import { envelope, frames, loadServerEvents } from "./helpers.js";

const ev = (frame) => parse(JSON.stringify(frame));
const run = (state, ...frameList) => frameList.reduce((s, f) => reduce(s, ev(f)), state);
const ready = (seq = 0) => run(initialState(), frames.ready(seq));

test("initialState is empty, idle and connecting over websocket", () => {
  const s = initialState();
  assert.deepEqual(s.messages, []);
  assert.deepEqual(s.notices, []);
  assert.equal(s.status, "idle");
  assert.equal(s.lastSeq, null);
  assert.deepEqual(s.connection, { state: "connecting", transport: "websocket", detail: "", retryInMs: null });
});

test("a whole turn builds a user message and a completed assistant message", () => {
  const s = run(
    ready(0),
    frames.user(1, "Hello"),
    frames.status(2, "generating"),
    frames.start(3),
    frames.delta(4, "Hi"),
    frames.delta(5, " there"),
    frames.usage(6),
    frames.end(7, "stop", "Hi there"),
    frames.status(8, "idle"),
  );
  assert.equal(s.messages.length, 2);
  assert.deepEqual(
    s.messages.map((m) => [m.role, m.text, m.status, m.turnId]),
    [
      ["user", "Hello", "complete", "t1"],
      ["assistant", "Hi there", "complete", "t1"],
    ],
  );
  assert.equal(s.messages[0].id, "m-t1");
  assert.equal(s.messages[1].id, "t1:a");
  assert.deepEqual(s.messages[1].usage, { inputTokens: 3, outputTokens: 4 });
  assert.equal(s.status, "idle");
  assert.equal(s.lastSeq, 8);
});

test("start creates a streaming assistant message and deltas append to it", () => {
  let s = run(ready(), frames.user(1, "q"), frames.start(2));
  assert.equal(s.messages[1].status, "streaming");
  assert.equal(s.messages[1].text, "");
  s = run(s, frames.delta(3, "a"), frames.delta(4, "b"));
  assert.equal(s.messages[1].text, "ab");
  assert.equal(s.messages[1].status, "streaming");
});

test("a delta copies the array and replaces only the streaming message", () => {
  const before = run(ready(), frames.user(1, "q"), frames.start(2), frames.delta(3, "a"));
  const after = reduce(before, ev(frames.delta(4, "b")));
  assert.notEqual(after, before);
  assert.notEqual(after.messages, before.messages);
  assert.equal(after.messages[0], before.messages[0], "the user message object is reused");
  assert.notEqual(after.messages[1], before.messages[1]);
  assert.equal(before.messages[1].text, "a", "the old state is not mutated");
  assert.equal(after.notices, before.notices);
});

test("end maps finishReason to the message status and takes the final text", () => {
  const base = run(ready(), frames.user(1, "q"), frames.start(2), frames.delta(3, "I a"));
  assert.equal(run(base, frames.end(4, "stop", "I am")).messages[1].status, "complete");
  assert.equal(run(base, frames.end(4, "stop", "I am")).messages[1].text, "I am");
  assert.equal(run(base, frames.end(4, "length", "I a")).messages[1].status, "length");
  const aborted = run(base, frames.end(4, "aborted", "I a")).messages[1];
  assert.equal(aborted.status, "aborted");
  assert.equal(aborted.text, "I a");
});

test("a model error sets status error with code and message in place", () => {
  const s = run(
    ready(),
    frames.user(1, "q"),
    frames.start(2),
    frames.delta(3, "You"),
    frames.modelError(4, "You said"),
  );
  assert.equal(s.messages[1].status, "error");
  assert.equal(s.messages[1].text, "You said");
  assert.deepEqual(s.messages[1].error, { code: "model_error", message: "boom" });
});

test("a turn aborted before the model started still gets an aborted assistant message", () => {
  const s = run(ready(), frames.user(1, "q"), frames.end(2, "aborted", ""));
  assert.equal(s.messages.length, 2);
  assert.equal(s.messages[1].id, "t1:a");
  assert.equal(s.messages[1].status, "aborted");
});

test("status events drive the session status", () => {
  let s = run(ready(), frames.status(1, "generating"));
  assert.equal(s.status, "generating");
  s = run(s, frames.status(2, "paused"));
  assert.equal(s.status, "paused");
  s = run(s, frames.status(3, "idle"));
  assert.equal(s.status, "idle");
});

test("diagnostics become notices placed after the messages so far", () => {
  const s = run(ready(), frames.user(1, "q"), frames.diagnostic(2, "warning", "store_error", "could not save"));
  assert.equal(s.notices.length, 1);
  assert.deepEqual(
    {
      kind: s.notices[0].kind,
      level: s.notices[0].level,
      code: s.notices[0].code,
      message: s.notices[0].message,
      afterIndex: s.notices[0].afterIndex,
    },
    { kind: "diagnostic", level: "warning", code: "store_error", message: "could not save", afterIndex: 1 },
  );
});

test("error replies become error notices (they have no sequence)", () => {
  const s = run(
    ready(5),
    frames.errorReply("queue_full", "too many prompts"),
    frames.errorReply("invalid_message", "empty prompt"),
  );
  assert.deepEqual(
    s.notices.map((n) => [n.kind, n.level, n.code]),
    [
      ["reply", "error", "queue_full"],
      ["reply", "error", "invalid_message"],
    ],
  );
  assert.notEqual(s.notices[0].id, s.notices[1].id);
  assert.equal(s.lastSeq, 5);
});

test("notices are capped", () => {
  let s = ready();
  for (let i = 1; i <= MAX_NOTICES + 5; i += 1) s = run(s, frames.diagnostic(i, "warning", "store_error", "x"));
  assert.equal(s.notices.length, MAX_NOTICES);
  assert.equal(s.notices.at(-1).id, `n${MAX_NOTICES + 5}`);
});

test("cleared empties the transcript and its notices", () => {
  const s = run(
    ready(),
    frames.user(1, "q"),
    frames.diagnostic(2, "warning", "store_error", "x"),
    frames.diagnostic(3),
    frames.end(4, "stop", "a"),
    frames.cleared(5),
  );
  assert.deepEqual(s.messages, []);
  assert.deepEqual(s.notices, []);
  assert.deepEqual(s.infos, []);
  assert.equal(s.lastSeq, 5);
});

test("ready sets the sequence baseline and the status", () => {
  const s = ready(41);
  assert.equal(s.lastSeq, 41);
  assert.equal(reduce(s, ev(frames.user(41, "old"))), s, "an event at the ready sequence is old");
  assert.equal(run(s, frames.user(42, "new")).messages.length, 1);
  assert.equal(run(initialState(), frames.ready(3, "generating")).status, "generating");
});

test("ready after a server restart lowers the baseline so new events are not dropped", () => {
  let s = run(ready(0), frames.user(1, "q"), frames.start(2), frames.end(3, "stop", "a"));
  s = run(s, frames.ready(0));
  assert.equal(s.lastSeq, 0);
  assert.equal(s.messages.length, 2, "the transcript stays until the history arrives");
  s = run(s, frames.history(0, []), frames.user(1, "again"));
  assert.deepEqual(
    s.messages.map((m) => m.text),
    ["again"],
  );
});

test("ready for another session id clears the transcript", () => {
  let s = run(ready(0), frames.user(1, "q"));
  s = run(s, frames.ready(7, "idle", "other"));
  assert.deepEqual(s.messages, []);
  assert.equal(s.sessionId, "other");
});

test("duplicate and old sequences are ignored and return the same state", () => {
  const s = run(ready(), frames.user(1, "q"), frames.start(2), frames.delta(3, "a"));
  assert.equal(reduce(s, ev(frames.delta(3, "a"))), s);
  assert.equal(reduce(s, ev(frames.delta(2, "x"))), s);
  assert.equal(reduce(s, ev(frames.user(1, "q"))), s);
  assert.equal(run(s, frames.delta(4, "b"), frames.delta(4, "b")).messages[1].text, "ab");
});

test("history resets the transcript mid-turn, then only later events apply", () => {
  // A widget shown mid-turn: ready at 10, events 11 and 12 arrive before the reply at 12.
  let s = run(initialState(), frames.ready(10, "generating"), frames.delta(11, "par"), frames.delta(12, "tial"));
  s = run(
    s,
    frames.history(
      12,
      [
        { id: "m0", role: "user", text: "first", turnId: "t0", ts: 1, status: "complete" },
        { id: "t0:a", role: "assistant", text: "one", turnId: "t0", ts: 2, status: "complete" },
        { id: "m1", role: "user", text: "second", turnId: "t1", ts: 3, status: "complete" },
      ],
      { id: "t1:a", role: "assistant", text: "partial", turnId: "t1", ts: 4, status: "streaming" },
      "generating",
    ),
  );
  assert.deepEqual(
    s.messages.map((m) => [m.role, m.text, m.status]),
    [
      ["user", "first", "complete"],
      ["assistant", "one", "complete"],
      ["user", "second", "complete"],
      ["assistant", "partial", "streaming"],
    ],
  );
  assert.equal(s.lastSeq, 12);
  assert.equal(s.status, "generating");
  assert.equal(s.synced, true);
  assert.equal(reduce(s, ev(frames.delta(12, "tial"))), s, "an event the history covers is dropped");
  s = run(s, frames.delta(13, " answer"), frames.end(14, "stop", "partial answer"), frames.status(15, "idle"));
  assert.equal(s.messages.length, 4);
  assert.equal(s.messages[3].text, "partial answer");
  assert.equal(s.messages[3].status, "complete");
  assert.equal(s.status, "idle");
});

test("a history older than what is applied is ignored", () => {
  const s = run(ready(0), frames.user(1, "q"), frames.start(2));
  assert.equal(reduce(s, ev(frames.history(1, []))), s);
});

test("history keeps notices whose place still exists", () => {
  let s = run(
    ready(),
    frames.user(1, "a"),
    frames.diagnostic(2, "warning", "store_error", "x"),
    frames.user(3, "b"),
    frames.user(4, "c"),
    frames.diagnostic(5, "error", "store_error", "y"),
  );
  s = run(
    s,
    frames.ready(5),
    frames.history(5, [{ id: "x", role: "user", text: "a", turnId: "t1", ts: 1, status: "complete" }]),
  );
  assert.deepEqual(
    s.notices.map((n) => n.afterIndex),
    [1],
  );
});

test("connection events set the connection and kernel errors show without breaking an open one", () => {
  let s = reduce(initialState(), { type: "connection", state: "open", transport: "websocket", detail: "" });
  assert.equal(s.connection.state, "open");
  s = reduce(s, { type: "kernel.error", message: "nope" });
  assert.equal(s.connection.state, "open");
  assert.equal(s.kernelError, "nope");
  s = reduce(s, { type: "connection", state: "closed", detail: "closed (1006)", retryInMs: 800 });
  assert.deepEqual(s.connection, { state: "closed", transport: "websocket", detail: "closed (1006)", retryInMs: 800 });
  s = reduce(s, { type: "kernel.error", message: "server failed" });
  assert.equal(s.connection.state, "error");
  assert.equal(s.connection.detail, "server failed");
  s = reduce(s, { type: "connection", state: "connecting" });
  assert.equal(s.kernelError, null);
});

test("replies other than get_history, pongs and unknown events change nothing", () => {
  const s = ready(3);
  for (const c of loadServerEvents()) {
    const e = ev(c.envelope);
    if (["control.result", "pong"].includes(e.type)) assert.equal(reduce(s, e), s, c.name);
  }
  assert.equal(reduce(s, { type: "unknown" }), s);
  assert.equal(reduce(s, null), s);
});

test("every fixture envelope reduces without throwing", () => {
  let s = initialState();
  for (const c of loadServerEvents()) s = reduce(s, ev(c.envelope));
  assert.ok(Array.isArray(s.messages));
});

// --- reasoning and tools ---

const toolTurn = () => run(ready(), frames.user(1, "q"), frames.start(2));

test("the assistant message starts with no reasoning and no tools", () => {
  const m = toolTurn().messages[1];
  assert.equal(m.reasoning, "");
  assert.deepEqual(m.tools, []);
});

test("reasoning deltas accumulate apart from the text and never append undefined", () => {
  const s = run(toolTurn(), frames.reasoning(3, "Think: "), frames.reasoning(4, "2+2"), frames.delta(5, "4"));
  assert.equal(s.messages[1].reasoning, "Think: 2+2");
  assert.equal(s.messages[1].text, "4");
  assert.ok(!s.messages[1].text.includes("undefined"));
});

test("a delta with nothing in it changes no message", () => {
  const s = toolTurn();
  const after = reduce(s, ev(envelopeDelta(3, {})));
  assert.equal(after.messages, s.messages);
  assert.equal(after.lastSeq, 3);
  // An event built by hand without a text field must not append "undefined" either.
  const handMade = reduce(s, { type: "model.delta", seq: 4, turnId: "t1", reasoning: "r" });
  assert.equal(handMade.messages[1].text, "");
  assert.equal(handMade.messages[1].reasoning, "r");
});

function envelopeDelta(seq, fields) {
  return {
    name: "interaction.model",
    data: { kind: "model", event: { type: "delta", ...fields }, meta: { sequence: seq, turnId: "t1", timestamp: 1 } },
  };
}

test("a tool call adds a running record with pretty JSON arguments", () => {
  const s = run(toolTurn(), frames.toolCall(3, "call_1", "calculate", { expression: "2+2" }));
  assert.deepEqual(s.messages[1].tools, [
    {
      id: "call_1",
      name: "calculate",
      arguments: '{\n  "expression": "2+2"\n}',
      status: "running",
      result: null,
      error: null,
      durationMs: null,
    },
  ]);
  assert.equal(s.messages[1].text, "");
});

test("a tool call with invalid JSON arguments keeps the raw string", () => {
  const fixture = loadServerEvents().find((c) => c.name === "tool call with invalid json arguments");
  const s = reduce(toolTurn(), ev(fixture.envelope));
  assert.equal(s.messages[1].tools[0].arguments, '{"expression": ');
  assert.equal(s.messages[1].tools[0].status, "running");
});

test("an ok tool result completes its call with result and duration", () => {
  const s = run(
    toolTurn(),
    frames.toolCall(3, "c1", "calculate", { expression: "2+2" }),
    frames.toolOk(4, "c1", "calculate", 4, 2),
  );
  const [tool] = s.messages[1].tools;
  assert.deepEqual(
    [tool.status, tool.result, tool.error, tool.durationMs, tool.arguments],
    ["complete", 4, null, 2, '{\n  "expression": "2+2"\n}'],
  );
});

test("an error tool result marks its call as error with code and message", () => {
  const s = run(
    toolTurn(),
    frames.toolCall(3, "c1", "calculate", { expression: "1/0" }),
    frames.toolError(4, "c1", "calculate", "tool_error", "ZeroDivisionError: division by zero"),
  );
  const [tool] = s.messages[1].tools;
  assert.equal(tool.status, "error");
  assert.deepEqual(tool.error, { code: "tool_error", message: "ZeroDivisionError: division by zero" });
  assert.equal(tool.durationMs, 1);
});

test("tool results find their call by id and replace only that record", () => {
  const before = run(toolTurn(), frames.toolCall(3, "a", "one", {}), frames.toolCall(4, "b", "two", {}));
  const after = run(before, frames.toolOk(5, "b", "two", "ok"));
  assert.equal(after.messages[1].tools[0], before.messages[1].tools[0], "the other record is reused");
  assert.deepEqual(
    after.messages[1].tools.map((t) => [t.id, t.status]),
    [
      ["a", "running"],
      ["b", "complete"],
    ],
  );
  assert.equal(before.messages[1].tools[1].status, "running", "the old state is not mutated");
  const orphan = run(after, frames.toolOk(6, "z", "late", 1));
  assert.deepEqual(orphan.messages[1].tools.map((t) => [t.id, t.name, t.status]).at(-1), ["z", "late", "complete"]);
});

test("the fixture tool events build one call with its result", () => {
  const byName = Object.fromEntries(loadServerEvents().map((c) => [c.name, c.envelope]));
  const s = run(toolTurn(), byName["model reasoning"], byName["tool call"], byName["tool result ok"]);
  assert.equal(s.messages[1].reasoning, "Think: 2+2");
  assert.deepEqual(
    s.messages[1].tools.map((t) => [t.id, t.status, t.result]),
    [["call_1", "complete", 4]],
  );
});

test("a turn that ends while a tool runs marks it error aborted", () => {
  const base = run(
    toolTurn(),
    frames.toolCall(3, "done", "fast", {}),
    frames.toolOk(4, "done", "fast", 1),
    frames.toolCall(5, "slow", "sleep", {}),
  );
  for (const last of [frames.end(6, "aborted", ""), frames.modelError(6, "")]) {
    const tools = run(base, last).messages[1].tools;
    assert.deepEqual(
      tools.map((t) => [t.id, t.status, t.error?.code ?? null]),
      [
        ["done", "complete", null],
        ["slow", "error", "aborted"],
      ],
    );
    assert.equal(tools[1].error.message, "the turn ended before the tool finished");
    assert.equal(tools[0], base.messages[1].tools[0], "finished records are reused");
  }
  const ended = run(run(toolTurn(), frames.toolCall(3, "c", "x", {})), frames.end(4, "stop", "fine"));
  assert.equal(ended.messages[1].tools[0].status, "error");
  const clean = run(base, frames.toolOk(6, "slow", "sleep", null), frames.end(7, "stop", "ok"));
  assert.equal(clean.messages[1].tools[1].status, "complete");
});

test("history reset reads reasoning and tools from messages and current", () => {
  let s = run(initialState(), frames.ready(10, "generating"), frames.reasoning(11, "stale"));
  s = run(
    s,
    frames.history(
      11,
      [
        { id: "m0", role: "user", text: "2+2?", turnId: "t0", ts: 1, status: "complete" },
        {
          id: "t0:a",
          role: "assistant",
          text: "4",
          turnId: "t0",
          ts: 2,
          status: "complete",
          reasoning: "Think",
          tools: [
            { id: "c1", name: "calculate", arguments: '{"expression":"2+2"}', status: "complete", result: 4 },
            { id: "c9", name: "ghost", arguments: "{}", status: "running" },
          ],
        },
        { id: "m1", role: "user", text: "time?", turnId: "t1", ts: 3, status: "complete" },
      ],
      {
        id: "t1:a",
        role: "assistant",
        text: "",
        turnId: "t1",
        ts: 4,
        status: "streaming",
        reasoning: "Look at the clock",
        tools: [{ id: "c2", name: "get_current_time", arguments: "{}", status: "running" }],
      },
      "generating",
    ),
  );
  const [, done, , current] = s.messages;
  assert.equal(done.reasoning, "Think");
  assert.deepEqual(
    done.tools.map((t) => [t.id, t.status, t.result]),
    [
      ["c1", "complete", 4],
      ["c9", "error", null],
    ],
  );
  assert.equal(done.tools[1].error.code, "aborted", "a finished message cannot have a running tool");
  assert.equal(current.reasoning, "Look at the clock");
  assert.deepEqual(
    current.tools.map((t) => [t.id, t.status]),
    [["c2", "running"]],
  );
  s = run(s, frames.reasoning(12, "."), frames.toolOk(13, "c2", "get_current_time", "12:00", 5, "t1"));
  assert.equal(s.messages[3].reasoning, "Look at the clock.");
  assert.deepEqual(
    s.messages[3].tools.map((t) => [t.id, t.status, t.result, t.durationMs]),
    [["c2", "complete", "12:00", 5]],
  );
  assert.equal(s.messages[3].tools[0].arguments, "{}");
});

test("a resumed ready keeps the transcript and the sequence, so replayed events are dropped", () => {
  let s = run(ready(0), frames.user(1, "q"), frames.start(2), frames.delta(3, "a"), frames.delta(4, "b"));
  const resumed = run(s, frames.readyResume({ sequence: 9, status: "generating", resumed: true, replayed: 5 }));
  assert.equal(resumed.lastSeq, 4, "not the ready's sequence: the replay comes after it");
  assert.equal(resumed.messages, s.messages, "the same transcript");
  assert.equal(resumed.status, "generating");
  assert.equal(resumed.synced, s.synced);
  s = run(resumed, frames.delta(3, "a"), frames.delta(4, "b"), frames.delta(5, "c"), frames.end(6, "stop"));
  assert.equal(s.messages[1].text, "abc");
  assert.equal(s.messages[1].status, "complete");
  assert.equal(s.lastSeq, 6);
});

test("a ready that could not resume (or did not ask) sets a new baseline as before", () => {
  const s = run(ready(0), frames.user(1, "q"), frames.start(2));
  for (const resumed of [false, undefined]) {
    const next = run(s, frames.readyResume({ sequence: 0, resumed }));
    assert.equal(next.lastSeq, 0);
    assert.equal(next.synced, false);
    assert.equal(next.messages.length, 2, "the transcript stays until the history arrives");
  }
});

test("a resumed ready for another session still clears the transcript", () => {
  const s = run(ready(0), frames.user(1, "q"));
  const next = run(s, frames.readyResume({ sequence: 3, sessionId: "other", resumed: true }));
  assert.deepEqual(next.messages, []);
  assert.equal(next.sessionId, "other");
  assert.equal(next.lastSeq, 3);
});

test("connection events carry the transport (websocket when unsaid)", () => {
  let s = reduce(initialState(), { type: "connection", state: "open", transport: "comm", detail: "comm (forced)" });
  assert.deepEqual(s.connection, { state: "open", transport: "comm", detail: "comm (forced)", retryInMs: null });
  s = reduce(s, { type: "connection", state: "closed", transport: "proxy", retryInMs: 500 });
  assert.equal(s.connection.transport, "proxy");
  s = reduce(s, { type: "connection", state: "connecting" });
  assert.equal(s.connection.transport, "websocket");
});

test("a prompt shown live is the same message as the one a transcript reload brings", () => {
  const live = run(ready(), frames.user(1, "hi", "t1", "m1")).messages[0];
  const reloaded = run(
    ready(),
    frames.history(1, [{ id: "m1", role: "user", text: "hi", turnId: "t1", ts: 1, status: "complete" }]),
  ).messages[0];
  assert.deepEqual(live, reloaded);
});

// --- diagnostics by level, and the queue --------------------------------------------------------

// As the hub sends it: one per prompt put behind the running turn, which it names.
const queued = (seq, waiting, turnId = "t1") =>
  envelope(
    "diagnostic",
    { type: "diagnostic", level: "info", code: "queued", message: `prompt queued; ${waiting} waiting` },
    { sequence: seq, turnId },
  );
// What the view shows of them: lines of the transcript, and the status area's quiet notes.
const shown = (s) => ({
  transcript: s.notices.map((n) => `${n.level} ${n.code}: ${n.message}`),
  quiet: (s.infos ?? []).map((n) => `${n.code}: ${n.message}`),
});

test("diagnostics go by level, whatever their code: warnings and errors to the transcript, infos quiet", () => {
  const s = run(
    ready(),
    frames.user(1, "q"),
    frames.diagnostic(2, "info", "history_kept_in_file", "the whole chat is in chat.llmsock.json"),
    frames.diagnostic(3, "warning", "history_truncated", "the notebook keeps the last 200 messages"),
    frames.diagnostic(4, "error", "never_heard_of", "something broke"),
  );
  assert.deepEqual(shown(s), {
    transcript: [
      "warning history_truncated: the notebook keeps the last 200 messages",
      "error never_heard_of: something broke",
    ],
    quiet: ["history_kept_in_file: the whole chat is in chat.llmsock.json"],
  });
  assert.deepEqual(
    s.notices.map((n) => n.afterIndex),
    [1, 1],
  );
});

test("the queued note goes once the queued prompt starts (the queue drained)", () => {
  const anywhere = (s) => [...shown(s).transcript, ...shown(s).quiet].filter((text) => /queued/.test(text));
  let s = run(ready(), frames.user(1, "first", "t1"), frames.status(2, "generating"), queued(3, 1));
  assert.equal(anywhere(s).length, 1, "shown while the prompt waits");
  s = run(s, frames.end(4, "stop", "a", "t1"), frames.status(5, "idle"));
  assert.equal(anywhere(s).length, 1, "it still waits between the turns");
  s = run(s, frames.user(6, "second", "t2"), frames.status(7, "generating"));
  assert.deepEqual(anywhere(s), [], "the queue has drained: nothing says a prompt waits");
  s = run(s, frames.end(8, "stop", "b", "t2"), frames.status(9, "idle"));
  assert.deepEqual(anywhere(s), []);
});

test("the queued note counts down as the waiting prompts start", () => {
  let s = run(ready(), frames.user(1, "a", "t1"), queued(2, 1), queued(3, 2));
  assert.deepEqual(shown(s).quiet, ["queued: prompt queued; 2 waiting"], "one note, the latest");
  s = run(s, frames.end(4, "stop", "x", "t1"), frames.user(5, "b", "t2"));
  assert.deepEqual(shown(s).quiet, ["queued: prompt queued; 1 waiting"]);
  s = run(s, queued(6, 2, "t2")); // one more behind the turn now running
  assert.deepEqual(shown(s).quiet, ["queued: prompt queued; 2 waiting"]);
  s = run(s, frames.end(7, "stop", "y", "t2"), frames.user(8, "c", "t3"));
  assert.deepEqual(shown(s).quiet, ["queued: prompt queued; 1 waiting"]);
  s = run(s, frames.end(9, "stop", "z", "t3"), frames.user(10, "d", "t4"));
  assert.deepEqual(shown(s).quiet, []);
});

test("a reload of an idle session, a clear or another session drop the queued note", () => {
  const waiting = run(ready(), frames.user(1, "a", "t1"), queued(2, 1));
  assert.equal(waiting.waiting, 1);
  const reloaded = run(waiting, frames.ready(2), frames.history(9, [], null, "idle"));
  assert.deepEqual(shown(reloaded).quiet, []);
  assert.equal(reloaded.waiting, 0);
  const busy = run(waiting, frames.ready(2), frames.history(9, [], null, "generating"));
  assert.deepEqual(shown(busy).quiet, ["queued: prompt queued; 1 waiting"]);
  assert.deepEqual(shown(run(waiting, frames.cleared(3))).quiet, []);
  assert.deepEqual(shown(run(waiting, frames.ready(0, "idle", "other"))).quiet, []);
});

test("info notes are about the moment: a newer one of a code replaces it, the next turn ends them", () => {
  let s = run(
    ready(),
    frames.diagnostic(1, "info", "history_restored", "old"),
    frames.diagnostic(2, "info", "history_restored", "new"),
  );
  assert.deepEqual(shown(s).quiet, ["history_restored: new"]);
  for (let i = 0; i < MAX_INFOS + 2; i += 1) s = run(s, frames.diagnostic(3 + i, "info", `code${i}`, "m"));
  assert.equal(s.infos.length, MAX_INFOS);
  assert.equal(s.infos.at(-1).code, `code${MAX_INFOS + 1}`);
  s = run(s, frames.user(20, "next"));
  assert.deepEqual(shown(s), { transcript: [], quiet: [] });
});

test("a prompt queued before the running turn showed itself waits for the turn after that one", () => {
  // Two prompts in one go: the second is queued before the first turn's events are out.
  let s = run(ready(), queued(1, 1, ""), frames.user(2, "a", "t1"));
  assert.deepEqual(shown(s).quiet, ["queued: prompt queued; 1 waiting"]);
  s = run(s, frames.end(3, "stop", "x", "t1"), frames.user(4, "b", "t2"));
  assert.deepEqual(shown(s).quiet, []);
});

test("a merged delta carries the last sequence of the deltas it stands for: its text is applied once", () => {
  // docs/protocol.md 5.1: deltas 4, 5 and 6 that waited together leave as one delta with sequence 6.
  const s = run(ready(), frames.user(1, "q"), frames.status(2, "generating"), frames.start(3));
  const merged = run(s, frames.delta(6, "abc"), frames.delta(7, "d"), frames.end(8, "stop", "abcd"));
  assert.equal(merged.messages[1].text, "abcd");
  assert.equal(merged.lastSeq, 8);
  // A replay of what that merged delta covered changes nothing.
  const replayed = run(s, frames.delta(6, "abc"));
  assert.equal(reduce(replayed, ev(frames.delta(5, "b"))), replayed);
});
