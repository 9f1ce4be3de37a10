import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { approvalText, codeOf, countdownText, deadlineOf, fenced } from "../src/approval.js";
import { approval, normalizeMessage, parse } from "../src/protocol.js";
import { initialState, reduce } from "../src/reducer.js";
import { toolStatusText } from "../src/steps.js";
import { connectedWidget, envelope, fakeTimers, frames, mountView } from "./helpers.js";

// --- frames of a call that waits for approval (docs/protocol.md, "Approval") ---

const CODE = "import math\nresult = math.sqrt(16)\nprint('<b>', result)";

const asked = (seq, id, name, args, timeoutMs = 120000, ts = 1000, turnId = "t1") =>
  envelope(
    "model",
    { type: "delta", approval: { toolCallId: id, toolName: name, arguments: args, timeoutMs } },
    { sequence: seq, turnId, timestamp: ts },
  );
const decided = (seq, id, name, approved, reason = "user", turnId = "t1") =>
  envelope(
    "model",
    { type: "delta", approvalResult: { toolCallId: id, toolName: name, approved, reason } },
    { sequence: seq, turnId },
  );
const refused = (message = "no tool call 'c1' is waiting for approval", requestId = "w-1") =>
  envelope("control", { type: "result", action: "approval", ok: false, message, data: {}, requestId });

const run = (state, ...list) => list.reduce((s, f) => reduce(s, parse(JSON.stringify(f))), state);
const open = (s) => reduce(s, { type: "connection", state: "open" });
const closed = (s) => reduce(s, { type: "connection", state: "closed", retryInMs: 1000 });
/** A turn whose model called `name` with `args` and now waits for the user's approval. */
const waiting = (name = "run_code", args = { code: CODE }, id = "c1") =>
  run(
    open(initialState()),
    frames.ready(0, "generating"),
    frames.user(1, "/tool"),
    frames.start(2),
    frames.toolCall(3, id, name, args),
    asked(4, id, name, args),
  );

// --- protocol ---

test("approval deltas parse into the request and the decision; other deltas carry neither", () => {
  const request = parse(asked(4, "c1", "run_code", { code: "x = 1" }, 5000, 777));
  assert.deepEqual(request.approval, {
    id: "c1",
    name: "run_code",
    arguments: '{\n  "code": "x = 1"\n}',
    timeoutMs: 5000,
  });
  assert.equal(request.ts, 777);
  assert.equal(request.approvalResult, null);
  assert.equal(parse(asked(4, "c1", "t", "not json")).approval.arguments, "not json");
  const outcomes = [
    [true, "user", "approved"],
    [false, "user", "denied"],
    [false, "timeout", "timeout"],
    [false, "aborted", "aborted"],
    [false, "something new", "denied"],
  ];
  for (const [ok, reason, want] of outcomes) {
    assert.deepEqual(parse(decided(5, "c1", "run_code", ok, reason)).approvalResult, {
      id: "c1",
      name: "run_code",
      approval: want,
    });
  }
  const text = parse(frames.delta(3, "hi"));
  assert.equal(text.approval, null);
  assert.equal(text.approvalResult, null);
});

test("the server's approval frames (the shared wire fixture) parse as the widget needs them", () => {
  const path = join(
    dirname(fileURLToPath(import.meta.url)),
    "..",
    "..",
    "tests",
    "fixtures",
    "wire",
    "approval_events.json",
  );
  const cases = JSON.parse(readFileSync(path, "utf8"));
  const want = {
    ToolApproval: (fields, event) =>
      assert.deepEqual(
        [event.approval.id, event.approval.name, event.approval.timeoutMs, event.ts],
        [fields.call_id, fields.name, fields.timeout_ms, fields.ts],
      ),
    ToolApproved: (fields, event) => {
      assert.deepEqual([event.approvalResult.id, event.approvalResult.name], [fields.call_id, fields.name]);
      assert.equal(
        event.approvalResult.approval,
        fields.approved ? "approved" : ({ user: "denied" }[fields.reason] ?? fields.reason),
      );
    },
  };
  const seen = new Set();
  for (const item of cases) {
    const event = parse(JSON.stringify(item.envelope));
    assert.equal(event.type, "model.delta", item.name);
    want[item.event.class](item.event.fields, event);
    seen.add(item.event.class);
  }
  assert.deepEqual([...seen].sort(), ["ToolApproval", "ToolApproved"]);
  // Arguments as the model wrote them: strict JSON arrives parsed, anything else as its text.
  const [valid, invalid] = cases.filter((c) => c.event.class === "ToolApproval");
  assert.deepEqual(
    JSON.parse(parse(JSON.stringify(valid.envelope)).approval.arguments),
    JSON.parse(valid.event.fields.arguments),
  );
  assert.equal(parse(JSON.stringify(invalid.envelope)).approval.arguments, invalid.event.fields.arguments);
});

