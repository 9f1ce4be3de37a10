import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { createMarkdownRenderer } from "../src/markdown.js";
import { parse } from "../src/protocol.js";
import { initialState, reduce } from "../src/reducer.js";
import { argumentsDisplay, resultText, toolStatusText } from "../src/steps.js";
import { createView, noticeText, statusText } from "../src/view.js";
import { envelope, frames, viewWithFrames } from "./helpers.js";

function setup() {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const el = window.document.getElementById("el");
  const md = createMarkdownRenderer(window);
  const rendered = [];
  const sent = [];
  let stops = 0;
  let queued = [];
  const view = createView(el, {
    renderMarkdown: (text) => {
      rendered.push(text);
      return md.render(text);
    },
    onSend: (text) => {
      sent.push(text);
      return true;
    },
    onStop: () => {
      stops += 1;
    },
    requestFrame: (fn) => {
      queued.push(fn);
      return queued.length;
    },
    cancelFrame: () => {},
  });
  const frame = () => {
    const fns = queued;
    queued = [];
    for (const fn of fns) fn();
  };
  return { window, el, view, rendered, sent, frame, stops: () => stops, queuedCount: () => queued.length };
}

const open = (s) => reduce(s, { type: "connection", state: "open" });
const run = (state, ...list) => list.reduce((s, f) => reduce(s, parse(JSON.stringify(f))), state);
const q = (el, sel) => el.querySelector(sel);

test("the view builds the chat with accessible parts", () => {
  const { el } = setup();
  assert.ok(q(el, ".llmsock-chat"));
  const log = q(el, '[role="log"]');
  assert.equal(log.getAttribute("aria-live"), "polite");
  const textarea = q(el, "textarea");
  assert.equal(textarea.getAttribute("aria-label"), "Message");
  // The buttons shown (the Clear confirmation is hidden until asked for).
  const buttons = [...el.querySelectorAll("button")].filter((b) => !b.closest("[hidden]")).map((b) => b.textContent);
  assert.deepEqual(buttons, ["Send", "Stop", "Clear"]);
  const status = q(el, ".llmsock-status");
  assert.equal(status.getAttribute("role"), "status");
  assert.equal(status.getAttribute("data-transport"), "websocket");
  assert.equal(q(el, "button.llmsock-send").disabled, true);
  assert.equal(q(el, "button.llmsock-stop").disabled, true);
});

test("messages render with role and status; user text stays text", () => {
  const { el, view, frame } = setup();
  const s = run(
    open(initialState()),
    frames.ready(0),
    frames.user(1, "<img src=x onerror=alert(1)> **not bold**"),
    frames.start(2),
    frames.delta(3, "**bold**"),
  );
  view.update(s);
  frame();
  const msgs = el.querySelectorAll(".llmsock-msg");
  assert.equal(msgs.length, 2);
  assert.equal(msgs[0].getAttribute("data-role"), "user");
  assert.equal(msgs[0].getAttribute("data-status"), "complete");
  assert.equal(q(msgs[0], ".llmsock-body").textContent, "<img src=x onerror=alert(1)> **not bold**");
  assert.equal(el.querySelectorAll("img").length, 0);
  assert.equal(msgs[1].getAttribute("data-role"), "assistant");
  assert.equal(msgs[1].getAttribute("data-status"), "streaming");
  assert.equal(msgs[1].getAttribute("aria-busy"), "true");
  assert.equal(msgs[0].getAttribute("aria-busy"), "false");
  assert.equal(q(msgs[1], "strong").textContent, "bold");
});

test("painting happens at most once per animation frame", () => {
  const { el, view, frame, rendered, queuedCount } = setup();
  let s = run(open(initialState()), frames.ready(0), frames.user(1, "q"), frames.start(2));
  for (let i = 3; i < 20; i += 1) {
    s = run(s, frames.delta(i, "x"));
    view.update(s);
  }
  assert.equal(queuedCount(), 1);
  assert.equal(el.querySelectorAll(".llmsock-msg").length, 0, "nothing painted before the frame");
  frame();
  assert.equal(rendered.length, 1, "one markdown render for seventeen deltas");
  assert.equal(q(el, '[data-role="assistant"]').textContent.trim(), "x".repeat(17));
});

