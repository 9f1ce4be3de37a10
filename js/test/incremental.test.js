import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { createStreamPainter, holdBack } from "../src/incremental.js";
import { reveal } from "../src/invisible.js";
import { createMarkdownIt, createMarkdownRenderer, createSanitizer } from "../src/markdown.js";
import { breakLongRuns } from "../src/wrap.js";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
const { document } = window;
const full = createMarkdownRenderer(window);

/** A painter on a clock that never moves (no tail is ever left for later), and its parse log. */
function painter({ maxTokens = 20000, maxChars = 512 * 1024 } = {}) {
  const md = createMarkdownIt();
  const parsed = [];
  const parse = md.parse.bind(md);
  md.parse = (source, env) => {
    parsed.push(source.length);
    return parse(source, env);
  };
  const { sanitize } = createSanitizer(window);
  return { paint: createStreamPainter({ md, sanitize, maxTokens, maxChars, now: () => 0 }), parsed };
}

/** What a full render of `text` shows (the view's path without `into`). */
function fullHtml(text) {
  const div = document.createElement("div");
  div.innerHTML = full.render(text);
  breakLongRuns(div);
  return div.innerHTML;
}

/** A small deterministic PRNG (mulberry32). */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Blocks a model writes, and the ones that reach backwards or change what came before.
const BLOCKS = [
  "Plain paragraph with **bold**, *em*, `code` and https://example.com/x.",
  "A paragraph\nwith a lazy\ncontinuation line.",
  "Setext heading\n---",
  "Setext one\n===",
  "# Heading one\n## Heading two",
  "- one\n- two\n  - nested\n    - deeper\n- three",
  "- loose\n\n- list\n\n  continued item",
  "1. first\n2. second\n10. tenth",
  "1. a\n\n1. b",
  "* star\n+ plus\n- dash",
  "> quote line\nlazy continuation\n> - list in quote",
  "```python\ndef f(x):\n    return '<tag>'\n```",
  "```\nplain fence\n\n\nwith blank lines\n```",
  "~~~js\nconst a = 1;\n~~~",
  "```bash\nunclosed fence\necho hi",
  "    indented code\n\n    more code",
  "| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |",
  "| lone | header |",
  "See [the docs][ref] and [ref].",
  "[ref]: https://example.com/ref 'Title'",
  "[Later]: https://example.com/later",
  "A [later] link, defined below.",
  "<script>alert(1)</script> <b>bold?</b> <img src=x onerror=alert(1)>",
  "<div>\nhtml-looking block\n</div>",
  "***",
  "---",
  "text right above a rule\n***",
  `${"A".repeat(150)} then ${"b".repeat(70)}`,
  "*a*a*a*a *unclosed emphasis",
  "Zero\u200bwidth and \u202eoverride and \r\nCRLF",
  "- [x] task\n- [ ] item",
  "Term\n: not a definition list",
];

function randomText(next) {
  const count = 1 + Math.floor(next() * 8);
  const parts = [];
  for (let i = 0; i < count; i += 1) {
    parts.push(BLOCKS[Math.floor(next() * BLOCKS.length)]);
    const gap = next();
    parts.push(gap < 0.55 ? "\n\n" : gap < 0.85 ? "\n" : gap < 0.95 ? "\n\n\n" : " ");
  }
  return parts.join("").slice(0, next() < 0.3 ? -1 : undefined);
}

function splits(next, length) {
  const points = [];
  for (let at = 0; at < length; ) {
    at += 1 + Math.floor(next() * (next() < 0.2 ? 40 : 6));
    points.push(Math.min(at, length));
  }
  return points;
}

test("streamed at random split points, every frame shows what a full render of it shows", () => {
  const next = random(16);
  for (let round = 0; round < 200; round += 1) {
    const text = randomText(next);
    const { paint } = painter();
    const el = document.createElement("div");
    for (const at of splits(next, text.length)) {
      const shown = text.slice(0, at);
      assert.equal(paint(el, shown, true), true);
      assert.equal(el.innerHTML, fullHtml(holdBack(shown)), `round ${round}, streaming ${JSON.stringify(shown)}`);
    }
    paint(el, text, false);
    assert.equal(el.innerHTML, fullHtml(text), `round ${round}, final ${JSON.stringify(text)}`);
  }
});

