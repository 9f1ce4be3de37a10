import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import {
  CAPABILITIES_EVENT,
  codeOf,
  copyText,
  createCodeActions,
  INSERT_ACTIONS,
  INSERT_EVENT,
  NOTE_MS,
} from "../src/code-actions.js";
import { reveal } from "../src/invisible.js";
import { createMarkdownIt, createMarkdownRenderer } from "../src/markdown.js";
import { parse } from "../src/protocol.js";
import { initialState, reduce } from "../src/reducer.js";
import { createView } from "../src/view.js";
import { fakeTimers, frames, viewWithFrames } from "./helpers.js";

function dom() {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  return { window, el: window.document.getElementById("el") };
}

/** A stand-in for the llmsock-notebook plugin: answers the probe and records inserts. */
function fakePlugin(window, { ok = true, message = "" } = {}) {
  const inserts = [];
  window.document.addEventListener(CAPABILITIES_EVENT, (event) => {
    event.detail.insertCode = true;
    event.preventDefault();
  });
  window.document.addEventListener(INSERT_EVENT, (event) => {
    inserts.push({ code: event.detail.code, where: event.detail.where, target: event.target });
    event.detail.ok = ok;
    event.detail.message = message;
    event.preventDefault();
  });
  return inserts;
}

function actions(el, options = {}) {
  const timers = fakeTimers();
  const copied = [];
  const codeActions = createCodeActions({
    host: el,
    announcer: el,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    copy: async (_near, text) => {
      copied.push(text);
      return options.copyWorks ?? true;
    },
  });
  return { codeActions, timers, copied };
}

/** Render `text` as an answer body the way the view does, incrementally. */
function renderInto(window, text) {
  const body = window.document.createElement("div");
  body.className = "llmsock-body llmsock-md";
  window.document.body.append(body);
  createMarkdownRenderer(window).render.into(body, text, false);
  return body;
}

/** The code of every fence and indented block of `text`, as markdown-it reads the shown text. */
function fenceContents(text) {
  const tokens = createMarkdownIt().parse(reveal(text), {});
  return tokens
    .filter((token) => token.type === "fence" || token.type === "code_block")
    .map((token) => (token.content.endsWith("\n") ? token.content.slice(0, -1) : token.content));
}

const names = (root) => [...root.querySelectorAll("button")].map((b) => b.getAttribute("aria-label"));
const flush = () => new Promise((resolve) => setImmediate(resolve));

const BLOCKS = [
  "```python\ndef f(x):\n    return x < 1 and '&' != \"<b>\"\n```\n",
  "```\nno language\n\n\nblank lines kept\n```",
  "```js\nconst a = 1;\n```\n\nafter\n\n```bash\necho $HOME\n```\n",
  "    indented code\n    second line\n",
  "- item\n\n  ```py\n  nested = True\n  ```\n- next\n",
  "> ```\n> quoted\n> ```\n",
  "```\n\n```",
  "```sql\nSELECT 1;\n",
  `\`\`\`\n${"x".repeat(300)} ${"y".repeat(70)}\n\`\`\``,
  "```py\ns = 'a\u200bb\u202ec'  # hidden characters\n```",
  "```py\r\nwindows = 1\r\nlines = 2\r\n```\r\n",
  "```\ttrailing tab\nkeep\ttabs\n```",
  "````md\n```\ninner fence\n```\n````",
];

