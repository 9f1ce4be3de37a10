import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { userMessage } from "../src/protocol.js";
import {
  adoptable,
  createSettingsPanel,
  DEFAULT_SETTINGS,
  parseMaxTokens,
  parseRetries,
  parseTemperature,
  parseTimeout,
  promptOptions,
  readSettings,
  summaryText,
} from "../src/settings.js";

test("a prompt carries only the settings that are set", () => {
  assert.deepEqual(promptOptions(DEFAULT_SETTINGS), {});
  assert.deepEqual(promptOptions({ tools: true, timeout: 30, retries: 0 }), { tools: true, timeout: 30, retries: 0 });
  assert.deepEqual(promptOptions({ tools: false, timeout: null, retries: null }), { tools: false });
  assert.deepEqual(promptOptions({ tools: ["calculate"], timeout: 0.5, retries: null }), {
    tools: ["calculate"],
    timeout: 0.5,
  });
  assert.deepEqual(promptOptions({ tools: [], timeout: null, retries: 10 }), { tools: [], retries: 10 });
});

test("user_message puts the options in data.options, and no options key when there are none", () => {
  assert.deepEqual(userMessage("hi", "m1"), { type: "user_message", id: "m1", data: { text: "hi" } });
  assert.deepEqual(userMessage("hi", "m1", {}), { type: "user_message", id: "m1", data: { text: "hi" } });
  assert.deepEqual(userMessage("hi", "m1", promptOptions({ tools: false, timeout: 1, retries: 0 })), {
    type: "user_message",
    id: "m1",
    data: { text: "hi", options: { tools: false, timeout: 1, retries: 0 } },
  });
});

test("trait values a view cannot use count as not set", () => {
  const traits = { tools: "all", timeout: -1, retries: 1.5 };
  assert.deepEqual(
    readSettings((name) => traits[name]),
    DEFAULT_SETTINGS,
  );
  assert.deepEqual(
    readSettings(() => undefined),
    DEFAULT_SETTINGS,
  );
  const odd = { tools: ["a", 3], timeout: 3601, retries: 11 };
  assert.deepEqual(
    readSettings((name) => odd[name]),
    DEFAULT_SETTINGS,
  );
  const good = { tools: ["a", "b"], timeout: 3600, retries: 0 };
  assert.deepEqual(
    readSettings((name) => good[name]),
    { ...DEFAULT_SETTINGS, ...good },
  );
});

test("a timeout is empty (the model's) or seconds above 0 and at most 3600", () => {
  for (const [text, value] of [
    ["", null],
    ["  ", null],
    ["1", 1],
    [" 30 ", 30],
    ["0.5", 0.5],
    [".5", 0.5],
    ["2.", 2],
    ["3600", 3600],
  ]) {
    assert.deepEqual(parseTimeout(text), { ok: true, value }, text);
  }
  for (const text of ["0", "0.0", "-1", "3600.5", "abc", "1e3", "0x10", "Infinity", "1,5", "1 s", "NaN"]) {
    const parsed = parseTimeout(text);
    assert.equal(parsed.ok, false, text);
    assert.match(parsed.error, /above 0, at most 3600/);
  }
});

test("retries are empty (the model's) or a whole number from 0 to 10", () => {
  for (const [text, value] of [
    ["", null],
    ["0", 0],
    ["3", 3],
    [" 10", 10],
  ]) {
    assert.deepEqual(parseRetries(text), { ok: true, value }, text);
  }
  for (const text of ["11", "-1", "1.5", "two", "1e1", "+1"]) {
    const parsed = parseRetries(text);
    assert.equal(parsed.ok, false, text);
    assert.match(parsed.error, /whole number from 0 to 10/);
  }
});

test("the summary says what is set", () => {
  assert.equal(summaryText(DEFAULT_SETTINGS), "settings");
  assert.equal(summaryText({ tools: true, timeout: 1, retries: 0 }), "settings · tools on · timeout 1 s · retries 0");
  assert.equal(summaryText({ tools: false, timeout: null, retries: null }), "settings · tools off");
  assert.equal(summaryText({ tools: ["a", "b"], timeout: null, retries: 2 }), "settings · tools only a, b · retries 2");
});