test("a delta re-renders only the streaming message", () => {
  const { el, view, frame, rendered } = setup();
  let s = run(
    open(initialState()),
    frames.ready(0),
    frames.user(1, "a", "t0"),
    frames.start(2, "t0"),
    frames.end(3, "stop", "```python\nx = 1\n```", "t0"),
    frames.user(4, "b", "t1"),
    frames.start(5, "t1"),
    frames.delta(6, "par", "t1"),
  );
  view.update(s);
  frame();
  const before = [...el.querySelectorAll(".llmsock-msg")];
  const firstHtml = before[1].innerHTML;
  assert.ok(q(before[1], ".hljs-number"), "the earlier code block is highlighted");
  rendered.length = 0;
  s = run(s, frames.delta(7, "tial", "t1"));
  view.update(s);
  frame();
  const after = [...el.querySelectorAll(".llmsock-msg")];
  assert.deepEqual(rendered, ["partial"], "only the streaming message was rendered");
  for (const [i, node] of after.entries()) assert.equal(node, before[i], "nodes are kept");
  assert.equal(after[1].innerHTML, firstHtml, "the finished message is untouched, highlight kept");
  assert.equal(after[3].textContent.trim(), "partial");
});

test("aborted, length and error messages show their marker in place", () => {
  const { el, view, frame } = setup();
  const s = run(
    open(initialState()),
    frames.ready(0),
    frames.user(1, "a", "t1"),
    frames.end(2, "aborted", "I a", "t1"),
    frames.user(3, "b", "t2"),
    frames.end(4, "length", "cut", "t2"),
    frames.user(5, "c", "t3"),
    frames.modelError(6, "You said", "t3"),
  );
  view.update(s);
  frame();
  const assistants = el.querySelectorAll('[data-role="assistant"]');
  assert.equal(assistants[0].getAttribute("data-status"), "aborted");
  assert.match(assistants[0].textContent, /\(stopped\)/);
  assert.equal(assistants[1].getAttribute("data-status"), "length");
  assert.equal(assistants[2].getAttribute("data-status"), "error");
  assert.match(assistants[2].textContent, /Error model_error: boom/);
  assert.match(assistants[2].textContent, /You said/);
});

test("notices render in place between messages", () => {
  const { el, view, frame } = setup();
  let s = run(
    open(initialState()),
    frames.ready(0),
    frames.user(1, "a"),
    frames.diagnostic(2, "warning", "store_error", "could not save"),
  );
  s = run(s, frames.errorReply("queue_full", "too many prompts"), frames.user(3, "b", "t2"));
  view.update(s);
  frame();
  const items = [...el.querySelector('[role="log"]').children];
  assert.deepEqual(
    items.map((n) => n.className),
    ["llmsock-msg", "llmsock-notice", "llmsock-notice", "llmsock-msg"],
  );
  assert.equal(items[1].textContent, "Warning: could not save (store_error)");
  assert.equal(items[1].getAttribute("data-level"), "warning");
  assert.equal(items[2].textContent, "Error queue_full: too many prompts");
  s = run(s, frames.cleared(4));
  view.update(s);
  frame();
  assert.equal(el.querySelector('[role="log"]').children.length, 0);
});

test("Send needs text and a connection; Stop needs a running turn", () => {
  const { el, view, frame, window } = setup();
  const textarea = q(el, "textarea");
  const send = q(el, "button.llmsock-send");
  const stop = q(el, "button.llmsock-stop");
  let s = initialState();
  view.update(s);
  frame();
  textarea.value = "hi";
  textarea.dispatchEvent(new window.Event("input"));
  assert.equal(send.disabled, true, "not connected");
  s = open(s);
  view.update(s);
  frame();
  assert.equal(send.disabled, false);
  textarea.value = "   ";
  textarea.dispatchEvent(new window.Event("input"));
  assert.equal(send.disabled, true, "whitespace only");
  assert.equal(stop.disabled, true);
  for (const [status, enabled] of [
    ["generating", true],
    ["paused", true],
    ["idle", false],
  ]) {
    s = run(s, frames.status(s.lastSeq === null ? 1 : s.lastSeq + 1, status));
    view.update(s);
    frame();
    assert.equal(stop.disabled, !enabled, status);
  }
});

