import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { createComposer, isStopKey, LARGE_CHARS, STOP_KEYS } from "../src/composer.js";
import { initialState, reduce } from "../src/reducer.js";
import { createView } from "../src/view.js";

// A view in a notebook cell (as JupyterLab and Notebook 7 render it), connected, with its
// sends and stops recorded. `busy` makes the session stream an answer.
function setup({ busy = false } = {}) {
  const { window } = new JSDOM(
    "<!doctype html><html><body><div class='jp-Cell' tabindex='-1'><div id=el></div></div></body></html>",
  );
  const el = /** @type {HTMLElement} */ (window.document.getElementById("el"));
  const sent = [];
  let stops = 0;
  const view = createView(el, {
    renderMarkdown: (text) => text,
    onSend: (text) => {
      sent.push(text);
      return true;
    },
    onStop: () => {
      stops += 1;
    },
    requestFrame: () => 0,
    cancelFrame: () => {},
  });
  let state = reduce(initialState(), { type: "connection", state: "open" });
  if (busy) state = { ...state, status: "generating" };
  view.update(state);
  view.flush();
  const box = /** @type {HTMLTextAreaElement} */ (el.querySelector("textarea"));
  const key = (name, init = {}) => {
    const event = new window.KeyboardEvent("keydown", { key: name, cancelable: true, bubbles: true, ...init });
    box.dispatchEvent(event);
    return event;
  };
  const type = (text) => {
    box.value = text;
    box.setSelectionRange(text.length, text.length);
    box.dispatchEvent(new window.Event("input", { bubbles: true }));
  };
  const send = (text) => {
    type(text);
    key("Enter");
  };
  return { window, el, view, box, key, type, send, sent, stops: () => stops };
}

test("the box is one line when empty and grows with its text: one scrollHeight read per input", () => {
  const { box, type, send } = setup();
  assert.equal(box.rows, 1);
  let lines = 1;
  let reads = 0;
  Object.defineProperty(box, "scrollHeight", {
    get: () => {
      reads += 1;
      return lines * 20 + 12;
    },
  });
  Object.defineProperty(box, "offsetHeight", { get: () => (box.style.height === "auto" ? 34 : 0) });
  Object.defineProperty(box, "clientHeight", { get: () => 32 });
  lines = 3;
  type("a\nb\nc");
  assert.equal(reads, 1);
  assert.equal(box.style.height, "74px"); // 3 lines, padding and the two 1 px borders
  lines = 5;
  type("a\nb\nc\nd\ne");
  assert.equal(reads, 2);
  assert.equal(box.style.height, "114px");
  // Sent: the box is empty and one line high again.
  lines = 1;
  send("a\nb\nc\nd\ne");
  assert.equal(box.value, "");
  assert.equal(box.style.height, "34px");
  // Keys that only move the caret measure nothing.
  const before = reads;
  box.dispatchEvent(new box.ownerDocument.defaultView.KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
  assert.equal(reads, before);
});

test("Esc leaves the box for the notebook cell and lets the host see the key", () => {
  const { window, el, box, key } = setup();
  box.focus();
  assert.equal(window.document.activeElement, box);
  let seen = 0;
  window.document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") seen += 1;
  });
  const event = key("Escape");
  assert.equal(window.document.activeElement, el.closest(".jp-Cell"));
  assert.equal(seen, 1, "the Escape reached the host");
  assert.equal(event.defaultPrevented, false);
  // Other keys typed in the box stay in the widget (notebook shortcuts must not fire).
  let typed = 0;
  window.document.addEventListener("keydown", () => {
    typed += 1;
  });
  box.focus();
  key("a");
  assert.equal(typed, 0);
});

test("Esc outside a notebook cell blurs the box", () => {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const el = /** @type {HTMLElement} */ (window.document.getElementById("el"));
  createView(el, { renderMarkdown: (t) => t, onSend: () => true, onStop: () => {}, requestFrame: () => 0 });
  const box = /** @type {HTMLTextAreaElement} */ (el.querySelector("textarea"));
  box.focus();
  box.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  assert.notEqual(window.document.activeElement, box);
});

test("Up in an empty box recalls the sent prompts, newest first; Down goes forward", () => {
  const { box, key, send, sent } = setup();
  send("first");
  send("second\nline two");
  send("third");
  assert.deepEqual(sent, ["first", "second\nline two", "third"]);
  assert.equal(key("ArrowUp").defaultPrevented, true);
  assert.equal(box.value, "third");
  key("ArrowUp");
  assert.equal(box.value, "second\nline two");
  // The caret is on the first line: Up goes on to older prompts.
  assert.equal(box.selectionStart, "second".length);
  key("ArrowUp");
  assert.equal(box.value, "first");
  assert.equal(key("ArrowUp").defaultPrevented, false, "nothing older: Up does nothing");
  assert.equal(box.value, "first");
  key("ArrowDown");
  assert.equal(box.value, "second\nline two");
  key("ArrowDown");
  assert.equal(box.value, "third");
  key("ArrowDown");
  assert.equal(box.value, "", "past the newest: the box is empty again");
  assert.equal(key("ArrowDown").defaultPrevented, false);
  // A recalled prompt is sent as any other.
  key("ArrowUp");
  key("Enter");
  assert.deepEqual(sent.slice(-1), ["third"]);
});