test("a history tool record carries its approval only when it needed one", () => {
  const message = normalizeMessage({
    role: "assistant",
    turnId: "t1",
    tools: [
      { id: "a", name: "run_code", arguments: "{}", status: "error", approval: "denied" },
      { id: "b", name: "calculate", arguments: "{}", status: "complete" },
      { id: "c", name: "run_code", arguments: "{}", status: "running", approval: "pending" },
      { id: "d", name: "run_code", arguments: "{}", status: "complete", approval: "bogus" },
    ],
  });
  assert.deepEqual(
    message.tools.map((t) => t.approval),
    ["denied", undefined, "pending", undefined],
  );
  assert.ok(!("approval" in message.tools[1]), "a record without approval has no approval field");
});

test("the client's answer is the contract's frame", () => {
  assert.deepEqual(approval("call_9", true, "w-1"), {
    type: "approval",
    data: { toolCallId: "call_9", approved: true },
    id: "w-1",
  });
  assert.deepEqual(approval("call_9", false, "w-2").data, { toolCallId: "call_9", approved: false });
});

// --- reducer ---

test("an approval request marks the call pending with its timeout and the time it was asked", () => {
  const s = waiting();
  const [tool] = s.messages[1].tools;
  assert.equal(tool.status, "running");
  assert.equal(tool.approval, "pending");
  assert.equal(tool.timeoutMs, 120000);
  assert.equal(tool.askedAt, 1000);
  assert.equal(tool.arguments, `{\n  "code": ${JSON.stringify(CODE)}\n}`, "the call's arguments are kept");
});

test("the decision, then the result, settle the record; a denial keeps the denial", () => {
  const approved = run(waiting(), decided(5, "c1", "run_code", true), frames.toolOk(6, "c1", "run_code", "4.0"));
  assert.deepEqual(
    [approved.messages[1].tools[0].approval, approved.messages[1].tools[0].status],
    ["approved", "complete"],
  );
  const denied = run(
    waiting(),
    decided(5, "c1", "run_code", false),
    frames.toolError(6, "c1", "run_code", "denied", "the user denied this call"),
  );
  assert.deepEqual([denied.messages[1].tools[0].approval, denied.messages[1].tools[0].status], ["denied", "error"]);
  // A request replayed after the decision does not make the call pending again.
  const again = run(denied, asked(7, "c1", "run_code", { code: CODE }));
  assert.equal(again.messages[1].tools[0].approval, "denied");
});

test("a turn that ends while a call waits stops the wait", () => {
  const s = run(waiting(), frames.end(5, "aborted", ""));
  const [tool] = s.messages[1].tools;
  assert.deepEqual([tool.status, tool.approval, tool.error.code], ["error", "aborted", "aborted"]);
});

test("a refused answer is an error notice; other control results show nothing", () => {
  const before = waiting();
  const s = run(before, refused());
  assert.equal(s.notices.length, 1);
  assert.deepEqual(
    [s.notices[0].kind, s.notices[0].code, s.notices[0].message],
    ["reply", "approval", "no tool call 'c1' is waiting for approval"],
  );
  const ok = envelope("control", { type: "result", action: "approval", ok: true, message: "", data: {} });
  assert.equal(run(before, ok), before);
});

// --- pure helpers ---