test("small limits: the switch to plain text and back matches a full render", () => {
  const next = random(7);
  for (let round = 0; round < 100; round += 1) {
    const text = randomText(next) + randomText(next);
    const limits = { maxTokens: 30, maxChars: 400 };
    const { paint } = painter(limits);
    const md = createMarkdownIt();
    const { sanitize } = createSanitizer(window);
    const reference = (source) => {
      const div = document.createElement("div");
      const tokens = source.length > limits.maxChars ? null : md.parse(source, {});
      const count = tokens?.reduce((n, t) => n + 1 + (t.children?.length ?? 0), 0) ?? 0;
      div.innerHTML =
        tokens === null || count > limits.maxTokens
          ? sanitize(`<div class="llmsock-plain">${md.utils.escapeHtml(source)}</div>`)
          : sanitize(md.renderer.render(tokens, md.options, {}));
      breakLongRuns(div);
      return div.innerHTML;
    };
    const el = document.createElement("div");
    for (const at of splits(next, text.length)) paint(el, text.slice(0, at), true);
    paint(el, text, false);
    assert.equal(el.innerHTML, reference(reveal(text)), `round ${round}`);
  }
});

test("finished blocks keep their DOM nodes while the tail streams", () => {
  const { paint } = painter();
  const el = document.createElement("div");
  paint(el, "# Title\n\nFirst paragraph.\n\nSecond line\nand", true);
  const heading = el.querySelector("h1");
  const first = el.querySelectorAll("p")[0];
  paint(el, "# Title\n\nFirst paragraph.\n\nSecond line\nand more", true);
  paint(el, "# Title\n\nFirst paragraph.\n\nSecond line\nand more.\n\n- a list", true);
  assert.equal(el.querySelector("h1"), heading);
  assert.equal(el.querySelectorAll("p")[0], first);
  assert.equal(el.querySelectorAll("p")[1].textContent, "Second line\nand more.");
});

test("a reference definition at the end turns an earlier [label] into a link", () => {
  const { paint } = painter();
  const el = document.createElement("div");
  const start = "Read [the guide].\n\nMore text.\n\nAnd more.\n\n";
  paint(el, start, true);
  assert.equal(el.querySelectorAll("a").length, 0);
  const text = `${start}[the guide]: https://example.com/guide\n`;
  paint(el, text, true);
  assert.equal(el.querySelector("a")?.getAttribute("href"), "https://example.com/guide");
  assert.equal(el.innerHTML, fullHtml(text));
});

test("a partial fence, setext underline or delimiter row is held back until its line is complete", () => {
  assert.equal(holdBack("text\n``"), "text\n");
  assert.equal(holdBack("```pyth"), "");
  assert.equal(holdBack("Title\n--"), "Title\n");
  assert.equal(holdBack("| a | b |\n|--"), "| a | b |\n");
  assert.equal(holdBack("| a | b |\n| 1"), "| a | b |\n| 1");
  assert.equal(holdBack("words and more"), "words and more");
  assert.equal(holdBack("done\n"), "done\n");
  // A streamed code block never shows its closing fence's backticks as code.
  const { paint } = painter();
  const el = document.createElement("div");
  paint(el, "```js\nconst a = 1;\n``", true);
  assert.equal(el.querySelector("code")?.textContent, "const a = 1;\n");
  paint(el, "```js\nconst a = 1;\n```", false);
  assert.equal(el.querySelector("code")?.textContent, "const a = 1;\n");
});

test("streaming many paragraphs parses each character a bounded number of times", () => {
  const { paint, parsed } = painter();
  const el = document.createElement("div");
  let text = "";
  for (let i = 0; i < 2000; i += 1) {
    text += `${i % 4 === 0 ? "\n\n" : " "}Sentence number ${i} says something.`;
    paint(el, text, true);
  }
  paint(el, text, false);
  const total = parsed.reduce((a, b) => a + b, 0);
  assert.ok(total < 20 * text.length, `parsed ${total} characters for ${text.length}`);
  assert.equal(el.innerHTML, fullHtml(text));
});

test("plain text past the character limit is appended to, not rebuilt", () => {
  const { paint, parsed } = painter({ maxChars: 1000 });
  const el = document.createElement("div");
  let text = "";
  for (let i = 0; i < 3000; i += 1) {
    text += ` word${i}`;
    paint(el, text, true);
  }
  const plain = el.querySelector(".llmsock-plain");
  parsed.length = 0;
  text += ` ${"x".repeat(300)}`;
  paint(el, text, false);
  assert.equal(el.querySelector(".llmsock-plain"), plain);
  assert.deepEqual(parsed, [], "past the limit nothing is parsed");
  assert.equal(el.innerHTML.replace(/<wbr>/g, ""), `<div class="llmsock-plain">${text}</div>`);
  assert.equal(el.querySelectorAll("wbr").length, 4);
});