test("the code a button takes is the block's source as shown, without its last line break", () => {
  const { window } = dom();
  for (const text of BLOCKS) {
    const body = renderInto(window, text);
    const shown = [...body.querySelectorAll("pre")].map((pre) => codeOf(pre));
    assert.deepEqual(shown, fenceContents(text), JSON.stringify(text));
    // A toolbar in the <pre> changes nothing of it.
    const { codeActions } = actions(body);
    codeActions.decorate(body, true);
    assert.deepEqual(
      [...body.querySelectorAll("pre")].map((pre) => codeOf(pre)),
      shown,
    );
  }
  // What the reader sees: hidden characters stay visible markers; the highlighted HTML's text
  // would end with the fence's line break.
  const body = renderInto(window, "```py\nprint('a\u202eb')\n```\n");
  const pre = body.querySelector("pre");
  assert.equal(codeOf(pre), "print('a\u27e8U+202E\u27e9b')");
  assert.equal(pre.querySelector("code").textContent, "print('a\u27e8U+202E\u27e9b')\n");
  assert.ok(pre.querySelector("code span"), "the block is highlighted");
});

test("each block gets one toolbar of real buttons; without the plugin only Copy", () => {
  const { window, el } = dom();
  const body = renderInto(window, "```py\na = 1\n```\n\ntext\n\n```\nb\n```\n");
  el.append(body);
  const { codeActions } = actions(el);
  codeActions.decorate(body, true);
  codeActions.decorate(body, true);
  const toolbars = body.querySelectorAll(".llmsock-code-actions");
  assert.equal(toolbars.length, 2);
  for (const pre of body.querySelectorAll("pre")) {
    assert.equal(pre.firstElementChild.className, "llmsock-code-actions");
    assert.equal(pre.querySelectorAll(".llmsock-code-actions").length, 1);
  }
  assert.deepEqual(names(body), ["Copy code", "Copy code"]);
  for (const button of body.querySelectorAll("button")) {
    assert.equal(button.type, "button");
    assert.equal(button.textContent, "Copy");
  }
  assert.equal(toolbars[0].getAttribute("role"), "toolbar");
  assert.equal(toolbars[0].querySelector(".llmsock-code-lang").textContent, "py");
  assert.equal(toolbars[1].querySelector(".llmsock-code-lang").textContent, "");
});

test("where the plugin answers the probe, the insert buttons show and send the code", () => {
  const { window, el } = dom();
  const inserts = fakePlugin(window);
  const body = renderInto(window, "Try:\n\n```python\nprint('hi')\n```\n");
  el.append(body);
  const { codeActions, timers } = actions(el);
  codeActions.decorate(body, true);
  assert.deepEqual(names(body), [
    "Copy code",
    "Insert above the chat",
    "Insert below the chat",
    "Replace cell: the active one",
    "Insert and run below the chat",
  ]);
  // Each accessible name contains the visible label (WCAG 2.5.3).
  for (const button of body.querySelectorAll("button")) {
    assert.ok(button.getAttribute("aria-label").toLowerCase().includes(button.textContent.toLowerCase()));
  }
  for (const action of INSERT_ACTIONS) body.querySelector(`[data-action="${action.id}"]`).click();
  assert.deepEqual(
    inserts.map(({ code, where }) => ({ code, where })),
    ["above", "below", "replace", "run-below"].map((where) => ({ code: "print('hi')", where })),
  );
  assert.ok(
    inserts.every(({ target }) => body.contains(target)),
    "dispatched from inside the chat",
  );
  const note = body.querySelector(".llmsock-code-note");
  assert.equal(note.textContent, "Inserted and running");
  assert.equal(el.querySelector('[data-role="code-announcer"]').textContent, "Inserted and running");
  timers.advance(NOTE_MS);
  assert.equal(note.textContent, "");
});

test("a refused or unanswered insert says so", () => {
  const { window, el } = dom();
  const body = renderInto(window, "```\nx\n```\n");
  el.append(body);
  window.document.addEventListener(CAPABILITIES_EVENT, (event) => {
    event.detail.insertCode = true;
    event.preventDefault();
  });
  const { codeActions } = actions(el);
  codeActions.decorate(body, true);
  body.querySelector('[data-action="below"]').click(); // nobody answers the insert itself
  assert.equal(body.querySelector(".llmsock-code-note").textContent, "Not done: no notebook answered");
  window.document.addEventListener(INSERT_EVENT, (event) => {
    event.detail.message = "no cell to replace: click the cell first";
    event.preventDefault();
  });
  body.querySelector('[data-action="replace"]').click();
  const note = body.querySelector(".llmsock-code-note");
  assert.equal(note.textContent, "Not done: no cell to replace: click the cell first");
  assert.ok(note.hasAttribute("data-failed"));
});

