import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { JSDOM } from "jsdom";

import { INVISIBLE_RANGES, markerFor, reveal } from "../src/invisible.js";
import { createMarkdownRenderer } from "../src/markdown.js";
import { initialState, reduce } from "../src/reducer.js";
import { createView } from "../src/view.js";

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURE = JSON.parse(readFileSync(join(here, "..", "..", "tests", "fixtures", "text", "invisible.json"), "utf8"));

function* codePoints() {
  for (const [first, last] of FIXTURE.ranges) for (let cp = first; cp <= last; cp += 1) yield cp;
}

/** A view in jsdom whose state is driven directly, painted synchronously. */
function mount() {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const el = window.document.getElementById("el");
  const md = createMarkdownRenderer(window);
  const view = createView(el, {
    renderMarkdown: md.render,
    onSend: () => true,
    onStop: () => {},
    requestFrame: () => 1,
    cancelFrame: () => {},
  });
  return { el, view };
}

/** Every text a reader sees in `el` (its text and its tooltips), joined. */
function allText(el) {
  const parts = [el.textContent];
  for (const node of el.querySelectorAll("[title]")) parts.push(node.getAttribute("title"));
  return parts.join("\n");
}

function hiddenIn(text) {
  return [...codePoints()].filter((cp) => text.includes(String.fromCodePoint(cp)));
}

test("the widget's ranges are the shared fixture's", () => {
  assert.deepEqual(INVISIBLE_RANGES, FIXTURE.ranges);
});

test("every listed code point is shown as a visible marker, never as itself", () => {
  for (const cp of codePoints()) {
    const shown = reveal(`a${String.fromCodePoint(cp)}b`);
    assert.equal(shown, `a${markerFor(cp)}b`, `U+${cp.toString(16)}`);
  }
  assert.equal(markerFor(0x202e), "\u27e8U+202E\u27e9");
});

test("a right-to-left override cannot make gnp.exe read as exe.png", () => {
  assert.equal(reveal("invoice\u202Egnp.exe"), "invoice\u27e8U+202E\u27e9gnp.exe");
  assert.equal(reveal("\x1b[31mred\x1b[0m"), "\u27e8U+001B\u27e9[31mred\u27e8U+001B\u27e9[0m");
});

test("tabs, line breaks, emoji sequences and ordinary text are kept", () => {
  const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}";
  const coder = "\u{1F469}\u{1F3FD}\u200D\u{1F4BB}";
  const couple = "\u{1F469}\u200D\u2764\uFE0F\u200D\u{1F468}";
  const text = `a\tb\nc ${family} ${coder} ${couple} héllo 你好 שלום`;
  assert.equal(reveal(text), text);
  assert.equal(reveal("one\r\ntwo"), "one\ntwo");
  assert.equal(reveal("x\u200Dy"), "x\u27e8U+200D\u27e9y", "a ZWJ between letters is shown");
  assert.equal(reveal("\u{1F468}\u200Dx"), "\u{1F468}\u27e8U+200D\u27e9x");
});

test("no listed code point reaches the page from prose, code, user text, reasoning or tools", () => {
  const all = [...codePoints()].map((cp) => String.fromCodePoint(cp)).join("");
  const { el, view } = mount();
  let state = reduce(initialState(), { type: "connection", state: "open", detail: `detail ${all}` });
  state = {
    ...state,
    messages: [
      { id: "u1", role: "user", text: `user ${all}`, status: "complete" },
      {
        id: "a1",
        role: "assistant",
        status: "error",
        error: { code: `code${all}`, message: `message${all}` },
        reasoning: `thinking ${all}`,
        text: `prose ${all}\n\n\`inline ${all}\`\n\n\`\`\`python\nblock ${all}\n\`\`\`\n\n[link ${all}](https://example.com/${all})`,
        tools: [
          {
            id: "t1",
            name: `calc${all}`,
            arguments: `{"x": "${all.replace(/[\\"]/g, "")}"}`,
            status: "complete",
            result: `result ${all}`,
          },
          {
            id: "t2",
            name: "fail",
            arguments: `not json ${all}`,
            status: "error",
            error: { code: "tool_error", message: `bad ${all}` },
          },
        ],
      },
    ],
  };
  view.update(state);
  view.flush();
  view.setStore(`store ${all}`);
  const text = allText(el);
  assert.deepEqual(hiddenIn(text), []);
  for (const cp of [0x1b, 0x202e, 0x200b, 0xfeff, 0x9b])
    assert.ok(text.includes(markerFor(cp)), `U+${cp.toString(16)}`);
  for (const part of [
    "user",
    "prose",
    "inline",
    "block",
    "thinking",
    "calc",
    "result",
    "bad",
    "store",
    "message",
    "detail",
  ]) {
    assert.ok(text.includes(part), part);
  }
});
