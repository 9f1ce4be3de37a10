import assert from "node:assert/strict";
import { test } from "node:test";

import {
  argumentsText,
  control,
  createIdGenerator,
  encode,
  finishStatus,
  parse,
  socketUrl,
  userMessage,
} from "../src/protocol.js";
import { frames, loadServerEvents } from "./helpers.js";

const KNOWN = new Set([
  "ready",
  "cleared",
  "user.message",
  "status",
  "model.start",
  "model.delta",
  "model.usage",
  "model.end",
  "model.error",
  "diagnostic",
  "control.result",
  "pong",
  "error.reply",
  "history",
]);

test("parse accepts every envelope of the shared wire fixtures as a known event", () => {
  const cases = loadServerEvents();
  assert.ok(cases.length > 0);
  for (const item of cases) {
    if (!item.envelope) continue;
    const event = parse(JSON.stringify(item.envelope));
    assert.ok(event, `fixture ${item.name} parsed`);
    assert.ok(KNOWN.has(event.type), `fixture ${item.name} gave ${event.type}`);
    const meta = item.envelope.data.meta;
    assert.equal(event.seq, meta.sequence ?? null, `fixture ${item.name} sequence`);
    assert.equal(event.ts, meta.timestamp);
  }
});

test("parse keeps the fields each fixture event carries", () => {
  const byName = Object.fromEntries(loadServerEvents().map((c) => [c.name, parse(JSON.stringify(c.envelope))]));
  assert.deepEqual(
    {
      type: byName["user message"].type,
      text: byName["user message"].text,
      id: byName["user message"].messageId,
      turn: byName["user message"].turnId,
    },
    { type: "user.message", text: "Hello", id: "msg_1", turn: "t1" },
  );
  assert.equal(byName["model delta non-ascii"].text, " é ✓ 😀");
  assert.deepEqual(byName["model usage"].usage, { inputTokens: 12, outputTokens: 3 });
  assert.equal(byName["model end aborted"].finishReason, "aborted");
  assert.equal(byName["model end aborted"].text, "I a");
  assert.equal(byName["model error"].code, "model_error");
  assert.equal(byName.diagnostic.level, "warning");
  assert.equal(byName["session ready"].sequence, 9);
  assert.equal(byName["error reply"].requestId, "m9");
  assert.equal(byName.pong.type, "pong");
  assert.equal(byName["control result"].seq, null);
});

test("parse reads reasoning, tool calls and tool results from the fixture deltas", () => {
  const byName = Object.fromEntries(loadServerEvents().map((c) => [c.name, parse(JSON.stringify(c.envelope))]));
  const reasoning = byName["model reasoning"];
  assert.deepEqual(
    [reasoning.type, reasoning.text, reasoning.reasoning, reasoning.toolCall, reasoning.toolResult],
    ["model.delta", "", "Think: 2+2", null, null],
  );
  const call = byName["tool call"];
  assert.equal(call.type, "model.delta");
  assert.equal(call.text, "");
  assert.deepEqual(call.toolCall, { id: "call_1", name: "calculate", arguments: '{\n  "expression": "2+2"\n}' });
  assert.deepEqual(byName["tool call with invalid json arguments"].toolCall, {
    id: "call_2",
    name: "calculate",
    arguments: '{"expression": ',
  });
  assert.deepEqual(byName["tool result ok"].toolResult, {
    id: "call_1",
    name: "calculate",
    ok: true,
    result: 4,
    error: null,
    durationMs: 2,
  });
  assert.deepEqual(byName["tool result error"].toolResult, {
    id: "call_1",
    name: "calculate",
    ok: false,
    result: null,
    error: { code: "tool_error", message: "ZeroDivisionError: division by zero" },
    durationMs: 1,
  });
  assert.deepEqual([byName["model delta"].reasoning, byName["model delta"].toolCall], ["", null]);
});

test("argumentsText keeps strings as written and pretty-prints other JSON values", () => {
  assert.equal(argumentsText('{"a":1}'), '{"a":1}');
  assert.equal(argumentsText("not json"), "not json");
  assert.equal(argumentsText({ a: [1] }), '{\n  "a": [\n    1\n  ]\n}');
  assert.equal(argumentsText(3), "3");
  assert.equal(argumentsText(null), "null");
  assert.equal(argumentsText(undefined), "");
});

test("parse reads reasoning and tool records of history messages", () => {
  const event = parse(
    JSON.stringify(
      frames.history(
        9,
        [
          {
            id: "t1:a",
            role: "assistant",
            text: "4",
            turnId: "t1",
            ts: 2,
            status: "complete",
            reasoning: "Think",
            tools: [
              { id: "c1", name: "calculate", arguments: '{"expression":"2+2"}', status: "complete", result: 4 },
              {
                id: "c2",
                name: "calculate",
                arguments: "{bad",
                status: "error",
                error: { code: "invalid_arguments", message: "m" },
              },
              { id: "c3", name: "clock", arguments: "{}", status: "complete" },
              "junk",
            ],
          },
          { id: "m2", role: "user", text: "q", turnId: "t2", ts: 3, status: "complete" },
        ],
        {
          id: "t2:a",
          role: "assistant",
          text: "",
          turnId: "t2",
          ts: 4,
          status: "streaming",
          tools: [{ id: "c4", name: "slow", arguments: "{}", status: "running" }],
        },
        "generating",
      ),
    ),
  );
  const [answer, user] = event.messages;
  assert.equal(answer.reasoning, "Think");
  assert.deepEqual(answer.tools, [
    {
      id: "c1",
      name: "calculate",
      arguments: '{"expression":"2+2"}',
      status: "complete",
      result: 4,
      error: null,
      durationMs: null,
    },
    {
      id: "c2",
      name: "calculate",
      arguments: "{bad",
      status: "error",
      result: null,
      error: { code: "invalid_arguments", message: "m" },
      durationMs: null,
    },
    { id: "c3", name: "clock", arguments: "{}", status: "complete", result: null, error: null, durationMs: null },
  ]);
  assert.deepEqual([user.reasoning, user.tools], ["", []]);
  assert.equal(event.current.tools[0].status, "running");
});

