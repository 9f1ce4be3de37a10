import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { createMarkdownRenderer, MAX_HIGHLIGHT_CHARS } from "../src/markdown.js";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
const md = createMarkdownRenderer(window);

function fragment(text) {
  const div = window.document.createElement("div");
  div.innerHTML = md.render(text);
  return div;
}

const HOSTILE = [
  "<script>alert(1)</script>",
  "<img src=x onerror=alert(1)>",
  "[x](javascript:alert(1))",
  "<iframe src=//x></iframe>",
  "[y](JaVaScRiPt:alert(2)) [z](data:text/html,<b>x</b>) [v](vbscript:msgbox)",
  "![pic](https://example.com/track.png)",
  '<a href="javascript:alert(3)">a</a> <form><input></form> <object data=x></object> <embed src=x> <style>*{}</style>',
  '<svg onload=alert(4)></svg> <div style="background:url(x)" onclick="alert(5)">d</div>',
].join("\n\n");

test("hostile input renders nothing that executes or loads", () => {
  const div = fragment(`${HOSTILE}\n\nSee [the docs](https://example.com/docs).`);
  for (const tag of ["script", "img", "iframe", "object", "embed", "form", "style", "svg", "input"]) {
    assert.equal(div.querySelectorAll(tag).length, 0, `no <${tag}>`);
  }
  for (const el of div.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      assert.ok(!/^on/i.test(attr.name), `no ${attr.name} handler`);
      assert.notEqual(attr.name, "style");
    }
  }
  for (const a of div.querySelectorAll("a")) {
    const href = a.getAttribute("href") ?? "";
    assert.ok(href === "" || /^(https?:|mailto:)/i.test(href), `safe href ${href}`);
    assert.ok(!/javascript:/i.test(href));
  }
});

test("raw HTML in model output appears as text", () => {
  const div = fragment("<script>alert(1)</script> and <b>bold?</b>");
  assert.match(div.textContent, /<script>alert\(1\)<\/script>/);
  assert.match(div.textContent, /<b>bold\?<\/b>/);
  assert.equal(div.querySelectorAll("b").length, 0);
});

test("a javascript: markdown link is not a link", () => {
  const div = fragment("[x](javascript:alert(1))");
  assert.equal(div.querySelectorAll("a").length, 0);
  assert.match(div.textContent, /\[x\]\(javascript:alert\(1\)\)/);
});

test("a normal link opens in a new tab with rel noopener noreferrer", () => {
  const div = fragment("Go to [site](https://example.com/a?b=1) or mail [me](mailto:a@example.com)");
  const links = [...div.querySelectorAll("a")];
  assert.equal(links.length, 2);
  for (const a of links) {
    assert.equal(a.getAttribute("target"), "_blank");
    assert.equal(a.getAttribute("rel"), "noopener noreferrer");
  }
  assert.equal(links[0].getAttribute("href"), "https://example.com/a?b=1");
});

test("bare URLs are linkified with the same link rules", () => {
  const a = fragment("see https://example.org/x").querySelector("a");
  assert.equal(a.getAttribute("href"), "https://example.org/x");
  assert.equal(a.getAttribute("rel"), "noopener noreferrer");
});

test("fenced code is highlighted for known languages and escaped for others", () => {
  const py = fragment("```python\ndef f(x):\n    return '<tag>'\n```");
  const code = py.querySelector("pre code");
  assert.ok(code, "a code block");
  assert.ok(code.querySelector(".hljs-keyword"), "keywords are highlighted");
  assert.match(code.textContent, /return '<tag>'/);
  assert.equal(code.querySelectorAll("tag").length, 0);
  const other = fragment("```brainfuck\n<script>x</script>\n```").querySelector("pre code");
  assert.equal(other.textContent.trim(), "<script>x</script>");
  assert.equal(other.querySelectorAll("script").length, 0);
  for (const lang of ["js", "json", "bash", "sql", "md", "text"]) {
    assert.ok(fragment(`\`\`\`${lang}\n1\n\`\`\``).querySelector("pre code"), lang);
  }
});

test("an unclosed fence (mid-stream) still renders as highlighted code", () => {
  const code = fragment("Here:\n\n```javascript\nconst a = 1;").querySelector("pre code");
  assert.ok(code.querySelector(".hljs-keyword"));
});

test("ordinary markdown renders", () => {
  const div = fragment("# Title\n\n- **bold** and *em* and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |");
  assert.ok(div.querySelector("h1"));
  assert.ok(div.querySelector("li strong"));
  assert.ok(div.querySelector("li em"));
  assert.ok(div.querySelector("li code"));
  assert.ok(div.querySelector("table td"));
});

test("code longer than MAX_HIGHLIGHT_CHARS is escaped, not highlighted", () => {
  const line = "value = compute('<tag>', 1)\n";
  const long = line.repeat(Math.ceil(MAX_HIGHLIGHT_CHARS / line.length) + 1);
  const code = fragment(`\`\`\`python\n${long}\`\`\``).querySelector("pre code");
  assert.equal(code.querySelectorAll("span").length, 0);
  assert.equal(code.textContent, long);
  assert.ok(fragment(`\`\`\`python\n${line}\`\`\``).querySelector("pre code span"), "short code is highlighted");
});
