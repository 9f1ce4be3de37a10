import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import {
  attachmentsOf,
  buildAttachments,
  CUT_NOTE,
  MAX_ATTACHMENT_CHARS,
  MAX_ATTACHMENTS,
  mentionAt,
  mentionedNames,
  withAttachments,
} from "../src/attachments.js";
import { paintChips } from "../src/chips.js";
import { createComposer } from "../src/composer.js";
import { createHeader } from "../src/header.js";
import { createKernelRequests, EXPLAIN_BUSY, REQUEST_TIMEOUT_MS } from "../src/kernel-requests.js";
import { fakeModel, fakeTimers } from "./helpers.js";

const NAMES = [
  { name: "data", kind: "list" },
  { name: "df", kind: "DataFrame" },
  { name: "dump", kind: "function" },
];

/** Resolve after the promises already queued have run (the fake kernel answers at once). */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * A message box with the composer, in a notebook cell, asking a fake kernel: `complete` answers
 * from `names` (and records the prefixes asked), `describe` from `values`.
 */
function setup({ names = NAMES, values = {}, describe = null } = {}) {
  const { window } = new JSDOM(
    "<!doctype html><html><body><div class='jp-Cell' tabindex='-1'><div class=root><div class=llmsock-composer>" +
      "<textarea></textarea><button>Stop</button></div></div></div></body></html>",
  );
  const document = window.document;
  const root = /** @type {HTMLElement} */ (document.querySelector(".root"));
  const box = /** @type {HTMLTextAreaElement} */ (document.querySelector("textarea"));
  const stopButton = /** @type {HTMLButtonElement} */ (document.querySelector("button"));
  const asked = [];
  const described = [];
  const kernel = {
    complete: async (prefix) => {
      asked.push(prefix);
      return names.filter((entry) => entry.name.toLowerCase().startsWith(prefix.toLowerCase()));
    },
    describe:
      describe ??
      (async (name) => {
        described.push(name);
        return name in values ? { ok: true, text: values[name] } : { ok: false, message: `no variable '${name}'` };
      }),
    explain: async () => ({ ok: true, message: "" }),
    destroy: () => {},
  };
  let submits = 0;
  const composer = createComposer({
    root,
    textarea: box,
    stopButton,
    submit: () => {
      submits += 1;
    },
    stop: () => {},
    changed: () => {},
    kernel,
  });
  const type = async (text, caret = text.length) => {
    box.value = text;
    box.setSelectionRange(caret, caret);
    box.dispatchEvent(new window.Event("input", { bubbles: true }));
    await settled();
  };
  const key = (name, init = {}) => {
    const event = new window.KeyboardEvent("keydown", { key: name, cancelable: true, bubbles: true, ...init });
    box.dispatchEvent(event);
    return event;
  };
  const list = () => /** @type {HTMLElement} */ (document.getElementById(String(box.getAttribute("aria-controls"))));
  const options = () => [...list().querySelectorAll('[role="option"]')];
  const selected = () => options().find((option) => option.getAttribute("aria-selected") === "true");
  return {
    window,
    document,
    box,
    composer,
    type,
    key,
    list,
    options,
    selected,
    asked,
    described,
    submits: () => submits,
  };
}

test("mentionAt finds the name typed after @ at the caret, never an address or a bare @", () => {
  assert.deepEqual(mentionAt("look at @d", 10), { start: 8, end: 10, prefix: "d" });
  assert.deepEqual(mentionAt("@dfx and", 2), { start: 0, end: 4, prefix: "d" }, "the rest of the name is replaced");
  assert.deepEqual(mentionAt("(@café", 6), { start: 1, end: 6, prefix: "café" });
  for (const [text, caret] of [
    ["mail me@example.org", 19],
    ["just @", 6],
    ["@@x", 3],
    ["@df ", 4],
    ["@1x", 3],
    ["x.@y", 4],
  ]) {
    assert.equal(mentionAt(text, caret), null, text);
  }
});