test("Enter sends and clears, Shift+Enter does not; Stop calls onStop", () => {
  const { el, view, frame, window, sent, stops } = setup();
  view.update(run(open(initialState()), frames.ready(0), frames.status(1, "generating")));
  frame();
  const textarea = q(el, "textarea");
  textarea.value = "line one";
  textarea.dispatchEvent(new window.Event("input"));
  const shift = new window.KeyboardEvent("keydown", { key: "Enter", shiftKey: true, cancelable: true, bubbles: true });
  textarea.dispatchEvent(shift);
  assert.equal(shift.defaultPrevented, false);
  assert.deepEqual(sent, []);
  const enter = new window.KeyboardEvent("keydown", { key: "Enter", cancelable: true, bubbles: true });
  textarea.dispatchEvent(enter);
  assert.equal(enter.defaultPrevented, true);
  assert.deepEqual(sent, ["line one"]);
  assert.equal(textarea.value, "");
  assert.equal(el.querySelectorAll('[data-role="user"]').length, 0, "no optimistic echo");
  textarea.value = "again";
  textarea.dispatchEvent(new window.Event("input"));
  q(el, "button.llmsock-send").click();
  assert.deepEqual(sent, ["line one", "again"]);
  q(el, "button.llmsock-stop").click();
  assert.equal(stops(), 1);
});

test("the status line shows the connection state", () => {
  const { el, view, frame } = setup();
  const status = q(el, ".llmsock-status");
  let s = initialState();
  view.update(s);
  frame();
  assert.equal(status.textContent, "connecting…");
  assert.equal(status.getAttribute("data-connection"), "connecting");
  s = open(s);
  view.update(s);
  frame();
  assert.equal(status.textContent, "connected · websocket");
  assert.equal(status.getAttribute("data-connection"), "open");
  s = reduce(s, { type: "connection", state: "closed", detail: "closed (1006)", retryInMs: 2100 });
  view.update(s);
  frame();
  assert.equal(status.textContent, "disconnected — retrying in 2 s");
  assert.equal(status.getAttribute("data-connection"), "closed");
  s = reduce(s, { type: "kernel.error", message: "server did not start" });
  view.update(s);
  frame();
  assert.equal(status.textContent, "error: server did not start");
  assert.equal(status.getAttribute("data-connection"), "error");
});

test("statusText and noticeText cover every case", () => {
  assert.equal(statusText({ state: "closed", retryInMs: null }), "disconnected");
  assert.equal(statusText({ state: "closed", retryInMs: 200 }), "disconnected — retrying in 1 s");
  assert.equal(statusText({ state: "error", detail: "" }), "error");
  assert.equal(statusText({ state: "open", transport: "websocket" }, "oops"), "connected · websocket — error: oops");
  assert.equal(noticeText({ kind: "diagnostic", level: "info", code: "queued", message: "m" }), "Info: m (queued)");
  assert.equal(noticeText({ kind: "diagnostic", level: "error", code: "x", message: "" }), "Error: x");
  assert.equal(noticeText({ kind: "reply", level: "error", code: "queue_full", message: "m" }), "Error queue_full: m");
});

/** Scroll `log` as a reader does: the position changes, then a scroll event says so. */
function scrollTo(log, top) {
  log.scrollTop = top;
  log.dispatchEvent(new log.ownerDocument.defaultView.Event("scroll"));
}

test("new content scrolls to the bottom only if the reader was at the bottom", () => {
  const { el, view, frame } = setup();
  const log = q(el, '[role="log"]');
  let height = 1000;
  Object.defineProperty(log, "scrollHeight", { get: () => height });
  Object.defineProperty(log, "clientHeight", { get: () => 400 });
  let s = run(open(initialState()), frames.ready(0), frames.user(1, "a"));
  scrollTo(log, 600); // at the bottom
  view.update(s);
  frame();
  assert.equal(log.scrollTop, 1000);
  height = 1400;
  scrollTo(log, 100); // scrolled up to read
  s = run(s, frames.user(2, "b", "t2"));
  view.update(s);
  frame();
  assert.equal(log.scrollTop, 100);
});