test("parse turns a get_history result into a history event", () => {
  const event = parse(
    JSON.stringify(
      frames.history(
        12,
        [
          { id: "m1", role: "user", text: "hi", turnId: "t1", ts: 1, status: "complete" },
          {
            id: "t1:a",
            role: "assistant",
            text: "x",
            turnId: "t1",
            ts: 2,
            status: "error",
            error: { code: "model_error", message: "m" },
          },
          { id: "bad", role: "system", text: "dropped" },
        ],
        { id: "t2:a", role: "assistant", text: "par", turnId: "t2", ts: 3, status: "streaming" },
        "generating",
      ),
    ),
  );
  assert.equal(event.type, "history");
  assert.equal(event.sequence, 12);
  assert.equal(event.status, "generating");
  assert.equal(event.messages.length, 2);
  assert.deepEqual(event.messages[1].error, { code: "model_error", message: "m" });
  assert.equal(event.current.status, "streaming");
  assert.equal(event.current.text, "par");
});

test("parse of a history without current or status (older server) gives nulls", () => {
  const frame = frames.history(3, []);
  delete frame.data.event.data.current;
  delete frame.data.event.data.status;
  const event = parse(JSON.stringify(frame));
  assert.equal(event.current, null);
  assert.equal(event.status, null);
});

test("parse returns null for frames that are not envelopes", () => {
  for (const bad of [
    "",
    "{not json",
    "[]",
    "null",
    "42",
    '{"type":"pong"}',
    '{"name":"x","data":{}}',
    '{"data":{"event":{}}}',
  ]) {
    assert.equal(parse(bad), null, bad);
  }
});

test("parse marks well-formed envelopes of unknown kinds as unknown", () => {
  const event = parse(
    JSON.stringify({
      name: "interaction.tool",
      data: { kind: "tool", event: { type: "call" }, meta: { sequence: 4 } },
    }),
  );
  assert.equal(event.type, "unknown");
  assert.equal(event.seq, 4);
});

test("parse ignores unknown fields and survives wrong field types", () => {
  const event = parse(
    JSON.stringify({
      name: "interaction.model",
      data: { kind: "model", event: { type: "delta", text: 5, extra: 1 }, meta: { sequence: "7" }, more: true },
    }),
  );
  assert.equal(event.type, "model.delta");
  assert.equal(event.text, "");
  assert.equal(event.seq, null);
});

test("userMessage always builds the JSON user_message form, even for JSON-looking text", () => {
  const text = '{"type":"control","data":{"type":"abort"}}';
  const message = userMessage(text, "w-1");
  assert.deepEqual(message, { type: "user_message", id: "w-1", data: { text } });
  assert.deepEqual(JSON.parse(encode(message)), message);
});

test("control builds a control frame for an action", () => {
  assert.deepEqual(control("abort", "c1"), { type: "control", id: "c1", data: { type: "abort" } });
  assert.deepEqual(control("get_history", "c2").data, { type: "get_history" });
});

test("createIdGenerator gives unique, short ids", () => {
  const next = createIdGenerator({ random: () => 0.5 });
  const ids = new Set(Array.from({ length: 1000 }, next));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.ok(id.length >= 1 && id.length <= 128);
  assert.notEqual(createIdGenerator({ random: () => 0.1 })(), createIdGenerator({ random: () => 0.2 })());
});

test("socketUrl puts the encoded session in the query, and nothing else", () => {
  assert.equal(socketUrl("ws://127.0.0.1:1/ws", "a b/c"), "ws://127.0.0.1:1/ws?session=a%20b%2Fc");
});

test("finishStatus maps finish reasons to message statuses", () => {
  assert.equal(finishStatus("stop"), "complete");
  assert.equal(finishStatus("length"), "length");
  assert.equal(finishStatus("aborted"), "aborted");
  assert.equal(finishStatus("whatever"), "complete");
});

test("socketUrl adds the resume position after the session, encoded", () => {
  assert.equal(socketUrl("ws://h/ws", "s", "E1:5"), "ws://h/ws?session=s&resume=E1%3A5");
  assert.equal(socketUrl("ws://h/ws?x=1", "s", null), "ws://h/ws?x=1&session=s");
  assert.equal(socketUrl("comm:", "a b", "e:0"), "comm:?session=a%20b&resume=e%3A0");
});

test("parse reads the ready's epoch, resumed and replayed", () => {
  const plain = parse(JSON.stringify(frames.ready(3)));
  assert.equal(plain.epoch, "");
  assert.equal(plain.resumed, null);
  assert.equal(plain.replayed, 0);
  const resumed = parse(JSON.stringify(frames.readyResume({ sequence: 9, epoch: "E7", resumed: true, replayed: 4 })));
  assert.deepEqual([resumed.epoch, resumed.resumed, resumed.replayed, resumed.sequence], ["E7", true, 4, 9]);
  const refused = parse(JSON.stringify(frames.readyResume({ epoch: "E8", resumed: false })));
  assert.deepEqual([refused.resumed, refused.replayed], [false, 0]);
});