test("mentionedNames lists each name once, in order, and leaves code and addresses out", () => {
  assert.deepEqual(mentionedNames("compare @df with @df2, then @df again; mail a@b.org"), ["df", "df2"]);
  assert.deepEqual(mentionedNames("see `@inline` and\n```python\n@dataclass\nclass A: ...\n```\n@rows"), ["rows"]);
  assert.deepEqual(mentionedNames("unclosed ```\n@later"), []);
});

test("attachments from the wire are checked, limited, and added to a prompt's options", () => {
  assert.deepEqual(attachmentsOf(null), []);
  assert.deepEqual(attachmentsOf([{ name: "df", text: "t" }, { name: "", text: "x" }, "s", { name: "n", text: 3 }]), [
    { name: "df", text: "t" },
  ]);
  const many = Array.from({ length: 12 }, (_, i) => ({ name: `n${i}`, text: "" }));
  assert.equal(attachmentsOf(many).length, MAX_ATTACHMENTS);
  assert.deepEqual(withAttachments({ temperature: 1 }), { temperature: 1 });
  assert.deepEqual(withAttachments({ temperature: 1 }, [{ name: "a", text: "b" }]), {
    temperature: 1,
    attachments: [{ name: "a", text: "b" }],
  });
});

test("buildAttachments describes the known names, cuts long texts with a note, keeps at most 8", async () => {
  const long = "x".repeat(MAX_ATTACHMENT_CHARS + 500);
  const values = { df: "df: DataFrame, 3 rows", big: long };
  for (let i = 0; i < 10; i += 1) values[`v${i}`] = `v${i}: int`;
  const describe = async (name) => (name in values ? { ok: true, text: values[name] } : { ok: false });
  const text = "@df @everyone @big @v0 @v1 @v2 @v3 @v4 @v5 @v6 @v7";
  const { attachments, notes } = await buildAttachments(text, describe);
  assert.deepEqual(
    attachments.map((a) => a.name),
    ["df", "big", "v0", "v1", "v2", "v3", "v4", "v5"],
  );
  assert.equal(attachments[0].text, "df: DataFrame, 3 rows");
  assert.equal(attachments[1].text.length, MAX_ATTACHMENT_CHARS);
  assert.ok(attachments[1].text.endsWith(CUT_NOTE));
  assert.deepEqual(notes, [
    "@big: cut to 8,000 characters.",
    "At most 8 mentions are attached; @v6, @v7 went as text.",
  ]);
  const silent = await buildAttachments("@df", async () => null);
  assert.deepEqual(silent, {
    attachments: [],
    notes: ["The kernel did not answer about @df (busy?); sent as text."],
  });
});

test("kernel requests are answered by id over the comm, and resolve anyway when the kernel is silent", async () => {
  const model = fakeModel();
  const timers = fakeTimers();
  let n = 0;
  const kernel = createKernelRequests({ model, newId: () => `r${++n}`, timing: timers });
  const names = kernel.complete("d");
  assert.deepEqual(model.sent, [{ type: "complete", prefix: "d", id: "r1" }]);
  model.emit("msg:custom", { type: "completions", id: "other-view", names: [{ name: "x", kind: "int" }] });
  model.emit("msg:custom", { type: "description", id: "r1", ok: true, text: "wrong type" });
  model.emit("msg:custom", { type: "completions", id: "r1", names: [{ name: "df", kind: "DataFrame" }, { bad: 1 }] });
  assert.deepEqual(await names, [{ name: "df", kind: "DataFrame" }]);

  const description = kernel.describe("df");
  model.emit("msg:custom", { type: "description", id: "r2", name: "df", ok: true, text: "df: DataFrame" });
  assert.deepEqual(await description, { ok: true, text: "df: DataFrame" });

  const late = kernel.describe("df");
  timers.advance(REQUEST_TIMEOUT_MS);
  assert.equal(await late, null);

  const refused = kernel.explain();
  assert.deepEqual(model.sent.at(-1), { type: "explain", id: "r4" });
  model.emit("msg:custom", { type: "explained", id: "r4", ok: false, message: "no error to explain yet" });
  assert.deepEqual(await refused, { ok: false, message: "no error to explain yet" });

  const busy = kernel.explain();
  kernel.destroy();
  assert.deepEqual(await busy, { ok: false, message: EXPLAIN_BUSY });
  assert.equal(model.count("msg:custom"), 0);
  assert.equal(timers.size, 0);
});