test("texts, countdown, deadline, run_code's code and its fence", () => {
  assert.deepEqual(["pending", "approved", "denied", "timeout", "aborted", undefined].map(approvalText), [
    "waiting for approval",
    "approved",
    "denied by you",
    "not approved in time",
    "stopped",
    "",
  ]);
  assert.deepEqual([120000, 119001, 61000, 9000, 1, 0, -5].map(countdownText), [
    "2:00",
    "2:00",
    "1:01",
    "0:09",
    "0:01",
    "0:00",
    "0:00",
  ]);
  assert.equal(deadlineOf({ timeoutMs: 5000, askedAt: 1000 }, 3000), 6000, "waited 2 s of 5");
  assert.equal(deadlineOf({ timeoutMs: 5000, askedAt: 9000 }, 3000), 8000, "a clock ahead adds nothing");
  assert.equal(deadlineOf({ timeoutMs: 5000, askedAt: 0 }, 90000), 90000, "a clock far behind: no time left");
  assert.equal(deadlineOf({ timeoutMs: 5000 }, 10), 5010);
  assert.equal(deadlineOf({}, 10), null);
  assert.equal(codeOf({ name: "run_code", arguments: '{"code": "x = 1"}' }), "x = 1");
  assert.equal(codeOf({ name: "run_code", arguments: "{bad" }), null);
  assert.equal(codeOf({ name: "append", arguments: '{"code": "x"}' }), null);
  assert.equal(fenced("a ```` b"), "`````python\na ```` b\n`````");
  const status = (fields) => toolStatusText({ status: "running", durationMs: null, error: null, ...fields });
  assert.equal(status({ approval: "pending" }), "waiting for approval");
  assert.equal(status({ approval: "approved" }), "approved · running…");
  assert.equal(status({ approval: "approved", status: "complete", durationMs: 3 }), "approved · done in 3 ms");
  assert.equal(status({ approval: "denied", status: "error" }), "denied by you");
  assert.equal(status({ approval: "timeout", status: "error" }), "not approved in time");
  assert.equal(status({ approval: "aborted", status: "error" }), "stopped");
});

// --- the card ---

/** A view with fake timers for the countdown and a record of its answers. */
function mount() {
  const timers = fakeTimers();
  const answers = [];
  let accept = true;
  const ctx = mountView({
    onApprove: (id, approved) => {
      answers.push([id, approved]);
      return accept;
    },
    timers,
  });
  const card = () => ctx.el.querySelector("details.llmsock-tool");
  const button = (name) => card()?.querySelector(`button[aria-label="${name}"]`) ?? null;
  return { ...ctx, timers, answers, card, button, refuse: () => (accept = false) };
}

test("a pending run_code call opens its card: the code highlighted, Approve and Deny, the time left", () => {
  const ctx = mount();
  ctx.timers.advance(1000); // the page's clock agrees with the server's timestamp
  ctx.show(waiting());
  const card = ctx.card();
  assert.equal(card.open, true, "a call that waits opens its card");
  assert.equal(card.getAttribute("data-approval"), "pending");
  assert.equal(card.querySelector(".llmsock-tool-state").textContent, "waiting for approval");
  const code = card.querySelector(".llmsock-tool-code pre code");
  assert.equal(code.textContent.trim(), CODE);
  assert.ok(code.querySelector(".hljs-keyword"), "the code is highlighted");
  assert.equal(card.querySelector(".llmsock-tool-code b"), null, "markup in the code stays text");
  assert.equal(card.querySelector("pre.llmsock-tool-args"), null, "the code, not the JSON");
  const approve = ctx.button("Approve run_code");
  const deny = ctx.button("Deny run_code");
  assert.ok(approve && deny);
  assert.equal(approve.tagName, "BUTTON");
  assert.equal(approve.type, "button");
  assert.equal(approve.textContent, "Approve");
  assert.equal(deny.textContent, "Deny");
  assert.equal(approve.disabled, false);
  const group = card.querySelector('[role="group"]');
  assert.equal(group.getAttribute("aria-label"), "Approve run_code?");
  const timer = card.querySelector('[role="timer"]');
  assert.equal(timer.getAttribute("aria-live"), "off", "the seconds are not read out");
  assert.equal(timer.textContent, "2:00 left");
  ctx.timers.advance(1000);
  assert.equal(timer.textContent, "1:59 left");
  ctx.timers.advance(58000);
  assert.equal(timer.textContent, "1:01 left");
  ctx.timers.advance(70000);
  assert.equal(timer.textContent, "0:00 left");
  assert.equal(ctx.timers.size, 0, "no timer once the time is up");
  const announcer = ctx.el.querySelector('[data-role="announcer"]');
  assert.equal(announcer.textContent, "run_code waits for your approval");
});