test("while the reader is scrolled up, frames read no layout and scroll nothing", () => {
  const { el, view, frame } = setup();
  const log = q(el, '[role="log"]');
  let reads = 0;
  let writes = 0;
  let top = 0;
  const counted = (value) => ({
    get: () => {
      reads += 1;
      return value;
    },
  });
  Object.defineProperty(log, "scrollHeight", counted(2000));
  Object.defineProperty(log, "clientHeight", counted(400));
  Object.defineProperty(log, "scrollTop", {
    get: () => {
      reads += 1;
      return top;
    },
    set: (value) => {
      writes += 1;
      top = value;
    },
  });
  let s = run(open(initialState()), frames.ready(0), frames.user(1, "q"), frames.start(2));
  view.update(s);
  frame();
  scrollTo(log, 100); // the reader scrolls up
  reads = 0;
  writes = 0;
  for (let i = 3; i < 13; i += 1) {
    s = run(s, frames.delta(i, `word ${i} `));
    view.update(s);
    frame();
  }
  assert.equal(reads, 0, "no layout read in ten frames");
  assert.equal(writes, 0, "no scroll while the reader reads above");
  assert.equal(top, 100);
});

/** A view that paints answers with markdown.js's render.into, on a clock that stands still. */
function setupInto() {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const el = window.document.getElementById("el");
  // A clock that stands still: no slow tail is left for a later frame, whatever the machine's speed.
  Object.defineProperty(window.performance, "now", { value: () => 0 });
  const md = createMarkdownRenderer(window);
  const { view, frame } = viewWithFrames(el, md.render);
  return { window, el, md, view, frame };
}

test("with render.into, a streaming answer keeps its finished blocks and shows the final text", () => {
  const { window, el, md, view, frame } = setupInto();
  const text = "# Title\n\nFirst paragraph.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```py\nx = 1\n```\n\nThe end.";
  let s = run(open(initialState()), frames.ready(0), frames.user(1, "q"), frames.start(2));
  let seq = 3;
  let heading = null;
  let sent = "";
  for (const piece of text.match(/[\s\S]{1,7}/g)) {
    s = run(s, frames.delta(seq++, piece));
    sent += piece;
    view.update(s);
    frame();
    // Finished once the next block's first line is complete.
    if (sent.includes("First paragraph.\n")) heading ??= el.querySelector('[data-role="assistant"] h1');
  }
  s = run(s, frames.end(seq, "stop", text));
  view.update(s);
  frame();
  const body = q(el, '[data-role="assistant"] .llmsock-body');
  assert.equal(body.querySelector("h1"), heading, "the heading was rendered once and kept");
  const expected = window.document.createElement("div");
  expected.innerHTML = md.render(text);
  // The code block's actions are the view's own nodes, added after rendering (code-actions.js).
  const shown = body.cloneNode(true);
  for (const toolbar of shown.querySelectorAll("pre > .llmsock-code-actions")) toolbar.remove();
  assert.equal(shown.innerHTML, expected.innerHTML);
  assert.equal(body.querySelectorAll("pre > .llmsock-code-actions").length, 1, "the code block has its actions");
  assert.equal(body.querySelector("table td")?.textContent, "1");
});

test("an answer that arrives whole is shown in steps, and reads as streaming until all of it shows", () => {
  const { window, el, md, view, frame } = setupInto();
  const text = Array.from({ length: 600 }, (_, n) => `Paragraph ${n} with *some* words.`).join("\n\n");
  const s = run(open(initialState()), ...frames.answered(text));
  view.update(s);
  frame();
  const answer = q(el, '[data-role="assistant"]');
  const body = q(answer, ".llmsock-body");
  assert.equal(answer.getAttribute("data-status"), "streaming", "not all of it shows yet");
  assert.equal(answer.getAttribute("aria-busy"), "true");
  assert.ok(body.textContent.length < text.length / 2, `${body.textContent.length} characters in the first frame`);
  let frames_ = 1;
  for (; answer.getAttribute("data-status") === "streaming" && frames_ < 100; frames_ += 1) frame();
  assert.ok(frames_ >= 3, `shown over ${frames_} frames`);
  assert.equal(answer.getAttribute("data-status"), "complete");
  assert.equal(answer.getAttribute("aria-busy"), "false");
  const expected = window.document.createElement("div");
  expected.innerHTML = md.render(text);
  assert.equal(body.innerHTML, expected.innerHTML);
});

