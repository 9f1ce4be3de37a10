import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { createMarkdownRenderer, MAX_TOKENS } from "../src/markdown.js";
import { breakLongRuns, RUN } from "../src/wrap.js";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
const md = createMarkdownRenderer(window);

function rendered(text) {
  const div = window.document.createElement("div");
  div.innerHTML = md.render(text);
  breakLongRuns(div);
  return div;
}

test("a long unbroken run gets a break opportunity every RUN characters, text unchanged", () => {
  const token = "A".repeat(RUN * 100 + 7);
  const div = rendered(`before ${token} after`);
  assert.equal(div.textContent.trim(), `before ${token} after`);
  assert.equal(div.querySelectorAll("wbr").length, 100);
  for (const node of div.querySelector("p").childNodes) {
    if (node.nodeType === 3) assert.ok(!new RegExp(`\\S{${RUN + 1}}`).test(node.data));
  }
});

test("short words, and emoji split across code units, are left whole", () => {
  const div = rendered(`short words only ${"\u{1F600}".repeat(RUN + 1)}`);
  assert.equal(div.querySelectorAll("wbr").length, 1);
  assert.ok(!div.textContent.includes("\uFFFD"));
  assert.equal(div.textContent.trim(), `short words only ${"\u{1F600}".repeat(RUN + 1)}`);
  assert.equal(rendered("a b c").querySelectorAll("wbr").length, 0);
});

test("text too costly for Markdown is shown whole as plain text, still sanitized", () => {
  const text = "*a".repeat(MAX_TOKENS);
  const start = performance.now();
  const div = rendered(`${text} <img src=x onerror=alert(1)>`);
  assert.ok(performance.now() - start < 5000, "bounded work");
  assert.equal(div.querySelectorAll("em").length, 0);
  assert.equal(div.querySelectorAll("img").length, 0);
  assert.ok(div.querySelector(".llmsock-plain"));
  assert.ok(div.textContent.includes(text), "the whole text");
  assert.ok(div.textContent.includes("<img src=x onerror=alert(1)>"));
});

test("ordinary answers are still Markdown", () => {
  const div = rendered("# Title\n\n*emphasis* and `code`\n\n".repeat(50));
  assert.equal(div.querySelectorAll("h1").length, 50);
  assert.equal(div.querySelector(".llmsock-plain"), null);
});