test("@ and a letter open the list of the kernel's names; the keys move through it and pick", async () => {
  const { box, type, key, list, options, selected, asked, document } = setup();
  assert.equal(box.getAttribute("aria-autocomplete"), "list");
  assert.equal(box.getAttribute("aria-controls"), list().id);
  await type("look at @");
  assert.equal(list().hidden, true, "no list for a bare @");
  await type("look at @d");
  assert.deepEqual(asked, ["d"]);
  assert.equal(list().hidden, false);
  assert.deepEqual(
    options().map((o) => o.textContent),
    ["datalist", "dfDataFrame", "dumpfunction"],
  );
  assert.equal(selected()?.getAttribute("data-name"), "data");
  assert.equal(box.getAttribute("aria-activedescendant"), selected()?.id);

  assert.equal(key("ArrowDown").defaultPrevented, true);
  assert.equal(selected()?.getAttribute("data-name"), "df");
  assert.equal(box.getAttribute("aria-activedescendant"), selected()?.id);
  key("ArrowUp");
  key("ArrowUp");
  assert.equal(selected()?.getAttribute("data-name"), "dump", "Up from the first wraps to the last");
  key("ArrowDown");
  key("ArrowDown");
  const enter = key("Enter");
  assert.equal(enter.defaultPrevented, true);
  assert.equal(box.value, "look at @df ", "Enter picked the name; the prompt was not sent");
  assert.equal(box.selectionStart, box.value.length);
  assert.equal(list().hidden, true);
  assert.equal(box.hasAttribute("aria-activedescendant"), false);
  assert.equal(document.activeElement, box);
});

test("Tab picks, Escape closes only the list, a click picks, and typing on narrows it", async () => {
  const { window, box, type, key, list, options, submits } = setup();
  await type("@du");
  assert.deepEqual(
    options().map((o) => o.getAttribute("data-name")),
    ["dump"],
  );
  key("Tab");
  assert.equal(box.value, "@dump ");

  let escapes = 0;
  window.document.body.addEventListener("keydown", (event) => {
    if (event.key === "Escape") escapes += 1;
  });
  await type("see @d");
  const esc = key("Escape");
  assert.equal(list().hidden, true);
  assert.equal(escapes, 0, "the host never saw the Escape: the chat keeps the focus");
  assert.equal(esc.defaultPrevented, true);
  key("Enter");
  assert.equal(submits(), 1, "with the list closed, Enter sends");

  await type("see @d and more", 6);
  const df = options()[1];
  const down = new window.MouseEvent("mousedown", { bubbles: true, cancelable: true });
  df.dispatchEvent(down);
  assert.equal(down.defaultPrevented, true, "the box keeps the focus");
  df.dispatchEvent(new window.MouseEvent("click", { bubbles: true }));
  assert.equal(box.value, "see @df  and more");

  await type("@xyz");
  assert.equal(list().hidden, true, "no name starts so: no list");
});