function panel(initial = DEFAULT_SETTINGS) {
  const { window } = new JSDOM("<!doctype html><html><body></body></html>");
  const changes = [];
  const made = createSettingsPanel(window.document, { initial, onChange: (change) => changes.push(change) });
  window.document.body.append(made.element);
  const q = (sel) => made.element.querySelector(sel);
  const type = (name, text) => {
    const input = q(`input[name="${name}"]`);
    input.value = text;
    input.dispatchEvent(new window.Event("input", { bubbles: true }));
  };
  const choose = (value) => {
    const select = q("select");
    select.value = value;
    select.dispatchEvent(new window.Event("change", { bubbles: true }));
  };
  const errorOf = (name) => {
    const input = q(`input[name="${name}"]`);
    return window.document.getElementById(input.getAttribute("aria-describedby")).textContent;
  };
  return { window, ...made, changes, q, type, choose, errorOf };
}

test("the panel is a disclosure with labelled fields", () => {
  const { element, q, window } = panel();
  assert.equal(element.tagName, "DETAILS");
  assert.equal(element.open, false);
  assert.equal(q("summary").textContent, "settings");
  const labels = [...element.querySelectorAll("label")].map((label) => [
    label.textContent,
    window.document.getElementById(label.htmlFor).tagName,
  ]);
  assert.deepEqual(labels, [
    ["System prompt", "TEXTAREA"],
    ["Temperature", "INPUT"],
    ["Max tokens", "INPUT"],
    ["Tools", "SELECT"],
    ["Timeout (s)", "INPUT"],
    ["Retries", "INPUT"],
  ]);
  assert.deepEqual(
    [...q("select").options].map((option) => [option.value, option.textContent]),
    [
      ["default", "model default"],
      ["on", "on: every tool"],
      ["off", "off"],
    ],
  );
  assert.equal(q("select").value, "default");
  assert.equal(q('input[name="timeout"]').value, "");
  assert.equal(q('input[name="timeout"]').placeholder, "model default");
  // Two panels in one page never share an id.
  const other = createSettingsPanel(window.document, { initial: DEFAULT_SETTINGS, onChange: () => {} });
  assert.notEqual(other.element.querySelector("select").id, q("select").id);
});

test("valid input changes the settings at once; clearing a field gives it back to the model", () => {
  const { q, type, choose, changes } = panel();
  choose("on");
  type("timeout", "1.5");
  type("retries", "0");
  type("timeout", "");
  choose("off");
  choose("default");
  assert.deepEqual(changes, [
    { tools: true },
    { timeout: 1.5 },
    { retries: 0 },
    { timeout: null },
    { tools: false },
    {
      tools: null,
    },
  ]);
  assert.equal(q("summary").textContent, "settings · retries 0");
});

test("invalid input is shown next to its field and never sent", () => {
  const { q, type, changes, errorOf } = panel({ tools: null, timeout: 30, retries: 1 });
  type("timeout", "abc");
  const timeout = q('input[name="timeout"]');
  assert.equal(timeout.getAttribute("aria-invalid"), "true");
  assert.equal(errorOf("timeout"), "Not sent: a number of seconds above 0, at most 3600. Prompts use 30 s.");
  type("retries", "11");
  assert.equal(errorOf("retries"), "Not sent: a whole number from 0 to 10. Prompts use 1 retry.");
  assert.deepEqual(changes, [], "nothing invalid reaches the settings");
  assert.equal(q("summary").textContent, "settings · timeout 30 s · retries 1");
  type("retries", "");
  assert.deepEqual(changes, [{ retries: null }]);
  type("retries", "-2");
  assert.equal(errorOf("retries"), "Not sent: a whole number from 0 to 10. Prompts use the model's setting.");
  changes.length = 0;
  type("timeout", "0");
  assert.deepEqual(changes, []);
  type("timeout", "45");
  assert.equal(timeout.hasAttribute("aria-invalid"), false);
  assert.equal(errorOf("timeout"), "");
  assert.deepEqual(changes, [{ timeout: 45 }]);
});

test("settings changed elsewhere (the traits, from Python) show in the panel", () => {
  const { q, set, type, changes, errorOf } = panel();
  set({ tools: ["calculate", "get_current_time"], timeout: 20, retries: 3 });
  assert.equal(q("select").value, "list");
  assert.equal(q("select").selectedOptions[0].textContent, "only: calculate, get_current_time");
  assert.equal(q('input[name="timeout"]').value, "20");
  assert.equal(q('input[name="retries"]').value, "3");
  assert.equal(
    q("summary").textContent,
    "settings · tools only calculate, get_current_time · timeout 20 s · retries 3",
  );
  // A field the user is typing in is left alone when its text already means the new value.
  type("timeout", "1.");
  assert.deepEqual(changes, [{ timeout: 1 }]);
  set({ tools: ["calculate", "get_current_time"], timeout: 1, retries: 3 });
  assert.equal(q('input[name="timeout"]').value, "1.");
  // A new value replaces invalid text and its error.
  type("retries", "x");
  set({ tools: true, timeout: 1, retries: null });
  assert.equal(q('input[name="retries"]').value, "");
  assert.equal(errorOf("retries"), "");
  assert.equal(q("select").value, "on");
  assert.equal(q("select").options.length, 3, "no list choice once the list is gone");
});

