// Markdown -> sanitized HTML. markdown-it never passes raw HTML through (html: false), code is
// highlighted by highlight.js core with a few languages, and DOMPurify has the last word on
// every string before it reaches innerHTML. Nothing in model output may execute or load:
// no scripts, no frames, no images, no styles, no event handlers, only http(s)/mailto links.

import createDOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import plaintext from "highlight.js/lib/languages/plaintext";
import python from "highlight.js/lib/languages/python";
import sql from "highlight.js/lib/languages/sql";
import MarkdownIt from "markdown-it";

import { createStreamPainter, plainParts, tokenCount } from "./incremental.js";
import { reveal } from "./invisible.js";

const LANGUAGES = { bash, javascript, json, markdown, plaintext, python, sql };
const ALIASES = {
  bash: ["sh", "shell", "zsh", "console"],
  javascript: ["js", "mjs", "cjs", "jsx"],
  python: ["py", "python3", "ipython"],
  markdown: ["md"],
  plaintext: ["text", "txt"],
};

/** Only these link schemes survive (markdown-it refuses the rest before DOMPurify sees them). */
export const SAFE_URL = /^(?:https?:|mailto:)/i;

const PURIFY_CONFIG = {
  // biome-ignore format: the forbidden tags read best as a compact block
  FORBID_TAGS: [
    "iframe", "frame", "frameset", "object", "embed", "form", "style", "script", "link", "meta",
    "base", "img", "picture", "source", "video", "audio", "svg", "math", "input", "button",
    "textarea", "select",
  ],
  FORBID_ATTR: ["style", "srcset", "action", "formaction"],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: SAFE_URL,
};

let languagesRegistered = false;

function registerLanguages() {
  if (languagesRegistered) return;
  for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
  for (const [name, aliases] of Object.entries(ALIASES)) {
    hljs.registerAliases(aliases, { languageName: name });
  }
  languagesRegistered = true;
}

/**
 * Code longer than this is shown without highlighting: highlighting costs far more than escaping
 * (a 400 KiB block took a tenth of a second and more), and a streamed block is rendered again
 * while it grows.
 */
export const MAX_HIGHLIGHT_CHARS = 32 * 1024;

function highlight(code, lang) {
  const name = (lang || "").trim().split(/\s+/)[0].toLowerCase();
  if (name && code.length <= MAX_HIGHLIGHT_CHARS && hljs.getLanguage(name)) {
    try {
      return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
    } catch {
      // fall through: markdown-it escapes the code itself
    }
  }
  return "";
}

/**
 * Make a markdown-it instance with our settings (no raw HTML, no images, safe links only).
 * @returns {InstanceType<typeof MarkdownIt>}
 */
export function createMarkdownIt() {
  registerLanguages();
  const md = new MarkdownIt({ html: false, linkify: true, typographer: false, highlight });
  md.disable("image"); // an image would load a URL chosen by the model
  md.validateLink = (url) => SAFE_URL.test(url.trim());
  return md;
}

/**
 * Make a DOMPurify instance bound to `window` with our config and link hooks.
 * @param {Window & typeof globalThis} window
 * @returns {{sanitize: (html: string) => string}}
 */
export function createSanitizer(window) {
  const purify = createDOMPurify(window);
  purify.addHook("uponSanitizeAttribute", (_node, data) => {
    if (/^on/i.test(data.attrName)) data.keepAttr = false;
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName !== "A") return;
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    } else {
      node.removeAttribute("target");
    }
  });
  return { sanitize: (html) => purify.sanitize(html, PURIFY_CONFIG) };
}

/** Above this many Markdown tokens, or this many characters, an answer is shown as plain text. */
export const MAX_TOKENS = 20000;
export const MAX_MARKDOWN_CHARS = 512 * 1024;
/** The ms of rendering one frame aims for when text is waiting (the layout that follows costs about as much). */
export const FRAME_BUDGET_MS = 6;

/**
 * Make a renderer: `render(text) -> sanitized HTML string`, and `render.into(element, text,
 * streaming)`, which shows the same in `element`, re-rendering only the blocks that can still
 * change (incremental.js; returns false when a slow tail was left for a later frame).
 *
 * The work per render is bounded for any text shape: sanitizing costs in proportion to the
 * elements made (256 KiB of `*a` makes a hundred thousand), so text that parses into more than
 * MAX_TOKENS tokens, or is longer than MAX_MARKDOWN_CHARS, is shown whole as plain text.
 *
 * Args: window, the DOM window DOMPurify works in (the page's, or jsdom's in tests).
 * @param {Window & typeof globalThis} window
 * @returns {{render: ((text: string) => string) & {into: (element: HTMLElement, text: string, streaming?: boolean) => boolean}, sanitize: (html: string) => string}}
 */
export function createMarkdownRenderer(window) {
  const md = createMarkdownIt();
  const sanitizer = createSanitizer(window);
  const render = (/** @type {string} */ text) => {
    // Invisible and reordering characters become visible markers before Markdown sees them.
    const source = reveal(text);
    const tokens = source.length > MAX_MARKDOWN_CHARS ? null : md.parse(source, {});
    if (tokens === null || tokenCount(tokens) > MAX_TOKENS) {
      const parts = plainParts(source).map((part) => `<div>${md.utils.escapeHtml(part)}</div>`);
      return sanitizer.sanitize(`<div class="llmsock-plain">${parts.join("")}</div>`);
    }
    return sanitizer.sanitize(md.renderer.render(tokens, md.options, {}));
  };
  const into = createStreamPainter({
    md,
    sanitize: sanitizer.sanitize,
    maxTokens: MAX_TOKENS,
    maxChars: MAX_MARKDOWN_CHARS,
    now: () => window.performance.now(),
    budget: FRAME_BUDGET_MS,
  });
  return { render: Object.assign(render, { into }), sanitize: sanitizer.sanitize };
}