test("another tool shows its arguments; a late view counts down from the server's time", () => {
  const ctx = mount();
  ctx.timers.advance(31000); // 30 s after the server asked
  const args = { item: "<img src=x onerror=alert(1)>" };
  ctx.show(waiting("append_item", args));
  const card = ctx.card();
  assert.equal(card.querySelector("pre.llmsock-tool-args").textContent, JSON.stringify(args, null, 2));
  assert.equal(card.querySelector("img"), null);
  assert.ok(ctx.button("Approve append_item"));
  assert.equal(card.querySelector('[role="timer"]').textContent, "1:30 left");
});

test("a view that loads a waiting call from the history counts down from when the server asked", () => {
  const ctx = mount();
  ctx.timers.advance(45000); // this page's clock: 45 s after the server asked at 0
  const current = {
    id: "t1:a",
    role: "assistant",
    text: "",
    turnId: "t1",
    ts: 0,
    status: "streaming",
    tools: [
      {
        id: "c1",
        name: "run_code",
        arguments: JSON.stringify({ code: CODE }),
        status: "running",
        approval: "pending",
        askedAt: 0,
        timeoutMs: 120000,
      },
    ],
  };
  const user = { id: "t1:u", role: "user", text: "/tool", turnId: "t1", ts: 0 };
  ctx.show(run(open(initialState()), frames.ready(0, "generating"), frames.history(4, [user], current, "generating")));
  assert.ok(ctx.button("Approve run_code"));
  assert.equal(ctx.card().querySelector('[role="timer"]').textContent, "1:15 left");
  const [record] = normalizeMessage(current).tools;
  assert.deepEqual([record.askedAt, record.timeoutMs], [0, 120000]);
  const decided = normalizeMessage({ ...current, tools: [{ ...current.tools[0], approval: "denied" }] });
  assert.ok(!("timeoutMs" in decided.tools[0]), "only a waiting record says how long it waits");
});

test("Approve answers once and disables both buttons; the decision, then the result, show", () => {
  const ctx = mount();
  const state = waiting();
  ctx.show(state);
  ctx.button("Approve run_code").click();
  ctx.button("Approve run_code").click();
  ctx.button("Deny run_code").click();
  assert.deepEqual(ctx.answers, [["c1", true]]);
  assert.equal(ctx.button("Approve run_code").disabled, true);
  assert.equal(ctx.button("Deny run_code").disabled, true);
  assert.equal(ctx.card().querySelector(".llmsock-approval-note").textContent, "approving…");

  const approved = run(state, decided(5, "c1", "run_code", true));
  ctx.show(approved);
  assert.equal(ctx.button("Approve run_code"), null, "the question goes once decided");
  assert.equal(ctx.card().querySelector(".llmsock-tool-state").textContent, "approved · running…");
  ctx.show(run(approved, frames.toolOk(6, "c1", "run_code", { stdout: "<b> 4.0\n" }, 7)));
  const card = ctx.card();
  assert.equal(card.querySelector(".llmsock-tool-state").textContent, "approved · done in 7 ms");
  assert.equal(card.getAttribute("data-approval"), "approved");
  assert.match(card.querySelector("pre.llmsock-tool-result").textContent, /"stdout": "<b> 4.0\\n"/);
  assert.ok(card.querySelector(".llmsock-tool-code"), "the code it ran still shows");
  assert.equal(ctx.timers.size, 0, "no countdown left");
});

test("Deny answers false; a denial from another view, a timeout and a stop each say so", () => {
  const ctx = mount();
  const state = waiting();
  ctx.show(state);
  ctx.button("Deny run_code").focus();
  ctx.button("Deny run_code").click();
  assert.deepEqual(ctx.answers, [["c1", false]]);
  assert.equal(ctx.card().querySelector(".llmsock-approval-note").textContent, "denying…");
  // The keyboard user's focus goes to the card, not to the page, when the button is disabled.
  const summary = ctx.card().querySelector("summary");
  assert.equal(ctx.window.document.activeElement, summary);
  ctx.show(run(state, decided(5, "c1", "run_code", false)));
  assert.equal(ctx.window.document.activeElement, summary);
  for (const [ok, reason, summary] of [
    [false, "user", "denied by you"],
    [false, "timeout", "not approved in time"],
    [false, "aborted", "stopped"],
  ]) {
    const view = mount(); // another view: its buttons were never clicked
    view.show(
      run(
        waiting(),
        decided(5, "c1", "run_code", ok, reason),
        frames.toolError(6, "c1", "run_code", "denied", "the user denied this call"),
      ),
    );
    const card = view.card();
    assert.equal(view.button("Approve run_code"), null);
    assert.equal(card.querySelector(".llmsock-tool-state").textContent, summary);
    assert.equal(card.querySelector(".llmsock-approval-status").textContent, `Not run: ${summary}.`);
    assert.equal(card.querySelector(".llmsock-tool-error"), null, "the status says it, not the error code");
    assert.equal(card.querySelector(".llmsock-tool-result"), null);
  }
});

