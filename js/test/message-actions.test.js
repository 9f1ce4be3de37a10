import assert from "node:assert/strict";
import { test } from "node:test";

import { clearQuestion } from "../src/clear.js";
import { actionsFor, replacedText, replaceWarning, timeText, usageText } from "../src/message-actions.js";
import { normalizeMessage, parse, userMessage } from "../src/protocol.js";
import { initialState, reduce } from "../src/reducer.js";
import { envelope, frames, mountView } from "./helpers.js";

function setup() {
  const resent = [];
  const copied = [];
  let clears = 0;
  const mounted = mountView({
    onResend: (text, replaces) => {
      resent.push({ text, replaces });
      return true;
    },
    onClear: () => {
      clears += 1;
      return true;
    },
    copy: async (_near, text) => {
      copied.push(text);
      return true;
    },
  });
  return { ...mounted, resent, copied, clears: () => clears };
}

const open = (s) => reduce(s, { type: "connection", state: "open" });
const run = (state, ...list) => list.reduce((s, f) => reduce(s, parse(JSON.stringify(f))), state);
const q = (el, sel) => el.querySelector(sel);
const key = (window, node, name, extra = {}) =>
  node.dispatchEvent(new window.KeyboardEvent("keydown", { key: name, bubbles: true, cancelable: true, ...extra }));

/** Two finished turns: "first" -> "**one**", "second" -> "two"; the chat idle. */
function twoTurns() {
  return run(
    open(initialState()),
    frames.ready(0),
    frames.user(1, "first", "t1"),
    frames.start(2, "t1"),
    frames.delta(3, "**one**", "t1"),
    frames.end(4, "stop", "**one**", "t1"),
    frames.user(5, "second", "t2"),
    frames.start(6, "t2"),
    frames.delta(7, "two", "t2"),
    frames.end(8, "stop", "two", "t2"),
  );
}

const message = (fields) => ({
  id: "m",
  role: "assistant",
  text: "x",
  status: "complete",
  error: null,
  turnId: "t",
  usage: null,
  reasoning: "",
  tools: [],
  ...fields,
});
const ids = (actions) => actions.map((a) => `${a.id}:${a.enabled}`);

test("actionsFor: copy on every finished answer, regenerate or retry on the last, edit on prompts", () => {
  const prompt = message({ role: "user", id: "u" });
  const ready = { ready: true, last: true, prompt, after: 2 };
  assert.deepEqual(ids(actionsFor(message({}), ready)), ["copy:true", "regenerate:true"]);
  assert.deepEqual(ids(actionsFor(message({ status: "error" }), ready)), ["copy:true", "retry:true"]);
  assert.deepEqual(ids(actionsFor(message({ status: "aborted" }), ready)), ["copy:true", "regenerate:true"]);
  assert.deepEqual(ids(actionsFor(message({}), { ...ready, last: false })), ["copy:true"]);
  assert.deepEqual(ids(actionsFor(message({}), { ...ready, prompt: null })), ["copy:true"]);
  assert.deepEqual(ids(actionsFor(message({}), { ...ready, ready: false })), ["copy:true", "regenerate:false"]);
  assert.deepEqual(actionsFor(message({ status: "streaming" }), ready), []);
  assert.deepEqual(ids(actionsFor(prompt, ready)), ["edit:true"]);
  assert.deepEqual(ids(actionsFor(prompt, { ...ready, ready: false })), ["edit:false"]);
});

test("the texts: the editor's warning, a replaced prompt, usage, time, the clear question", () => {
  assert.equal(replaceWarning(1), "Sending replaces this prompt.");
  assert.equal(replaceWarning(2), "Sending replaces this prompt and the 1 message after it.");
  assert.equal(replaceWarning(5), "Sending replaces this prompt and the 4 messages after it.");
  assert.equal(replacedText(1), "sent again: replaced 1 earlier message");
  assert.equal(replacedText(4), "sent again: replaced 4 earlier messages");
  assert.equal(usageText(null), "");
  assert.equal(usageText({ inputTokens: 12, outputTokens: 30 }), "12 in · 30 out tokens");
  assert.equal(timeText(null), null);
  assert.equal(timeText(0), null);
  const at = new Date(2026, 11, 7, 9, 5).getTime();
  assert.equal(timeText(at)?.short, "09:05");
  assert.equal(timeText(at)?.iso, new Date(at).toISOString());
  assert.equal(clearQuestion(1), "Clear all 1 message of this chat? They cannot be brought back.");
  assert.equal(clearQuestion(4), "Clear all 4 messages of this chat? They cannot be brought back.");
});