test("a last line held back while streaming shows when the answer ends", () => {
  const { el, view, frame } = setupInto();
  let s = run(open(initialState()), frames.ready(0), frames.user(1, "q"), frames.start(2));
  s = run(s, frames.delta(3, "Title\n---"));
  view.update(s);
  frame();
  const body = q(el, '[data-role="assistant"] .llmsock-body');
  assert.equal(body.querySelector("h2"), null, "a setext underline being typed is not shown yet");
  assert.equal(body.textContent.trim(), "Title");
  s = run(s, frames.end(4, "stop", "Title\n---"));
  view.update(s);
  frame();
  assert.equal(body.querySelector("h2")?.textContent, "Title");
});

test("an answer whose tail was left for later is painted at the next frame, without new events", () => {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const el = window.document.getElementById("el");
  const calls = [];
  let ready = false;
  const renderMarkdown = Object.assign(() => "", {
    into: (body, text, streaming) => {
      calls.push([text, streaming]);
      if (!ready) return false; // a slow tail: not now
      body.textContent = text;
      return true;
    },
  });
  const { view, frame, queued } = viewWithFrames(el, renderMarkdown);
  const s = run(open(initialState()), frames.ready(0), frames.user(1, "q"), frames.start(2), frames.delta(3, "abc"));
  view.update(s);
  frame();
  assert.deepEqual(calls, [["abc", true]]);
  assert.equal(queued.length, 1, "another frame is asked for");
  ready = true;
  frame();
  assert.deepEqual(calls, [
    ["abc", true],
    ["abc", true],
  ]);
  assert.equal(q(el, '[data-role="assistant"] .llmsock-body').textContent, "abc");
  assert.equal(queued.length, 0, "and no more once it is painted");
});

test("destroy removes the UI and its listeners", () => {
  const { el, view } = setup();
  view.update(initialState());
  view.destroy();
  assert.equal(el.children.length, 0);
});

// --- reasoning and tool calls ---

const toolState = (...list) =>
  run(open(initialState()), frames.ready(0), frames.user(1, "2+2?"), frames.start(2), ...list);
const paint = (ctx, s) => {
  ctx.view.update(s);
  ctx.frame();
  return ctx.el.querySelector('[data-role="assistant"]');
};

test("a tool call renders a collapsed details with name, arguments and result as text", () => {
  const ctx = setup();
  let msg = paint(ctx, toolState(frames.toolCall(3, "c1", "calculate", { expression: "2+2" })));
  const details = msg.querySelector("details.llmsock-tool");
  assert.ok(details);
  assert.equal(details.open, false, "collapsed by default");
  assert.equal(details.getAttribute("data-tool-status"), "running");
  const summary = details.querySelector("summary");
  assert.equal(summary.textContent, "\u2699calculaterunning…");
  assert.equal(q(summary, ".llmsock-tool-name").textContent, "calculate");
  assert.equal(q(details, "pre.llmsock-tool-args").textContent, '{\n  "expression": "2+2"\n}');
  assert.equal(q(details, ".llmsock-tool-result"), null, "no result while running");
  assert.ok(
    msg.querySelector(".llmsock-steps").compareDocumentPosition(msg.querySelector(".llmsock-body")) & 4,
    "steps come before the text",
  );

  msg = paint(
    ctx,
    run(
      toolState(frames.toolCall(3, "c1", "calculate", { expression: "2+2" })),
      frames.toolOk(4, "c1", "calculate", { value: 4 }, 2),
      frames.delta(5, "It is 4."),
    ),
  );
  assert.equal(msg.querySelector("details.llmsock-tool"), details, "the same element is updated in place");
  assert.equal(details.getAttribute("data-tool-status"), "complete");
  assert.equal(q(details, ".llmsock-tool-state").textContent, "done in 2 ms");
  const labels = [...details.querySelectorAll(".llmsock-tool-label")].map((n) => n.textContent);
  assert.deepEqual(labels, ["Arguments", "Result"]);
  assert.equal(q(details, "pre.llmsock-tool-result").textContent, '{\n  "value": 4\n}');
  assert.equal(q(msg, ".llmsock-body").textContent.trim(), "It is 4.");
});