test("Copy puts the exact code on the clipboard and confirms it, politely", async () => {
  const { window, el } = dom();
  const body = renderInto(window, "```python\nx = 1\n\ny = 2\n```\n");
  el.append(body);
  const { codeActions, copied, timers } = actions(el);
  codeActions.decorate(body, true);
  const live = el.querySelector('[data-role="code-announcer"]');
  assert.equal(live.getAttribute("aria-live"), "polite");
  assert.equal(live.getAttribute("role"), "status");
  body.querySelector('[data-action="copy"]').click();
  await flush();
  assert.deepEqual(copied, ["x = 1\n\ny = 2"]);
  assert.equal(body.querySelector(".llmsock-code-note").textContent, "Copied");
  assert.equal(live.textContent, "Copied");
  timers.advance(NOTE_MS - 1);
  assert.equal(body.querySelector(".llmsock-code-note").textContent, "Copied");
  timers.advance(1);
  assert.equal(body.querySelector(".llmsock-code-note").textContent, "");
});

test("when nothing can copy, the code is selected and the note says to press Ctrl+C", async () => {
  const { window, el } = dom();
  const body = renderInto(window, "```\nselect me\n```\n");
  el.append(body);
  const { codeActions } = actions(el, { copyWorks: false });
  codeActions.decorate(body, true);
  body.querySelector('[data-action="copy"]').click();
  await flush();
  assert.equal(window.getSelection().toString(), "select me\n");
  assert.match(body.querySelector(".llmsock-code-note").textContent, /Copy failed.*Ctrl\+C/);
});

test("copyText uses the Clipboard API, and the copy command when it is refused", async () => {
  const { window, el } = dom();
  const written = [];
  const clipboard = { writeText: async (text) => written.push(text) };
  Object.defineProperty(window.navigator, "clipboard", { value: clipboard, configurable: true });
  assert.equal(await copyText(el, "a\nb"), true);
  assert.deepEqual(written, ["a\nb"]);

  clipboard.writeText = async () => {
    throw new Error("NotAllowedError");
  };
  const commands = [];
  window.document.execCommand = (name) => {
    const area = el.querySelector("textarea");
    commands.push([name, area.value.slice(area.selectionStart, area.selectionEnd)]);
    return true;
  };
  assert.equal(await copyText(el, "fallback"), true);
  assert.deepEqual(commands, [["copy", "fallback"]]);
  assert.equal(el.querySelector("textarea"), null, "the helper textarea is gone");
});

// -- in the view: streaming -----------------------------------------------------------------------

function streamingView(window, el) {
  const md = createMarkdownRenderer(window);
  let queued = [];
  const view = createView(el, {
    renderMarkdown: md.render,
    onSend: () => true,
    onStop: () => {},
    requestFrame: (fn) => {
      queued.push(fn);
      return queued.length;
    },
    cancelFrame: () => {},
  });
  // Paint until nothing is left for a later frame (a slow tail render is put off by real time).
  const frame = () => {
    while (queued.length > 0) {
      const fns = queued;
      queued = [];
      for (const fn of fns) fn();
    }
  };
  return { view, frame };
}

const run = (state, ...list) => list.reduce((s, f) => reduce(s, parse(JSON.stringify(f))), state);