test("a slow tail render is spaced out, and the next call catches up", () => {
  const md = createMarkdownIt();
  const { sanitize } = createSanitizer(window);
  let clock = 0;
  const paint = createStreamPainter({
    md,
    sanitize: (html) => {
      clock += 50; // every render takes 50 ms
      return sanitize(html);
    },
    maxTokens: 20000,
    maxChars: 512 * 1024,
    now: () => clock,
  });
  const el = document.createElement("div");
  assert.equal(paint(el, "one long paragraph", true), true);
  assert.equal(paint(el, "one long paragraph that grows", true), false, "left for a later frame");
  assert.equal(el.textContent, "one long paragraph\n");
  clock += 200;
  assert.equal(paint(el, "one long paragraph that grows", true), true);
  assert.equal(el.textContent, "one long paragraph that grows\n");
  assert.equal(paint(el, "one long paragraph that grows.", false), true, "the final text is never left");
});

test("markdown.js's render.into shows what render shows", () => {
  const el = document.createElement("div");
  const text = "# T\n\n- a\n- b\n\n```py\nx = 1\n```\n\n[l]: https://example.com\n\n[l]";
  full.render.into(el, text.slice(0, 20), true);
  full.render.into(el, text, false);
  assert.equal(el.innerHTML, fullHtml(text));
});

// Lines that may follow a table's rows: rows of every width, and lines that end the table.
const TABLE_LINES = [
  "| 1 | **bold** | `code` |",
  "| a \\| pipe | [ref] |",
  "no pipes at all",
  "| one |",
  "| 1 | 2 | 3 | 4 | 5 |",
  "|  |  |",
  "#",
  "#x not a heading",
  "> quote",
  "- item",
  "```",
  "***",
  "    indented",
  "",
  "[ref]: https://example.com/ref",
  "A paragraph after.",
  "| x | y |\n|---|---|",
];

function randomTable(next) {
  const lines = [next() < 0.5 ? "| h1 | h2 |" : "h1 | h2 | h3", next() < 0.5 ? "|---|:-:|" : "--- | ---: | ---"];
  const rows = Math.floor(next() * 30);
  for (let i = 0; i < rows; i += 1) {
    lines.push(next() < 0.7 ? `| ${i} | w${i} | ${i * i} |` : TABLE_LINES[Math.floor(next() * TABLE_LINES.length)]);
  }
  const before = next() < 0.3 ? `${BLOCKS[Math.floor(next() * BLOCKS.length)]}\n\n` : "";
  return before + lines.join("\n") + (next() < 0.5 ? "\n" : "");
}

test("a table streamed row by row, split at random points, shows what a full render shows", () => {
  const next = random(61);
  for (let round = 0; round < 150; round += 1) {
    const text = randomTable(next) + (next() < 0.3 ? randomTable(next) : "");
    const { paint } = painter();
    const el = document.createElement("div");
    const points = next() < 0.5 ? splits(next, text.length) : [...text.matchAll(/\n/g)].map((m) => m.index + 1);
    for (const at of points) {
      const shown = text.slice(0, at);
      paint(el, shown, true);
      assert.equal(el.innerHTML, fullHtml(holdBack(shown)), `round ${round}, streaming ${JSON.stringify(shown)}`);
    }
    paint(el, text, false);
    assert.equal(el.innerHTML, fullHtml(text), `round ${round}, final ${JSON.stringify(text)}`);
  }
});

test("a growing table keeps its rows' nodes and parses each row a bounded number of times", () => {
  const { paint, parsed } = painter();
  const el = document.createElement("div");
  let text = "Intro.\n\n| n | word | square |\n|---|---|---|\n";
  paint(el, text, true);
  const table = el.querySelector("table");
  let firstRow = null;
  for (let n = 0; n < 600; n += 1) {
    for (const part of [`| ${n}`, ` | w${n % 97}`, ` | ${n * n} |\n`]) {
      text += part;
      paint(el, text, true);
    }
    if (n === 1) firstRow = el.querySelector("tbody tr");
  }
  assert.equal(el.querySelector("table"), table, "the table is not rebuilt");
  assert.equal(el.querySelector("tbody tr"), firstRow, "nor are its rows");
  const total = parsed.reduce((a, b) => a + b, 0);
  assert.ok(total < 20 * text.length, `parsed ${total} characters for ${text.length}`);
  assert.equal(el.innerHTML, fullHtml(holdBack(text)));
  text += "\nAfter the table.";
  paint(el, text, false);
  assert.equal(el.querySelector("table"), table, "nor is it when it ends");
  assert.equal(el.innerHTML, fullHtml(text));
});