test("a prompt frame names the message it replaces; the echo and the history carry the count", () => {
  assert.deepEqual(userMessage("hi", "w1", {}, "m-1"), {
    type: "user_message",
    id: "w1",
    data: { text: "hi", replaces: "m-1" },
  });
  assert.deepEqual(userMessage("hi", "w1"), { type: "user_message", id: "w1", data: { text: "hi" } });
  const echo = parse(
    JSON.stringify(
      envelope(
        "user",
        { type: "message", text: "hi", messageId: "w2", replaces: "m-1", replaced: 2 },
        { sequence: 9, turnId: "t9", timestamp: 1234 },
      ),
    ),
  );
  assert.equal(echo?.replaces, "m-1");
  assert.equal(echo?.replaced, 2);
  const saved = normalizeMessage({ id: "w2", role: "user", text: "hi", turnId: "t9", ts: 1234, replaced: 2 });
  assert.equal(saved?.replaced, 2);
  assert.equal(saved?.ts, 1234);
  assert.equal(normalizeMessage({ id: "a", role: "assistant", text: "", turnId: "t9", replaced: 2 })?.replaced, 0);
});

test("a prompt that replaces one cuts the transcript there, with the notices after the cut", () => {
  let state = twoTurns();
  state = run(state, frames.diagnostic(9, "warning", "store_error", "save failed"));
  assert.equal(state.notices.length, 1);
  state = run(
    state,
    envelope(
      "user",
      { type: "message", text: "second, better", messageId: "w9", replaces: "m-t2", replaced: 2 },
      { sequence: 10, turnId: "t3" },
    ),
  );
  assert.deepEqual(
    state.messages.map((m) => [m.role, m.text]),
    [
      ["user", "first"],
      ["assistant", "**one**"],
      ["user", "second, better"],
    ],
  );
  assert.equal(state.messages[2].replaced, 2);
  assert.equal(state.notices.length, 0);
  // A view that never had the replaced prompt only appends (its next history reload is exact).
  const other = run(
    state,
    envelope(
      "user",
      { type: "message", text: "x", messageId: "w10", replaces: "nope", replaced: 2 },
      { sequence: 11, turnId: "t4" },
    ),
  );
  assert.equal(other.messages.length, 4);
});

test("Regenerate sends the last prompt again, replacing it; it waits while a turn runs", () => {
  const { el, show, resent } = setup();
  const state = twoTurns();
  show(state);
  const rows = el.querySelectorAll(".llmsock-actions");
  assert.equal(rows.length, 4);
  const answers = [...el.querySelectorAll('.llmsock-msg[data-role="assistant"]')];
  assert.equal(q(answers[0], '[data-action="regenerate"]'), null, "only the last answer regenerates");
  const regenerate = q(answers[1], '[data-action="regenerate"]');
  assert.equal(regenerate.disabled, false);
  regenerate.click();
  assert.deepEqual(resent, [{ text: "second", replaces: "m-t2" }]);
  // A turn runs (another view's prompt): the button is there but disabled.
  show(run(state, frames.status(9, "generating")));
  assert.equal(q(answers[1], '[data-action="regenerate"]').disabled, true);
  assert.equal(q(el, '.llmsock-msg[data-role="user"] [data-action="edit"]').disabled, true);
});

test("a failed last answer offers Retry", () => {
  const { el, show, resent } = setup();
  show(
    run(
      open(initialState()),
      frames.ready(0),
      frames.user(1, "q", "t1"),
      frames.start(2, "t1"),
      frames.modelError(3, "", "t1"),
    ),
  );
  const retry = q(el, '[data-action="retry"]');
  assert.equal(retry.textContent, "Retry");
  retry.click();
  assert.deepEqual(resent, [{ text: "q", replaces: "m-t1" }]);
  // The error line comes before the row of actions.
  const answer = q(el, '.llmsock-msg[data-role="assistant"]');
  const kids = [...answer.children].map((c) => c.className);
  assert.ok(kids.indexOf("llmsock-footer") < kids.indexOf("llmsock-actions"), kids.join(","));
});

test("Copy takes the answer's Markdown source, not its rendered text", async () => {
  const { el, show, copied } = setup();
  show(twoTurns());
  q(el, '.llmsock-msg[data-role="assistant"] [data-action="copy"]').click();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(copied, ["**one**"]);
  assert.equal(q(el, '[data-role="announcer"]').textContent, "Answer copied as Markdown");
});