test("a failed tool call shows its error code in the summary and the message in the body", () => {
  const ctx = setup();
  const msg = paint(
    ctx,
    toolState(
      frames.toolCall(3, "c1", "calculate", '{"expression": '),
      frames.toolError(4, "c1", "calculate", "invalid_arguments", "not JSON"),
    ),
  );
  const details = msg.querySelector("details.llmsock-tool");
  assert.equal(details.getAttribute("data-tool-status"), "error");
  assert.equal(q(details, ".llmsock-tool-state").textContent, "error invalid_arguments");
  assert.equal(q(details, "pre.llmsock-tool-args").textContent, '{"expression": ', "invalid JSON is shown raw");
  assert.equal(q(details, ".llmsock-tool-error").textContent, "Error: invalid_arguments: not JSON");
  assert.equal(q(details, ".llmsock-tool-result"), null);
});

test("a tool aborted by the end of the turn shows error aborted", () => {
  const ctx = setup();
  const msg = paint(ctx, toolState(frames.toolCall(3, "c1", "sleep", {}), frames.end(4, "aborted", "")));
  const details = msg.querySelector("details.llmsock-tool");
  assert.equal(details.getAttribute("data-tool-status"), "error");
  assert.equal(q(details, ".llmsock-tool-state").textContent, "error aborted");
  assert.equal(
    q(details, ".llmsock-tool-error").textContent,
    "Error: aborted: the turn ended before the tool finished",
  );
});

test("markup in a tool name, arguments, result or error stays text", () => {
  const ctx = setup();
  const evil = "<img src=x onerror=alert(1)>";
  const msg = paint(
    ctx,
    toolState(
      frames.toolCall(3, "c1", evil, { html: evil }),
      frames.toolOk(4, "c1", evil, evil),
      frames.toolCall(5, evil, "<b>x</b>", evil),
      frames.toolError(6, evil, "<b>x</b>", "<i>code</i>", evil),
      frames.reasoning(7, evil),
    ),
  );
  assert.equal(ctx.el.querySelectorAll("img, b, i").length, 0, "no element came from model text");
  const [first, second] = msg.querySelectorAll("details.llmsock-tool");
  assert.equal(q(first, ".llmsock-tool-name").textContent, evil);
  assert.equal(q(first, ".llmsock-tool-result").textContent, evil);
  assert.equal(q(first, ".llmsock-tool-args").textContent, JSON.stringify({ html: evil }, null, 2));
  assert.equal(second.getAttribute("data-tool-id"), evil);
  assert.equal(q(second, ".llmsock-tool-args").textContent, evil);
  assert.equal(q(second, ".llmsock-tool-error").textContent, `Error: <i>code</i>: ${evil}`);
  assert.equal(q(msg, ".llmsock-reasoning-text").textContent, evil);
});