test("the buttons wait for an open connection; an answer not sent leaves them enabled", () => {
  const ctx = mount();
  const state = closed(waiting());
  ctx.show(state);
  assert.equal(ctx.button("Approve run_code").disabled, true);
  assert.equal(ctx.card().querySelector(".llmsock-approval-note").textContent, "not connected");
  ctx.button("Approve run_code").click();
  assert.deepEqual(ctx.answers, []);
  ctx.show(open(state));
  assert.equal(ctx.button("Approve run_code").disabled, false);
  ctx.refuse();
  ctx.button("Approve run_code").click();
  assert.deepEqual(ctx.answers, [["c1", true]]);
  assert.equal(ctx.button("Approve run_code").disabled, false, "not sent: still answerable");
});

test("a waiting card the user closed stays closed while the call waits", () => {
  const ctx = mount();
  const state = waiting();
  ctx.show(state);
  assert.equal(ctx.card().open, true);
  ctx.card().open = false;
  ctx.show(run(state, frames.reasoning(5, "thinking")));
  assert.equal(ctx.card().open, false);
});

test("a refused answer shows as an error notice in the transcript", () => {
  const ctx = mount();
  ctx.show(run(waiting(), refused()));
  const notice = ctx.el.querySelector(".llmsock-notice");
  assert.equal(notice.textContent, "Error approval: no tool call 'c1' is waiting for approval");
});

// --- through the client ---

test("clicking Approve sends exactly the contract's frame over the socket", () => {
  const { el, ws, paint, cleanup } = connectedWidget({ status: "generating" });
  for (const frame of [
    frames.user(1, "/tool"),
    frames.start(2),
    frames.toolCall(3, "call_1", "run_code", { code: "x = 1" }),
    asked(4, "call_1", "run_code", { code: "x = 1" }, 120000, 0),
  ]) {
    ws.serverSend(frame);
  }
  paint.flush();
  const before = ws.sent.length;
  el.querySelector('button[aria-label="Approve run_code"]').click();
  assert.equal(ws.sent.length, before + 1, "one frame");
  const sent = JSON.parse(ws.sent.at(-1));
  assert.deepEqual(Object.keys(sent).sort(), ["data", "id", "type"]);
  assert.equal(sent.type, "approval");
  assert.deepEqual(sent.data, { toolCallId: "call_1", approved: true });
  assert.equal(typeof sent.id, "string");
  // The server refuses a late answer: the view says so.
  ws.serverSend(refused("no tool call 'call_1' is waiting for approval", sent.id));
  paint.flush();
  assert.equal(
    el.querySelector(".llmsock-notice").textContent,
    "Error approval: no tool call 'call_1' is waiting for approval",
  );
  cleanup();
});

test("a call that starts waiting scrolls into view if the reader was at the bottom, not otherwise", () => {
  for (const [top, want] of [
    [600, 1400],
    [100, 100],
  ]) {
    const ctx = mount();
    const log = ctx.el.querySelector('[role="log"]');
    let height = 1000;
    Object.defineProperty(log, "scrollHeight", { get: () => height });
    Object.defineProperty(log, "clientHeight", { get: () => 400 });
    const before = run(
      open(initialState()),
      frames.ready(0, "generating"),
      frames.user(1, "/tool"),
      frames.start(2),
      frames.toolCall(3, "c1", "run_code", { code: CODE }),
    );
    ctx.show(before);
    log.scrollTop = top;
    log.dispatchEvent(new ctx.window.Event("scroll"));
    height = 1400; // the card opened
    ctx.show(run(before, asked(4, "c1", "run_code", { code: CODE })));
    assert.equal(ctx.card().open, true);
    assert.equal(log.scrollTop, want);
  }
});