test("Escape closes the panel and gives the focus back to its summary; keys stay in the widget", () => {
  const { window, element, q } = panel();
  element.open = true;
  let leaked = 0;
  window.document.body.addEventListener("keydown", () => {
    leaked += 1;
  });
  const input = q('input[name="timeout"]');
  input.focus();
  input.dispatchEvent(new window.KeyboardEvent("keydown", { key: "a", bubbles: true }));
  assert.equal(leaked, 0, "a notebook's command-mode shortcuts never see keys typed here");
  input.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  assert.equal(element.open, false);
  assert.equal(window.document.activeElement, q("summary"));
  assert.equal(q(".llmsock-settings-body").getAttribute("data-lm-suppress-shortcuts"), "true");
});

test("system prompt, temperature, max tokens and model: read from the traits, sent when set", () => {
  const traits = { system: "Be terse.", temperature: 0.2, max_tokens: 500, model: "openai:gpt-x" };
  const settings = readSettings((name) => traits[name]);
  assert.deepEqual(promptOptions(settings), {
    system: "Be terse.",
    temperature: 0.2,
    maxTokens: 500,
    model: "openai:gpt-x",
  });
  const odd = { system: "  ", temperature: 2.5, max_tokens: 0, model: "" };
  assert.deepEqual(
    readSettings((name) => odd[name]),
    DEFAULT_SETTINGS,
  );
  assert.equal(readSettings(() => "x".repeat(32_769)).system, null);
  assert.equal(
    summaryText({ ...DEFAULT_SETTINGS, system: "x", temperature: 0, maxTokens: 9 }),
    "settings · system prompt · temperature 0 · max 9 tokens",
  );
});

test("temperature and max tokens: empty is the model's; other text is refused with the range", () => {
  assert.deepEqual(parseTemperature(""), { ok: true, value: null });
  assert.deepEqual(parseTemperature("0.7"), { ok: true, value: 0.7 });
  assert.deepEqual(parseTemperature("0"), { ok: true, value: 0 });
  assert.equal(parseTemperature("2.1").ok, false);
  assert.equal(parseTemperature("-1").ok, false);
  assert.deepEqual(parseMaxTokens("1,000"), { ok: true, value: 1000 });
  assert.equal(parseMaxTokens("0").ok, false);
  assert.equal(parseMaxTokens("1.5").ok, false);
  assert.deepEqual(parseMaxTokens("1000000"), { ok: true, value: 1_000_000 });
});

test("a view takes the session's kept settings only where its own are unset", () => {
  const kept = { system: "Be terse.", temperature: 0.3, maxTokens: 200, model: "builtin", tools: true };
  assert.deepEqual(adoptable(DEFAULT_SETTINGS, kept), {
    system: "Be terse.",
    temperature: 0.3,
    maxTokens: 200,
    model: "builtin",
  });
  assert.deepEqual(adoptable({ ...DEFAULT_SETTINGS, temperature: 1 }, kept).temperature, undefined);
  assert.deepEqual(adoptable(DEFAULT_SETTINGS, { temperature: 9, system: 3 }), {});
  assert.deepEqual(adoptable(DEFAULT_SETTINGS, null), {});
  assert.deepEqual(adoptable(DEFAULT_SETTINGS, [1]), {});
});

test("the system prompt is taken when the box is left; the others as typed", () => {
  const { q, type, changes, window } = panel();
  const box = q('textarea[name="system"]');
  box.value = "Answer in French.";
  box.dispatchEvent(new window.Event("input", { bubbles: true }));
  assert.deepEqual(changes, [], "not at every key");
  box.dispatchEvent(new window.Event("change", { bubbles: true }));
  type("temperature", "0.5");
  type("maxTokens", "300");
  type("maxTokens", "0");
  assert.deepEqual(changes, [{ system: "Answer in French." }, { temperature: 0.5 }, { maxTokens: 300 }]);
  assert.equal(q("summary").textContent, "settings · system prompt · temperature 0.5 · max 300 tokens");
  box.value = "   ";
  box.dispatchEvent(new window.Event("change", { bubbles: true }));
  assert.deepEqual(changes.at(-1), { system: null });
});