test("in a streaming answer a block gets its toolbar once closed and followed, and keeps it", () => {
  const { window, el } = dom();
  const { view, frame } = streamingView(window, el);
  let state = run(
    reduce(initialState(), { type: "connection", state: "open" }),
    frames.ready(0),
    frames.user(1, "code please"),
    frames.start(2),
  );
  const pieces = ["Here:\n\n```py\n", "x = 1\n", "y = 2\n", "```", "\n", "\nDone", " here.\n\n", "More text"];
  const seen = [];
  let seq = 3;
  for (const piece of pieces) {
    state = run(state, frames.delta(seq++, piece));
    view.update(state);
    frame();
    const pre = el.querySelector(".llmsock-body pre");
    seen.push(pre ? el.querySelectorAll(".llmsock-code-actions").length : null);
  }
  // No toolbar while the fence is open, or closed with nothing after it yet.
  assert.deepEqual(seen, [0, 0, 0, 0, 0, 1, 1, 1]);
  const toolbar = el.querySelector(".llmsock-code-actions");
  state = run(state, frames.delta(seq++, " and more"));
  view.update(state);
  frame();
  assert.equal(el.querySelector(".llmsock-code-actions"), toolbar, "a finished block keeps its toolbar node");

  // A block still being written at the end gets one when the answer ends.
  state = run(state, frames.delta(seq++, "\n\n```\nlast = True\n"));
  view.update(state);
  frame();
  assert.equal(el.querySelectorAll(".llmsock-code-actions").length, 1);
  state = run(state, frames.end(seq++, "stop", null));
  view.update(state);
  frame();
  const pres = el.querySelectorAll(".llmsock-body pre");
  assert.equal(pres.length, 2);
  assert.equal(el.querySelectorAll(".llmsock-code-actions").length, 2);
  assert.deepEqual(
    [...pres].map((pre) => codeOf(pre)),
    ["x = 1\ny = 2", "last = True"],
  );
  // The user's own message never gets one.
  assert.equal(el.querySelector('[data-role="user"] .llmsock-code-actions'), null);
  view.destroy();
  assert.equal(el.querySelector('[data-role="code-announcer"]'), null);
});

test("a tail rendered again every frame never holds two toolbars in one block", () => {
  const { window, el } = dom();
  const { view, frame } = streamingView(window, el);
  let state = run(
    reduce(initialState(), { type: "connection", state: "open" }),
    frames.ready(0),
    frames.user(1, "q"),
    frames.start(2),
  );
  // The fence and the paragraph after it stay in the tail (no blank line between them).
  const text = "```\na\n```\nsome words that keep coming one at a time";
  let seq = 3;
  for (const char of text) {
    state = run(state, frames.delta(seq++, char));
    view.update(state);
    frame();
    for (const pre of el.querySelectorAll("pre")) {
      assert.ok(pre.querySelectorAll(".llmsock-code-actions").length <= 1);
    }
  }
  assert.equal(el.querySelectorAll(".llmsock-code-actions").length, 1);
});

test("an ended answer whose text is not all shown yet gets toolbars only on its closed blocks", () => {
  const { window, el } = dom();
  const md = createMarkdownRenderer(window);
  // A painter that shows the text in two steps: a first part (false: call again), then all of it.
  let calls = 0;
  const into = (element, text) => {
    calls += 1;
    const shown = calls === 1 ? text.slice(0, text.indexOf("b = 2")) : text;
    element.innerHTML = md.render(shown);
    return calls > 1;
  };
  const { view, frame } = viewWithFrames(
    el,
    Object.assign((text) => md.render(text), { into }),
  );
  const text = "```\na = 1\n```\n\n```\nb = 2\nc = 3\n```\n";
  const state = run(reduce(initialState(), { type: "connection", state: "open" }), ...frames.answered(text));
  view.update(state);
  frame();
  const shown = () =>
    [...el.querySelectorAll(".llmsock-body pre")].map((pre) => [
      codeOf(pre),
      !!pre.querySelector(".llmsock-code-actions"),
    ]);
  assert.deepEqual(shown(), [
    ["a = 1", true],
    ["", false],
  ]);
  frame();
  assert.equal(calls, 2);
  assert.deepEqual(shown(), [
    ["a = 1", true],
    ["b = 2\nc = 3", true],
  ]);
});
