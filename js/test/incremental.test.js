import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { createStreamPainter, holdBack, plainParts } from "../src/incremental.js";
import { reveal } from "../src/invisible.js";
import { createMarkdownIt, createMarkdownRenderer, createSanitizer } from "../src/markdown.js";
import { breakLongRuns } from "../src/wrap.js";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
const { document } = window;
const full = createMarkdownRenderer(window);

/** A painter on a clock that never moves (no tail is ever left for later), and its parse log. */
function painter({ maxTokens = 20000, maxChars = 512 * 1024, plainPart = undefined } = {}) {
  const md = createMarkdownIt();
  const parsed = [];
  const parse = md.parse.bind(md);
  md.parse = (source, env) => {
    parsed.push(source.length);
    return parse(source, env);
  };
  const { sanitize } = createSanitizer(window);
  return { paint: createStreamPainter({ md, sanitize, maxTokens, maxChars, now: () => 0, plainPart }), parsed };
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

/** What a full render shows with markdown.js's limits set to `limits`. */
function limitedHtml(source, limits) {
  const md = createMarkdownIt();
  const { sanitize } = createSanitizer(window);
  const div = document.createElement("div");
  const tokens = source.length > limits.maxChars ? null : md.parse(source, {});
  const count = tokens?.reduce((n, t) => n + 1 + (t.children?.length ?? 0), 0) ?? 0;
  div.innerHTML =
    tokens === null || count > limits.maxTokens
      ? sanitize(
          `<div class="llmsock-plain">${plainParts(source, limits.plainPart)
            .map((part) => `<div>${md.utils.escapeHtml(part)}</div>`)
            .join("")}</div>`,
        )
      : sanitize(md.renderer.render(tokens, md.options, {}));
  breakLongRuns(div);
  return div.innerHTML;
}

test("small limits: the switch to plain text and back matches a full render", () => {
  const next = random(7);
  for (let round = 0; round < 100; round += 1) {
    const text = randomText(next) + randomText(next);
    const limits = { maxTokens: 30, maxChars: 400 };
    const { paint } = painter(limits);
    const el = document.createElement("div");
    for (const at of splits(next, text.length)) paint(el, text.slice(0, at), true);
    paint(el, text, false);
    assert.equal(el.innerHTML, limitedHtml(reveal(text), limits), `round ${round}`);
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
  assert.equal(el.innerHTML.replace(/<wbr>/g, ""), `<div class="llmsock-plain"><div>${text}</div></div>`);
  assert.equal(el.querySelectorAll("wbr").length, 4);
});

test("plain text is cut into blocks at line breaks, and a finished block is not touched again", () => {
  const limits = { maxTokens: 20000, maxChars: 1000, plainPart: 200 };
  const { paint } = painter(limits);
  const el = document.createElement("div");
  const next = random(5);
  let text = "";
  let first = null;
  for (let i = 0; i < 400; i += 1) {
    text += next() < 0.2 ? "\n" : next() < 0.05 ? "\n\n" : ` w${i}`;
    paint(el, text, true);
    assert.equal(el.innerHTML, limitedHtml(reveal(holdBack(text)), limits), JSON.stringify(text));
    first ??= text.length > 1000 ? el.querySelector(".llmsock-plain > div") : null;
  }
  paint(el, text, false);
  assert.equal(el.innerHTML, limitedHtml(reveal(text), limits));
  assert.ok(el.querySelectorAll(".llmsock-plain > div").length > 3, "several blocks");
  assert.equal(el.querySelector(".llmsock-plain > div"), first, "the first block is the same node");
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

/**
 * Stream `text` into a new painter, at random split points or line by line; every frame, and
 * the final text, must show what a full render of it shows.
 */
function assertFramesMatch(next, text, round) {
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

test("a table streamed row by row, split at random points, shows what a full render shows", () => {
  const next = random(61);
  for (let round = 0; round < 150; round += 1) {
    const text = randomTable(next) + (next() < 0.3 ? randomTable(next) : "");
    assertFramesMatch(next, text, round);
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

test("with a budget, a long text that arrives at once is shown in steps that end at line breaks", () => {
  const md = createMarkdownIt();
  const { sanitize } = createSanitizer(window);
  // A clock that stands still: the painter keeps its first rate, so each step is MIN_STEP_CHARS or more.
  const paint = createStreamPainter({ md, sanitize, maxTokens: 20000, maxChars: 512 * 1024, now: () => 0, budget: 6 });
  const words = "with **bold** and `code` words, ".repeat(9);
  const paragraphs = Array.from({ length: 60 }, (_, n) => `Paragraph ${n} ${words}`);
  const text = `${paragraphs.join("\n\n")}\n\n- a list\n- at the end`;
  const el = document.createElement("div");
  let calls = 0;
  let shown = 0;
  for (let done = false; !done; calls += 1) {
    done = paint(el, text, false);
    assert.ok(calls < 100, "the painter keeps making progress");
    if (done) break;
    // An unfinished call shows a prefix ending at a line break, as a paused stream shows it.
    let prefix;
    for (let at = text.indexOf("\n", shown); at !== -1 && prefix === undefined; at = text.indexOf("\n", at + 1)) {
      if (el.innerHTML === fullHtml(text.slice(0, at + 1))) prefix = text.slice(0, at + 1);
    }
    assert.ok(prefix !== undefined, `call ${calls} shows a prefix that ends at a line break`);
    shown = prefix.length;
  }
  assert.ok(calls >= 3, `shown in ${calls + 1} steps`);
  assert.equal(el.innerHTML, fullHtml(text));
});

test("without a budget, the same text is shown in one call", () => {
  const { paint } = painter();
  const text = Array.from({ length: 400 }, (_, n) => `Paragraph ${n}.`).join("\n\n");
  const el = document.createElement("div");
  assert.equal(paint(el, text, false), true);
  assert.equal(el.innerHTML, fullHtml(text));
});

// Items a model writes in lists, and the ones that change the whole list (a blank line between
// items or inside one makes it loose) or end it (another marker, a rule, a lazy line).
const LIST_ITEMS = [
  "- plain item",
  "- item with **bold** and `code`",
  "  - nested item",
  "    - deeper item",
  "      - deepest item",
  "",
  "  continued paragraph of the item",
  "lazy continuation line",
  "- ```python\n  x = 1\n  ```",
  "-\n  starts on the next line",
  "- [ ] task item",
  "* other marker",
  "+ third marker",
  "1. ordered",
  "2) other delimiter",
  "- - -",
  "   - indented three",
  "-    wide gap item",
  "- # heading in item",
  "- > quote in item",
  "Paragraph after.",
  "[ref]: https://example.com/ref",
  "- see [ref]",
];

function randomList(next) {
  const ordered = next() < 0.3;
  const lines = [];
  const count = 1 + Math.floor(next() * 40);
  for (let i = 0; i < count; i += 1) {
    const r = next();
    if (r < 0.55) lines.push(ordered ? `${i + 1}. item ${i}` : `- item ${i}`);
    else if (r < 0.65) lines.push(`  - sub ${i}`);
    else lines.push(LIST_ITEMS[Math.floor(next() * LIST_ITEMS.length)]);
  }
  const before = next() < 0.3 ? `${BLOCKS[Math.floor(next() * BLOCKS.length)]}\n\n` : "";
  return before + lines.join("\n") + (next() < 0.5 ? "\n" : "");
}

test("a list streamed item by item, split at random points, shows what a full render shows", () => {
  const next = random(97);
  for (let round = 0; round < 200; round += 1) {
    const text = randomList(next) + (next() < 0.3 ? `\n\n${randomList(next)}` : "");
    assertFramesMatch(next, text, round);
  }
});

test("a growing list keeps its items' nodes and parses each item a bounded number of times", () => {
  const { paint, parsed } = painter();
  const el = document.createElement("div");
  let text = "Intro.\n\n";
  paint(el, text, true);
  let firstItem = null;
  for (let n = 0; n < 600; n += 1) {
    const depth = n % 16 < 8 ? n % 16 : 15 - (n % 16);
    for (const part of [`${"  ".repeat(depth)}- item`, `${n}\n`]) {
      text += part;
      paint(el, text, true);
    }
    if (n === 20) firstItem = el.querySelector("ul > li");
  }
  const list = el.querySelector("ul");
  assert.equal(el.querySelector("ul > li"), firstItem, "the first item is not rebuilt");
  const total = parsed.reduce((a, b) => a + b, 0);
  assert.ok(total < 20 * text.length, `parsed ${total} characters for ${text.length}`);
  assert.equal(el.innerHTML, fullHtml(holdBack(text)));
  text += "\nAfter the list.";
  paint(el, text, false);
  assert.equal(el.querySelector("ul"), list, "nor is the list when it ends");
  assert.equal(el.innerHTML, fullHtml(text));
  // A blank line between two items makes every item loose: the list is shown again, loose.
  const loose = `${text.replace("\nAfter the list.", "")}\n\n- one more\n`;
  paint(el, loose, true);
  assert.equal(el.innerHTML, fullHtml(holdBack(loose)));
  assert.ok(el.querySelector("ul > li > p"), "loose items hold paragraphs");
});

test("a growing table or list past the token limit is plain text, and Markdown again when it falls under", () => {
  const next = random(131);
  for (let round = 0; round < 120; round += 1) {
    const text = next() < 0.5 ? randomTable(next) : randomList(next);
    const limits = { maxTokens: 40 + Math.floor(next() * 120), maxChars: 512 * 1024 };
    const { paint } = painter(limits);
    const el = document.createElement("div");
    for (const at of [...splits(next, text.length), text.length]) {
      const shown = text.slice(0, at);
      paint(el, shown, at < text.length);
      const expected = limitedHtml(reveal(at < text.length ? holdBack(shown) : shown), limits);
      assert.equal(el.innerHTML, expected, `round ${round}, ${JSON.stringify(shown)}`);
    }
  }
});

test("a list shown as plain text past the token limit is Markdown again when the count falls under it", () => {
  // "[x]: http:" turns a line from a paragraph into a definition, which makes no tokens.
  const limits = { maxTokens: 29, maxChars: 512 * 1024 };
  const { paint } = painter(limits);
  const el = document.createElement("div");
  const text = "- a\n- b\n*a *b *c\nTitle\n---\n| 1 | 2 |\n\n\nTitle\n---\n[x]: http://a\n- c\n";
  const kinds = [];
  for (let at = 1; at <= text.length; at += 1) {
    const shown = text.slice(0, at);
    paint(el, shown, true);
    assert.equal(el.innerHTML, limitedHtml(reveal(holdBack(shown)), limits), JSON.stringify(shown));
    const kind = el.querySelector(".llmsock-plain") ? "plain" : "markdown";
    if (kinds.at(-1) !== kind) kinds.push(kind);
  }
  assert.deepEqual(kinds.slice(0, 3), ["markdown", "plain", "markdown"]);
});
