import assert from "node:assert/strict";
import { test } from "node:test";

import { currentModel, EXAMPLES, sessionUsage, usageSummary } from "../src/header.js";
import { parse } from "../src/protocol.js";
import { initialState, reduce } from "../src/reducer.js";
import { frames, mountView } from "./helpers.js";

const setup = () => mountView();

const open = (s) => reduce(s, { type: "connection", state: "open" });
const run = (state, ...list) => list.reduce((s, f) => reduce(s, parse(JSON.stringify(f))), state);
const q = (el, sel) => el.querySelector(sel);
const answer = (usage, model = "") => ({ role: "assistant", usage, model });

test("session usage adds up the answers that reported it", () => {
  assert.equal(sessionUsage([]), null);
  assert.equal(sessionUsage([{ role: "user", usage: null }, answer(null)]), null);
  const usage = sessionUsage([
    answer({ inputTokens: 10, outputTokens: 20 }),
    answer(null),
    answer({ inputTokens: 1000, outputTokens: 5 }),
  ]);
  assert.deepEqual(usage, { input: 1010, output: 25, answers: 2 });
  assert.deepEqual(usageSummary(usage), { text: "1,035 tokens", title: "1,010 in, 25 out, over 2 answers" });
  assert.deepEqual(usageSummary(null), { text: "", title: "" });
});

test("the model named is the last answer's, else the kernel's", () => {
  assert.equal(currentModel([], "builtin"), "builtin");
  assert.equal(currentModel([answer(null, "openai:gpt-x"), answer(null, "")], "builtin"), "openai:gpt-x");
});

test("a restored chat shows no empty state before its history came", () => {
  const { el, show, view } = setup();
  view.setIdentity({ session: "notes", model: "builtin" });
  show(open(initialState()));
  assert.equal(q(el, '[data-role="empty-state"]'), null);
  assert.equal(q(el, '[data-role="session-name"]').textContent, "Chat · notes");
  assert.equal(q(el, '[data-role="model"]').textContent, "model: builtin");
});

test("an empty chat says which session and model, offers examples, and goes when a message comes", () => {
  const { window, el, show, view } = setup();
  view.setIdentity({ session: "notes", model: "builtin" });
  const synced = run(open(initialState()), frames.ready(0), frames.history(0, []));
  show(synced);
  const empty = q(el, '.llmsock-transcript [data-role="empty-state"]');
  assert.ok(empty, "the empty state is in the transcript");
  assert.match(empty.textContent, /session “notes”, answered by the model “builtin”/);
  const examples = [...empty.querySelectorAll('[data-action="example"]')];
  assert.deepEqual(
    examples.map((b) => b.textContent),
    [...EXAMPLES],
  );
  examples[0].click();
  const box = q(el, "textarea.llmsock-input");
  assert.equal(box.value, EXAMPLES[0]);
  assert.equal(window.document.activeElement, box);
  assert.equal(q(el, "button.llmsock-send").disabled, false, "the example can be sent at once");

  const chatted = run(synced, frames.user(1, "q"), frames.start(2), frames.usage(3), frames.end(4, "stop", "a"));
  show(chatted);
  assert.equal(q(el, '[data-role="empty-state"]'), null);
  assert.equal(q(el, '[data-role="session-usage"]').textContent, "7 tokens");
  assert.equal(q(el, '[data-role="model"]').textContent, "model: builtin");
  show(run(chatted, frames.cleared(5)));
  assert.ok(q(el, '.llmsock-transcript [data-role="empty-state"]'), "back after a clear");
  assert.equal(q(el, '[data-role="session-usage"]').textContent, "");
});