test("an answer that comes after the user typed on is not shown", async () => {
  let answer = null;
  const { window, box, list, options } = setup();
  const kernel = {
    complete: (prefix) =>
      new Promise((resolve) => {
        answer = { prefix, resolve };
      }),
  };
  // A second composer on a second box, with a kernel that answers when told.
  const other = window.document.createElement("textarea");
  box.after(other);
  createComposer({
    root: /** @type {HTMLElement} */ (box.parentElement),
    textarea: other,
    stopButton: /** @type {HTMLButtonElement} */ (window.document.querySelector("button")),
    submit: () => {},
    stop: () => {},
    changed: () => {},
    kernel: /** @type {any} */ (kernel),
  });
  other.value = "@d";
  other.setSelectionRange(2, 2);
  other.dispatchEvent(new window.Event("input", { bubbles: true }));
  const first = answer;
  other.value = "@dx";
  other.setSelectionRange(3, 3);
  other.dispatchEvent(new window.Event("input", { bubbles: true }));
  first.resolve([{ name: "df", kind: "DataFrame" }]);
  await settled();
  const listbox = /** @type {HTMLElement} */ (other.nextElementSibling);
  assert.equal(listbox.hidden, true, "the stale answer for @d was dropped");
  answer.resolve([{ name: "dx", kind: "int" }]);
  await settled();
  assert.equal(listbox.hidden, false);
  assert.equal(listbox.textContent, "dxint");
  assert.notEqual(listbox.id, list().id, "each list has its own id");
  assert.equal(options().length, 0);
});

test("on send, each known @name goes as an attachment; an unknown one stays text", async () => {
  const values = { df: "df: DataFrame, 3 rows x 2 columns\n<b>city</b>" };
  const { composer, box, described } = setup({ values });
  const calls = [];
  box.value = "compare @df with @everyone and @df";
  await composer.send(box.value, (text, attachments) => {
    calls.push({ text, attachments });
    return true;
  });
  assert.deepEqual(described, ["df", "everyone"]);
  assert.deepEqual(calls, [
    { text: "compare @df with @everyone and @df", attachments: [{ name: "df", text: values.df }] },
  ]);
  assert.equal(box.value, "", "sent: the box is empty");

  // No mention: sent at once, with no attachments and no question to the kernel.
  const plain = [];
  composer.send("hello", (text, attachments) => plain.push([text, attachments]) > 0);
  assert.deepEqual(plain, [["hello", []]]);
  assert.deepEqual(described, ["df", "everyone"]);
});

test("the box waits read-only while the kernel describes, then says what was cut", async () => {
  let answer = null;
  const { composer, box, document } = setup({
    describe: () =>
      new Promise((resolve) => {
        answer = resolve;
      }),
  });
  const warning = composer.warning;
  document.body.append(warning);
  box.value = "@big please";
  const sent = [];
  const sending = composer.send(box.value, (_text, attachments) => sent.push(attachments) > 0);
  assert.equal(box.readOnly, true);
  assert.equal(warning.textContent, "Reading @big from the kernel…");
  composer.send(box.value, () => assert.fail("a second Send while the first waits sends nothing"));
  answer({ ok: true, text: "y".repeat(MAX_ATTACHMENT_CHARS * 2) });
  await sending;
  assert.equal(box.readOnly, false);
  assert.equal(sent.length, 1);
  assert.equal(sent[0][0].text.length, MAX_ATTACHMENT_CHARS);
  assert.equal(warning.textContent, "@big: cut to 8,000 characters.");

  // A send that fails (the connection dropped meanwhile) keeps the text in the box.
  box.value = "@big again";
  const failing = composer.send(box.value, () => false);
  answer({ ok: true, text: "short" });
  await failing;
  assert.equal(box.value, "@big again");
  assert.equal(box.readOnly, false);
});