test("Edit: the prompt becomes a box; Enter sends it replacing the prompt, Esc gives it back", () => {
  const { window, el, show, resent } = setup();
  show(twoTurns());
  const prompt = q(el, '.llmsock-msg[data-role="user"]');
  q(prompt, '[data-action="edit"]').click();
  const area = q(prompt, ".llmsock-editor-input");
  assert.ok(area, "the editor opened");
  assert.equal(area.value, "first");
  assert.equal(window.document.activeElement, area);
  assert.equal(q(prompt, ".llmsock-body").hidden, true);
  assert.equal(
    q(prompt, '[data-role="replace-warning"]').textContent,
    "Sending replaces this prompt and the 3 messages after it.",
  );
  // Esc closes it, the text is back and focus is on Edit again.
  key(window, area, "Escape");
  assert.equal(q(prompt, ".llmsock-editor"), null);
  assert.equal(q(prompt, ".llmsock-body").hidden, false);
  assert.equal(window.document.activeElement, q(prompt, '[data-action="edit"]'));
  assert.deepEqual(resent, []);
  // Edit again, change, Enter: sent, replacing the first prompt.
  q(prompt, '[data-action="edit"]').click();
  const again = q(prompt, ".llmsock-editor-input");
  again.value = "first, edited";
  key(window, again, "Enter", { shiftKey: true });
  assert.deepEqual(resent, [], "Shift+Enter is a new line");
  key(window, again, "Enter");
  assert.deepEqual(resent, [{ text: "first, edited", replaces: "m-t1" }]);
  assert.equal(q(prompt, ".llmsock-editor"), null);
});

test("an open editor cannot send while a turn runs, and says why", () => {
  const { window, el, show, resent } = setup();
  const state = twoTurns();
  show(state);
  const prompt = q(el, '.llmsock-msg[data-role="user"]');
  q(prompt, '[data-action="edit"]').click();
  show(run(state, frames.status(9, "generating")));
  assert.equal(q(prompt, ".llmsock-editor-send").disabled, true);
  assert.match(q(prompt, '[data-role="replace-warning"]').textContent, /idle and connected/);
  key(window, q(prompt, ".llmsock-editor-input"), "Enter");
  assert.deepEqual(resent, []);
});

test("a prompt that replaced others says so; answers show their usage and every message its time", () => {
  const { el, show } = setup();
  show(
    run(
      open(initialState()),
      frames.ready(0),
      envelope(
        "user",
        { type: "message", text: "again", messageId: "w1", replaces: "x", replaced: 2 },
        { sequence: 1, turnId: "t1", timestamp: Date.UTC(2026, 11, 7, 8, 30) },
      ),
      frames.start(2, "t1"),
      frames.usage(3, "t1"),
      frames.end(4, "stop", "ok", "t1"),
    ),
  );
  assert.equal(q(el, '[data-role="replaced"]').textContent, "sent again: replaced 2 earlier messages");
  assert.equal(q(el, '[data-role="usage"]').textContent, "3 in · 4 out tokens");
  const time = q(el, '.llmsock-msg[data-role="user"] time');
  assert.equal(time.getAttribute("datetime"), new Date(Date.UTC(2026, 11, 7, 8, 30)).toISOString());
});

test("Clear asks first, with focus on Cancel; Esc and Cancel keep the chat, Clear chat clears it", () => {
  const { window, el, show, clears } = setup();
  show(twoTurns());
  const clear = q(el, '[data-action="clear"]');
  assert.equal(clear.disabled, false);
  clear.click();
  const confirm = q(el, ".llmsock-confirm");
  assert.equal(confirm.hidden, false);
  assert.equal(q(confirm, ".llmsock-confirm-text").textContent, clearQuestion(4));
  assert.equal(window.document.activeElement, q(el, '[data-action="cancel-clear"]'));
  key(window, window.document.activeElement, "Escape");
  assert.equal(confirm.hidden, true);
  assert.equal(window.document.activeElement, clear);
  assert.equal(clears(), 0);
  clear.click();
  q(el, '[data-action="cancel-clear"]').click();
  assert.equal(clears(), 0);
  clear.click();
  q(el, '[data-action="confirm-clear"]').click();
  assert.equal(clears(), 1);
  assert.equal(q(el, '[data-role="announcer"]').textContent, "Chat cleared");
});

test("Clear is disabled on an empty chat, while a turn runs, and when disconnected", () => {
  const { el, show } = setup();
  show(run(open(initialState()), frames.ready(0)));
  assert.equal(q(el, '[data-action="clear"]').disabled, true);
  const state = twoTurns();
  show(run(state, frames.status(9, "generating")));
  assert.equal(q(el, '[data-action="clear"]').disabled, true);
  show(reduce(state, { type: "connection", state: "closed" }));
  assert.equal(q(el, '[data-action="clear"]').disabled, true);
  show(state);
  assert.equal(q(el, '[data-action="clear"]').disabled, false);
});