test("an opened tool call and reasoning stay open while more deltas arrive", () => {
  const ctx = setup();
  let s = toolState(frames.reasoning(3, "Let me "), frames.toolCall(4, "c1", "calculate", { expression: "2+2" }));
  let msg = paint(ctx, s);
  const tool = msg.querySelector("details.llmsock-tool");
  const reasoning = msg.querySelector("details.llmsock-reasoning");
  tool.open = true;
  reasoning.open = true;
  s = run(
    s,
    frames.reasoning(5, "compute."),
    frames.toolOk(6, "c1", "calculate", 4),
    frames.toolCall(7, "c2", "clock", {}),
    frames.delta(8, "Four"),
  );
  msg = paint(ctx, s);
  assert.equal(msg.querySelector("details.llmsock-tool"), tool, "not recreated");
  assert.equal(tool.open, true);
  assert.equal(reasoning.open, true);
  assert.equal(q(reasoning, ".llmsock-reasoning-text").textContent, "Let me compute.");
  const tools = [...msg.querySelectorAll("details.llmsock-tool")];
  assert.deepEqual(
    tools.map((d) => [d.getAttribute("data-tool-id"), d.open]),
    [
      ["c1", true],
      ["c2", false],
    ],
  );
  s = run(s, frames.delta(9, " it is"), frames.end(10, "stop", "Four it is"));
  msg = paint(ctx, s);
  assert.equal(tool.open, true);
  assert.equal(msg.querySelector("details.llmsock-tool"), tool);
  // A history reset (reconnect) with the same message keeps the elements too.
  s = run(
    s,
    frames.history(
      10,
      s.messages.map((m) => ({ ...m, ts: 1, tools: m.tools?.map((t) => ({ ...t, arguments: "{}" })) })),
    ),
  );
  msg = paint(ctx, s);
  assert.equal(msg.querySelector("details.llmsock-tool"), tool);
  assert.equal(tool.open, true);
});

test("the reasoning shows as a collapsed block of plain text before tools and text", () => {
  const ctx = setup();
  let msg = paint(ctx, toolState(frames.delta(3, "no reasoning")));
  assert.equal(msg.querySelector(".llmsock-reasoning"), null, "nothing without reasoning");
  const rendered = ctx.rendered.length;
  msg = paint(
    ctx,
    run(
      toolState(frames.delta(3, "no reasoning")),
      frames.reasoning(4, "**not markdown**\nline two"),
      frames.toolCall(5, "c1", "t", {}),
    ),
  );
  assert.equal(ctx.rendered.length, rendered, "reasoning deltas do not re-render the markdown text");
  const details = msg.querySelector("details.llmsock-reasoning");
  assert.equal(details.open, false);
  assert.equal(q(details, "summary").textContent, "Reasoning");
  assert.equal(q(details, ".llmsock-reasoning-text").textContent, "**not markdown**\nline two");
  assert.equal(details.querySelector("strong"), null);
  const steps = [...msg.querySelector(".llmsock-steps").children].map((n) => n.className);
  assert.deepEqual(steps, ["llmsock-reasoning", "llmsock-tool"]);
});

test("pure helpers format tool status, arguments and results", () => {
  assert.equal(toolStatusText({ status: "running" }), "running…");
  assert.equal(toolStatusText({ status: "complete", durationMs: 12 }), "done in 12 ms");
  assert.equal(toolStatusText({ status: "complete", durationMs: null }), "done");
  assert.equal(toolStatusText({ status: "error", error: { code: "timeout", message: "" } }), "error timeout");
  assert.equal(argumentsDisplay('{"a":1}'), '{\n  "a": 1\n}');
  assert.equal(argumentsDisplay('{"a":'), '{"a":');
  assert.equal(argumentsDisplay(""), "");
  assert.equal(resultText(null), "null");
  assert.equal(resultText(undefined), "null");
  assert.equal(resultText([1, "x"]), '[\n  1,\n  "x"\n]');
  assert.equal(resultText("line\ntwo"), "line\ntwo");
});

// --- quiet when all is well -------------------------------------------------------------------

const FAILED_RUNG = "direct (the page is on this machine) (proxy: closed (1006))";
const visibleText = (el) => {
  // What a reader sees: the text outside closed <details> (their summary stays visible).
  const copy = el.cloneNode(true);
  for (const details of copy.querySelectorAll("details:not([open])")) {
    for (const child of [...details.children]) if (child.tagName !== "SUMMARY") child.remove();
  }
  return copy.textContent;
};