test("chips show each attachment's exact text as text, opened and closed by their button", () => {
  const { window } = new JSDOM(
    "<!doctype html><html><body><div class=llmsock-msg><div class=llmsock-body>q</div></div>",
  );
  const message = /** @type {HTMLElement} */ (window.document.querySelector(".llmsock-msg"));
  const attachments = [
    { name: "df", text: "df: DataFrame\n<img src=x onerror=alert(1)>" },
    { name: "rows", text: "rows: list, len 3\n[3, 1, 2]" },
  ];
  paintChips(message, attachments);
  const row = message.querySelector('[data-role="chips"]');
  assert.ok(row);
  assert.equal(row.previousElementSibling?.className, "llmsock-body", "the chips are under the message's text");
  const buttons = [...row.querySelectorAll("button")];
  assert.deepEqual(
    buttons.map((b) => b.textContent),
    ["@df", "@rows"],
  );
  const texts = [...row.querySelectorAll("pre")];
  assert.ok(texts.every((pre) => pre.hidden));
  assert.equal(buttons[0].getAttribute("aria-expanded"), "false");
  assert.equal(buttons[0].getAttribute("aria-controls"), texts[0].id);

  buttons[0].click();
  assert.equal(texts[0].hidden, false);
  assert.equal(buttons[0].getAttribute("aria-expanded"), "true");
  assert.equal(texts[0].textContent, attachments[0].text);
  assert.equal(texts[0].querySelector("img"), null, "plain text, never HTML");
  assert.equal(window.document.querySelectorAll("img").length, 0);

  paintChips(message, attachments); // painted again: the open chip stays open
  assert.equal(message.querySelectorAll('[data-role="chips"]').length, 1);
  assert.equal(message.querySelector("pre")?.hidden, false);
  buttons[0].click();
  assert.equal(texts[0].hidden, true);

  paintChips(message, [{ name: "x\u202e", text: "a\u200bb" }]);
  assert.equal(message.querySelector("button")?.textContent, "@x\u27e8U+202E\u27e9", "invisible characters shown");
  assert.equal(message.querySelector("pre")?.textContent, "a\u27e8U+200B\u27e9b");
  paintChips(message, []);
  assert.equal(message.querySelector('[data-role="chips"]'), null);
  paintChips(message, undefined);
});

test("Explain the last error asks the kernel and shows its refusal", async () => {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const document = window.document;
  const host = /** @type {HTMLElement} */ (document.getElementById("el"));
  const said = [];
  const answers = [
    { ok: false, message: "no error to explain yet: run a cell that fails first" },
    { ok: true, message: "" },
  ];
  let asked = 0;
  const header = createHeader({
    document,
    host,
    onExample: () => {},
    say: (text) => said.push(text),
    onModel: () => {},
    onExplain: async () => answers[asked++],
  });
  host.append(header.header);
  const button = /** @type {HTMLButtonElement} */ (header.header.querySelector('[data-action="explain"]'));
  const note = /** @type {HTMLElement} */ (header.header.querySelector('[data-role="explain-note"]'));
  assert.equal(button.textContent, "Explain the last error");
  assert.equal(button.hidden, false);
  assert.equal(note.hidden, true);
  button.click();
  assert.equal(button.disabled, true, "one question at a time");
  await settled();
  assert.equal(button.disabled, false);
  assert.equal(note.hidden, false);
  assert.equal(note.textContent, "no error to explain yet: run a cell that fails first");
  assert.equal(note.getAttribute("role"), "status");
  button.click();
  await settled();
  assert.equal(note.hidden, true);
  assert.deepEqual(said, ["Explaining the last error"]);

  const without = createHeader({ document, host, onExample: () => {}, say: () => {}, onModel: () => {} });
  assert.equal(without.header.querySelector('[data-action="explain"]')?.hidden, true, "no kernel: no button");
});

test("a destroyed composer stops listening: typing @ asks the kernel nothing and shows no list", async () => {
  const { composer, type, asked, document } = setup();
  await type("look at @d");
  assert.deepEqual(asked, ["d"]);
  composer.destroy();
  assert.equal(document.querySelector('[role="listbox"]'), null, "the list went with it");
  await type("look at @da");
  assert.deepEqual(asked, ["d"], "no request after destroy");
});