test("Up and Down move the caret in a multi-line text; a typed text is never replaced", () => {
  const { box, key, type, send } = setup();
  send("old prompt");
  type("line one\nline two");
  // The caret is on the last line: Up is the textarea's own (to line one).
  assert.equal(key("ArrowUp").defaultPrevented, false);
  assert.equal(box.value, "line one\nline two");
  box.setSelectionRange(2, 2); // on the first line, but the box holds the user's text
  assert.equal(key("ArrowUp").defaultPrevented, false);
  assert.equal(box.value, "line one\nline two");
  // A recalled multi-line prompt: Down from its first line moves the caret, not the history.
  type("");
  send("a\nb");
  key("ArrowUp");
  assert.equal(box.value, "a\nb");
  assert.equal(key("ArrowDown").defaultPrevented, false);
  // Shift+Up selects text, as in any box.
  type("");
  assert.equal(key("ArrowUp", { shiftKey: true }).defaultPrevented, false);
  assert.equal(box.value, "");
});

test("Ctrl+Shift+Backspace stops a streaming answer, from the box or anywhere in the chat", () => {
  const { el, box, key, stops } = setup({ busy: true });
  const stop = /** @type {HTMLButtonElement} */ (el.querySelector("button.llmsock-stop"));
  assert.equal(stop.getAttribute("aria-keyshortcuts"), STOP_KEYS);
  assert.match(stop.title, /Ctrl\+Shift\+Backspace/);
  assert.equal(stop.textContent, "Stop");
  box.value = "draft";
  const event = key("Backspace", { ctrlKey: true, shiftKey: true });
  assert.equal(stops(), 1);
  assert.equal(event.defaultPrevented, true, "the text is not edited by the shortcut");
  const log = /** @type {HTMLElement} */ (el.querySelector('[role="log"]'));
  const window = /** @type {Window} */ (el.ownerDocument.defaultView);
  log.dispatchEvent(
    new window.KeyboardEvent("keydown", { key: "Backspace", ctrlKey: true, shiftKey: true, bubbles: true }),
  );
  assert.equal(stops(), 2);
  // Ctrl+Backspace (delete a word) and a plain Backspace are the box's own.
  assert.equal(key("Backspace", { ctrlKey: true }).defaultPrevented, false);
  assert.equal(key("Backspace").defaultPrevented, false);
  assert.equal(stops(), 2);
});

test("the Stop shortcut does nothing while no answer streams", () => {
  const { key, stops } = setup();
  const event = key("Backspace", { ctrlKey: true, shiftKey: true });
  assert.equal(stops(), 0);
  assert.equal(event.defaultPrevented, false);
  assert.equal(isStopKey(/** @type {any} */ ({ key: "Backspace", ctrlKey: true, shiftKey: true })), true);
  assert.equal(isStopKey(/** @type {any} */ ({ key: "Backspace", metaKey: true, shiftKey: true })), false);
});

test("a very large text is sent only at the second Send; the warning says its size", () => {
  const { el, box, key, type, sent } = setup();
  const warning = /** @type {HTMLElement} */ (el.querySelector('[data-role="composer-warning"]'));
  assert.equal(warning.getAttribute("role"), "status");
  assert.equal(warning.getAttribute("aria-live"), "polite");
  assert.equal(warning.textContent, "");
  const large = "x".repeat(LARGE_CHARS + 1);
  type(large);
  key("Enter");
  assert.deepEqual(sent, []);
  assert.equal(box.value, large, "the text stays in the box");
  assert.match(warning.textContent ?? "", /100,001 characters/);
  assert.match(warning.textContent ?? "", /Send again/);
  // Typing clears the warning: the changed text warns again at its first Send.
  type(`${large}y`);
  assert.equal(warning.textContent, "");
  key("Enter");
  assert.deepEqual(sent, []);
  assert.match(warning.textContent ?? "", /100,002 characters/);
  // The Send button counts as the second Send (keyboard or pointer alike).
  const sendButton = /** @type {HTMLButtonElement} */ (el.querySelector("button.llmsock-send"));
  sendButton.click();
  assert.equal(sent.length, 1);
  assert.equal(sent[0].length, LARGE_CHARS + 2);
  assert.equal(warning.textContent, "");
  assert.equal(box.value, "");
  // At the limit, no warning.
  type("y".repeat(LARGE_CHARS));
  key("Enter");
  assert.equal(sent.length, 2);
});

test("destroy removes the composer's listeners", () => {
  const { window } = new JSDOM("<!doctype html><html><body><div id=root><textarea></textarea></div></body></html>");
  const root = /** @type {HTMLElement} */ (window.document.getElementById("root"));
  const textarea = /** @type {HTMLTextAreaElement} */ (root.querySelector("textarea"));
  const stopButton = window.document.createElement("button");
  let submits = 0;
  let stops = 0;
  const composer = createComposer({
    root,
    textarea,
    stopButton,
    submit: () => {
      submits += 1;
    },
    stop: () => {
      stops += 1;
    },
    changed: () => {},
  });
  const enter = () => textarea.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  const stopKey = () =>
    textarea.dispatchEvent(
      new window.KeyboardEvent("keydown", { key: "Backspace", ctrlKey: true, shiftKey: true, bubbles: true }),
    );
  enter();
  stopKey();
  assert.deepEqual([submits, stops], [1, 1]);
  composer.destroy();
  enter();
  stopKey();
  assert.deepEqual([submits, stops], [1, 1]);
});