test("a fresh chat shows one quiet line: the failed rungs and the store wait behind a disclosure", () => {
  const { el, view, frame } = setup();
  let s = reduce(initialState(), { type: "connection", state: "open", transport: "direct", detail: FAILED_RUNG });
  s = run(s, frames.ready(0), frames.history(0, []));
  view.setStore("notebook metadata (work/chat.ipynb)");
  view.update(s);
  frame();
  const under = visibleText(q(el, ".llmsock-chat")).replace(visibleText(q(el, '[role="log"]')), "");
  assert.doesNotMatch(under, /closed \(|proxy|chat saved in/);
  assert.equal(q(el, ".llmsock-status").textContent, "connected · direct");
  const details = q(el, 'details[data-role="details"]');
  assert.equal(details.open, false);
  assert.equal(details.hidden, false);
  assert.equal(q(el, '[data-role="connection-detail"]').closest("details"), details);
  assert.equal(q(el, '[data-role="connection-detail"]').textContent, FAILED_RUNG);
  assert.equal(q(el, '[data-role="store"]').closest("details"), details);
  assert.equal(q(el, '[data-role="alerts"]').children.length, 0);
  assert.equal(q(el, '[data-role="notes"]').children.length, 0);
});

test("when no rung works, why is a line of its own, out of the disclosure; it goes back once connected", () => {
  const { el, view, frame } = setup();
  const detail = () => q(el, '[data-role="connection-detail"]');
  const why = "no transport answered (proxy: closed (1006); direct: no answer in 4 s)";
  let s = reduce(initialState(), { type: "connection", state: "closed", detail: why, retryInMs: 2000 });
  view.update(s);
  frame();
  assert.equal(detail().closest("details"), null);
  assert.equal(detail().parentElement, q(el, '[data-role="alerts"]'));
  assert.match(visibleText(q(el, ".llmsock-chat")), /no transport answered \(proxy: closed \(1006\)/);
  s = reduce(s, { type: "connection", state: "open", transport: "direct", detail: FAILED_RUNG });
  view.update(s);
  frame();
  assert.equal(detail().closest("details"), q(el, "details"));
  assert.equal(q(el, '[data-role="alerts"]').children.length, 0);
});

test("a chat the notebook could not restore says so outside the disclosure", () => {
  const { el, view } = setup();
  view.setStore("notebook metadata (a.ipynb)", "not restored: written by a newer llmsock");
  const store = q(el, '[data-role="store"]');
  assert.equal(store.closest("details"), null);
  assert.equal(
    store.textContent,
    "chat saved in: notebook metadata (a.ipynb) · not restored: written by a newer llmsock",
  );
  view.setStore("notebook metadata (a.ipynb)");
  assert.equal(store.closest("details"), q(el, "details"));
});

test("warnings and errors are lines of the transcript with their text revealed; infos are quiet notes", () => {
  const { el, view, frame } = setup();
  let s = run(
    open(initialState()),
    frames.ready(0),
    frames.user(1, "q"),
    frames.diagnostic(2, "warning", "history_truncated", "kept the last 200 \u202emessages"),
    frames.diagnostic(3, "info", "history_kept_in_file", "the whole chat is in chat.json"),
    frames.diagnostic(4, "error", "some_new_code", "x".repeat(200)),
  );
  view.update(s);
  frame();
  const log = q(el, '[role="log"]');
  const lines = [...log.querySelectorAll(".llmsock-notice")];
  assert.deepEqual(
    lines.map((n) => [n.getAttribute("data-level"), n.getAttribute("data-code")]),
    [
      ["warning", "history_truncated"],
      ["error", "some_new_code"],
    ],
  );
  assert.equal(lines[0].textContent, "Warning: kept the last 200 \u27e8U+202E\u27e9messages (history_truncated)");
  assert.ok(lines[1].querySelector("wbr"), "a long run can wrap");
  assert.doesNotMatch(log.textContent, /whole chat/);
  const notes = q(el, '[data-role="notes"]');
  assert.equal(notes.textContent, "the whole chat is in chat.json");
  assert.equal(notes.closest("details"), null, "visible, in the status area");
  // The queued note goes when the queue has drained.
  s = run(
    s,
    envelope(
      "diagnostic",
      { type: "diagnostic", level: "info", code: "queued", message: "prompt queued; 1 waiting" },
      { sequence: 5, turnId: "t1" },
    ),
  );
  view.update(s);
  frame();
  const noteTexts = () => [...notes.children].map((n) => n.textContent);
  assert.deepEqual(noteTexts(), ["the whole chat is in chat.json", "prompt queued; 1 waiting"]);
  s = run(s, frames.user(6, "second", "t2"));
  view.update(s);
  frame();
  assert.deepEqual(noteTexts(), []);
});
