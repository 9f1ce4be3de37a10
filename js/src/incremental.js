// Streaming Markdown, rendered incrementally. While an answer streams, only its tail is parsed
// and rendered again: the top-level blocks that can no longer change keep their DOM nodes. The
// DOM that results is the one a full render of the same text gives (js/test/incremental.test.js
// holds the two equal over many texts split at random points), with the same sanitizer.
//
// A run of top-level blocks is finished when a blank line follows it and the block after that
// starts on a line that is complete: Markdown decides where a root-level block ends from the
// lines up to the next block's first, and nothing after a blank line can join a paragraph
// (lazy continuation, a setext underline, a table's delimiter row) or reopen a list item whose
// looseness is settled. The tail is then parsed as a document of its own, which gives the same
// tokens as the whole text does from that line on. Reference definitions are the exception that
// reaches backwards (a definition at the end turns `[x]` at the start into a link): the tail is
// parsed knowing the definitions above it, and when the tail defines, or redefines, a label, the
// whole text is rendered again.
//
// Above the renderer's limits (MAX_MARKDOWN_CHARS, MAX_TOKENS counted over the whole text) the
// answer is shown as plain text, which is appended to as well. Plain text is cut into blocks at
// the first line break PLAIN_PART_CHARS or more into each (plainParts): a browser lays out a
// block's text whole whenever it changes, so one block of megabytes would be laid out again at
// every frame, and a line break ending a block shows as it does inside one.
//
// A growing GFM table is one top-level block however long it gets, so it would be parsed and
// rendered again whole at every frame. Its rows do not depend on one another (each row is one
// line, read on its own; a row ends the table only by being blank or starting another block),
// so when the tail starts with a table, its complete rows keep their DOM nodes too: the tail is
// parsed as the table's header and delimiter lines followed by the lines after the rows already
// shown, and the new rows are moved into the table that is shown. (markdown-it also stops a
// table after 65536 cells left empty, which takes more than three times MAX_TOKENS tokens.)
//
// While streaming, a partial last line that may still change the layout is held back until it
// is complete: a fence being opened or closed, a setext underline, a table's delimiter row, a
// thematic break. That way a streamed code block or table never flickers between layouts.
//
// A growing list is handled like a table: its items, once the next item has started on a
// complete line, keep their DOM nodes, and only the items after them are parsed again (after
// a probe item that carries the list's looseness: growlist.js). Should the list turn loose,
// or the probe not parse as expected, the whole list is parsed and shown again, once.
//
// When more text is waiting than the painter can show within one frame's budget (a burst that
// arrived merged, or a reload), it shows a prefix ending at a line break and asks to be called
// again, so no frame is one long task: the prefix is painted as a stream that paused there.
// Steps pay off only while a paint costs in proportion to the new text: an element with a long
// unfinished block (parsed again at each step) is painted in one go, as without a budget.
//
// Modules: growtable.js and growlist.js grow a table or a list, plaintext.js shows plain text,
// fragments.js puts rendered HTML into the DOM.

import { appendNodes, htmlFragment } from "./fragments.js";
import { firstBlock, growingList, growList, itemTokens, opensRootList, probeLoose, rootItems } from "./growlist.js";
import { bodyRows, growTable, rowTokens } from "./growtable.js";
import { reveal } from "./invisible.js";
import { PLAIN_PART_CHARS, paintPlain } from "./plaintext.js";

export { PLAIN_PART_CHARS, plainParts } from "./plaintext.js";

/** A partial line starting like a fence (``` or ~~~) after at most three spaces. */
const FENCE_START = /^ {0,3}[`~]/;
/** A partial line of only these characters may become a setext underline, a rule or a delimiter row. */
const MARKER_ONLY = /^[-=:|*_+ \t]+$/;
/** A line markdown-it counts as empty. */
const BLANK = /^[ \t]*$/;
/** A tail render that took longer than this (ms) is not repeated at every frame. */
const SLOW_TAIL_MS = 8;
/** After a slow tail render, the next waits this many times as long. */
const BACKOFF = 3;
/** markdown-it's limit on a table's empty cells, which a tail of rows alone would not see. */
const MAX_AUTOCOMPLETED_CELLS = 65536;
/** A frame never paints less than this many new characters (when a line break allows a cut). */
const MIN_STEP_CHARS = 4096;
/** Characters painted per ms before a paint measured it. */
const FIRST_RATE = 500;
/** With more source than this parsed again at every paint, text waiting is painted in one go. */
const MAX_STEPPED_TAIL = 16 * 1024;
/**
 * `text` without its partial last line when that line may still change the layout.
 * @param {string} text
 * @returns {string}
 */
export function holdBack(text) {
  const start = text.lastIndexOf("\n") + 1;
  const line = text.slice(start);
  return FENCE_START.test(line) || MARKER_ONLY.test(line) ? text.slice(0, start) : text;
}

/**
 * The number of tokens markdown.js counts against MAX_TOKENS.
 * @param {any[]} tokens
 * @returns {number}
 */
export function tokenCount(tokens) {
  return tokens.reduce((count, token) => count + 1 + (token.children?.length ?? 0), 0);
}

/**
 * @param {Record<string, {href: string, title: string}>} a
 * @param {Record<string, {href: string, title: string}>} b
 * @returns {boolean}
 */
function sameReferences(a, b) {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => b[key] !== undefined && a[key].href === b[key].href && a[key].title === b[key].title);
}

/**
 * The offsets where each line of `text` starts.
 * @param {string} text
 * @returns {number[]}
 */
function lineStarts(text) {
  const starts = [0];
  for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) starts.push(at + 1);
  return starts;
}

/**
 * The index of the first token of the last top-level block that starts a finished run's
 * successor, or 0 when nothing can be committed.
 * @param {any[]} tokens  the tail's tokens
 * @param {string} tail
 * @param {number[]} starts  the tail's line starts
 * @returns {{index: number, line: number}}
 */
function finishedPrefix(tokens, tail, starts) {
  for (let i = tokens.length - 1; i > 0; i -= 1) {
    const token = tokens[i];
    if (token.level !== 0 || token.nesting === -1 || !token.map) continue;
    const line = token.map[0];
    // Its first line is complete, and the line before it is blank.
    if (line < 1 || line + 1 >= starts.length) continue;
    if (!BLANK.test(tail.slice(starts[line - 1], starts[line] - 1))) continue;
    return { index: i, line };
  }
  return { index: 0, line: 0 };
}

/**
 * The tokens a full parse gives a growing block beyond `tokens`: a table's rows already shown,
 * and their tbody when `tokens` have no rows of their own; a list's items shown, less the probe.
 * @param {Growing | null} growing
 * @param {any[]} tokens  starting with the block's tokens
 * @returns {number}
 */
function shownTokens(growing, tokens) {
  if (growing === null || growing.rows === 0) return 0;
  const block = firstBlock(tokens);
  if (growing.kind === "list") return growing.tokens - itemTokens(block, rootItems(block), 0, 1);
  return growing.tokens + (block.at(-2)?.type === "tbody_close" ? 0 : 2);
}

/**
 * @typedef {object} Chunk  finished top-level blocks, as a range of the revealed source
 * @property {number} start
 * @property {number} end
 * @property {any[] | null} tokens  this frame's tokens (rendered at once or dropped)
 * @property {Growing | null} growing  the shown table or list it starts with (its tokens hold only new rows)
 */

/**
 * @typedef {object} Growing  a table or list at the start of the tail whose complete rows
 *   (or items) are shown
 * @property {"table" | "list"} kind
 * @property {string} head  a table's header and delimiter lines; a list's probe item
 * @property {number} end  where the rows not shown yet start in the source
 * @property {HTMLElement | null} node  the table or list in the element (null: not shown yet)
 * @property {number} rows  body rows (items) shown for good
 * @property {number} tokens  the tokens of those rows
 * @property {ChildNode[]} temporary  nodes of a partial last row, removed at the next frame
 * @property {boolean | null} loose  a list: whether its items shown for good make it loose
 *   (null: not known, the list cannot grow)
 * @property {boolean | null} rendered  a list: whether those items were shown loose (null:
 *   they hold no paragraph, so it makes no difference)
 */

/**
 * @typedef {object} Tail  the tokens still to render, and the definitions of the whole text
 * @property {any[]} tokens
 * @property {Record<string, any>} references
 * @property {Grow | null} grow  the table or list the tokens start with
 */

/**
 * @typedef {object} Grow  a growing block in this frame's tokens
 * @property {any[]} tokens  its tokens
 * @property {number} keep  how many of its rows (items after the probe) are complete
 * @property {number} end  where those end in the source
 * @property {boolean | null} loose  a list: whether it is loose as a whole
 * @property {boolean | null} keptLoose  a list: whether its items shown for good, with those
 *   kept now, make it loose (null: not known)
 * @property {string} head  a list: the probe for the next frame
 */

/**
 * @typedef {object} StreamState  what one element shows
 * @property {string} source  the revealed text shown
 * @property {number} offset  where the tail starts in `source`
 * @property {number} tokens  tokens in the finished chunks
 * @property {Chunk[]} chunks
 * @property {Record<string, any>} references  definitions in the finished chunks
 * @property {Record<string, any> | null} shownReferences  definitions the DOM's chunks were rendered with
 * @property {"" | "md" | "plain"} dom  what the element holds
 * @property {number} domChunks  chunks in the DOM
 * @property {number} domNodes  child nodes of the element that are finished chunks
 * @property {HTMLElement | null} plain  the plain-text element
 * @property {number} plainDone  source characters in the plain element that will not change
 * @property {HTMLElement | null} part  the plain element's last block
 * @property {number} partStart  where that block starts in the source
 * @property {number} plainNodes  the block's child nodes that hold its characters that will not change
 * @property {number} tailWaitUntil  no tail render before this time while streaming
 * @property {Growing | null} growing  the growing table or list the tail starts with
 * @property {string} text  the text (before reveal and holdBack) shown in full or in part
 * @property {number} rate  characters painted per ms, measured on the paints of long steps
 */

/** @returns {StreamState} */
function freshState() {
  return {
    source: "",
    offset: 0,
    tokens: 0,
    chunks: [],
    references: {},
    shownReferences: null,
    dom: "",
    domChunks: 0,
    domNodes: 0,
    plain: null,
    plainDone: 0,
    part: null,
    partStart: 0,
    plainNodes: 0,
    tailWaitUntil: 0,
    growing: null,
    text: "",
    rate: FIRST_RATE,
  };
}

/**
 * Make a painter that shows Markdown in an element, re-rendering only what can still change.
 *
 * Args (one object):
 *   md: the markdown-it instance (markdown.js's settings).
 *   sanitize(html) -> html: the sanitizer every string passes before it reaches the DOM.
 *   maxTokens, maxChars: above either, the whole text is shown as plain text.
 *   now() -> ms: the clock that spaces out slow tail renders.
 *   budget: ms of rendering a call may aim for; more text waiting than that is shown in steps
 *     (default: no limit).
 *   plainPart: PLAIN_PART_CHARS (smaller in tests).
 * Returns paint(element, text, streaming) -> true if the element shows `text` (false: a slow
 * tail, or the rest of a long text, was left for a later frame; call again).
 *
 * @param {object} options
 * @param {any} options.md
 * @param {(html: string) => string} options.sanitize
 * @param {number} options.maxTokens
 * @param {number} options.maxChars
 * @param {() => number} options.now
 * @param {number} [options.budget]
 * @param {number} [options.plainPart]
 * @returns {(element: HTMLElement, text: string, streaming?: boolean) => boolean}
 */
export function createStreamPainter({
  md,
  sanitize,
  maxTokens,
  maxChars,
  now,
  budget = Number.POSITIVE_INFINITY,
  plainPart = PLAIN_PART_CHARS,
}) {
  /** @type {WeakMap<HTMLElement, StreamState>} */
  const states = new WeakMap();
  /**
   * The end of the part of `text` to paint now: all of it, or, past the budget, the next line
   * break after the budget's worth of new characters.
   * @param {string} text
   * @param {StreamState | undefined} state
   * @returns {number}
   */
  function stepEnd(text, state) {
    const from = state && text.startsWith(state.text) ? state.text.length : 0;
    // Plain text past maxChars is only appended to; any other paint parses its unfinished part.
    if (state && from > 0 && !(state.dom === "plain" && state.source.length > maxChars)) {
      const unfinished = state.source.length - (state.growing?.end ?? state.offset);
      if (unfinished > MAX_STEPPED_TAIL) return text.length;
    }
    const allowance = Math.max(MIN_STEP_CHARS, (state?.rate ?? FIRST_RATE) * budget);
    if (text.length - from <= allowance) return text.length;
    const cut = text.indexOf("\n", from + allowance);
    return cut === -1 ? text.length : cut + 1;
  }

  /**
   * `tokens` rendered and sanitized, as a fragment of `element`'s document.
   * @param {HTMLElement} element
   * @param {any[]} tokens
   * @param {Record<string, any>} references
   * @returns {DocumentFragment}
   */
  function rendered(element, tokens, references) {
    const html = sanitize(md.renderer.render(tokens, md.options, { references }));
    return htmlFragment(element.ownerDocument, html);
  }

  /**
   * @param {string} text
   * @returns {any[]}
   */
  function parseAlone(text) {
    return md.parse(text, { references: {} });
  }

  /**
   * Parse the tail; commit the blocks that are finished. Returns the tail's own tokens and the
   * definitions of the whole text.
   * @param {StreamState} state
   * @returns {Tail}
   */
  function parseTail(state) {
    const { growing } = state;
    // A table being shown stands in the tail as its header and delimiter lines only; a list
    // as its probe item.
    const head = growing ? growing.head : "";
    const from = growing ? growing.end : state.offset;
    const tail = head + state.source.slice(from);
    const at = (/** @type {number} */ offset) => from + offset - head.length;
    const env = { references: { ...state.references } };
    const tokens = md.parse(tail, env);
    const starts = lineStarts(tail);
    if (growing?.kind === "list" && growing.rows > 0) {
      const block = tokens[0] && opensRootList(tokens[0]) ? tokens : [];
      const loose = probeLoose(block, rootItems(block), head.split("\n").length - 1);
      if (loose === null || growing.loose === null || (growing.rendered !== null && loose !== growing.rendered)) {
        // The items shown must be shown again (the list turned loose), or the probe failed.
        state.growing = null;
        return parseTail(state);
      }
    }
    const { index, line } = finishedPrefix(tokens, tail, starts);
    if (index > 0) {
      const end = starts[line];
      const committed = tokens.slice(0, index);
      state.chunks.push({ start: state.offset, end: at(end), tokens: committed, growing });
      state.tokens += tokenCount(committed) + shownTokens(growing, committed);
      if (Object.keys(env.references).length > Object.keys(state.references).length) {
        // The tail defines labels: keep those of the finished part (parsing it alone gives them).
        const own = { references: { ...state.references } };
        md.parse(tail.slice(0, end), own);
        state.references = own.references;
      }
      state.offset = at(end);
      state.growing = null;
    }
    const rest = tokens.slice(index);
    const first = rest[0];
    if (opensRootList(first) && first.map[0] === line) {
      const grow = growingList(state, rest, tail, starts, at, parseAlone);
      return { tokens: rest, references: env.references, grow };
    }
    if (
      first?.type !== "table_open" ||
      first.map[0] !== line ||
      starts.length <= line + 2 ||
      maxTokens >= 3 * MAX_AUTOCOMPLETED_CELLS
    ) {
      state.growing = null;
      return { tokens: rest, references: env.references, grow: null };
    }
    if (state.growing?.kind === "list") state.growing = null;
    state.growing ??= {
      kind: "table",
      loose: null,
      rendered: null,
      head: tail.slice(starts[line], starts[line + 2]),
      end: at(starts[line + 2]),
      node: null,
      rows: 0,
      tokens: 0,
      temporary: [],
    };
    // Rows on complete lines stay rows whatever follows; a partial last one may not.
    const complete = Math.min(first.map[1], starts.length - 1);
    const keep = complete - line - 2;
    const grow = {
      tokens: firstBlock(rest),
      keep,
      end: at(starts[complete]),
      loose: null,
      keptLoose: null,
      head: "",
    };
    return { tokens: rest, references: env.references, grow };
  }

  /**
   * Count `grow`'s complete rows (or items) as shown for good: what a later frame parses
   * starts after them.
   * @param {Growing} growing
   * @param {Grow} grow
   */
  function keepRows(growing, grow) {
    if (growing.kind === "list" && grow.keep > 0) {
      growing.tokens += itemTokens(grow.tokens, rootItems(grow.tokens), growing.rows > 0 ? 1 : 0, grow.keep);
      growing.loose = grow.keptLoose;
      growing.head = grow.head;
    } else if (growing.kind === "table") {
      growing.tokens += rowTokens(grow.tokens, grow.keep);
    }
    growing.rows += grow.keep;
    growing.end = grow.end;
  }

  /**
   * @param {HTMLElement} element
   * @param {StreamState} state
   * @param {Tail} tail
   */
  function paintMarkdown(element, state, tail) {
    if (state.dom !== "md") {
      element.replaceChildren();
      Object.assign(state, { dom: "md", plain: null, part: null, domChunks: 0, domNodes: 0 });
    }
    // A table or list being shown (still growing, or just finished) keeps its node and the line break after it.
    const shown = (state.chunks[state.domChunks] ?? state).growing?.node;
    const keep = shown && element.childNodes[state.domNodes] === shown ? 2 : 0;
    while (element.childNodes.length > state.domNodes + keep) element.lastChild?.remove();
    for (; state.domChunks < state.chunks.length; state.domChunks += 1) {
      const chunk = state.chunks[state.domChunks];
      const { growing, tokens } = chunk;
      Object.assign(chunk, { tokens: null, growing: null });
      if (growing?.node && tokens && element.childNodes[state.domNodes] === growing.node) {
        const own = firstBlock(tokens);
        if (growing.kind === "list") {
          const keep = rootItems(own).length - (growing.rows > 0 ? 1 : 0);
          const grow = { tokens: own, keep, end: 0, loose: null, keptLoose: null, head: "" };
          growList(element, growing, grow, rendered(element, own, tail.references));
        } else {
          growTable(element, growing, rendered(element, own, tail.references), bodyRows(own));
        }
        state.domNodes += 2;
        if (own.length < tokens.length) {
          state.domNodes += appendNodes(element, rendered(element, tokens.slice(own.length), tail.references));
        }
        continue;
      }
      const env = { references: { ...tail.references } };
      const own = growing || !tokens ? md.parse(state.source.slice(chunk.start, chunk.end), env) : tokens;
      state.domNodes += appendNodes(element, rendered(element, own, tail.references));
    }
    state.shownReferences = tail.references;
    let { tokens } = tail;
    if (tail.grow && state.growing) {
      const fragment = rendered(element, tail.grow.tokens, tail.references);
      if (state.growing.kind === "list") growList(element, state.growing, tail.grow, fragment);
      else growTable(element, state.growing, fragment, tail.grow.keep);
      keepRows(state.growing, tail.grow);
      tokens = tokens.slice(tail.grow.tokens.length);
    }
    appendNodes(element, rendered(element, tokens, tail.references));
  }

  return (element, whole, streaming = false) => {
    const end = stepEnd(whole, states.get(element));
    const text = whole.slice(0, end);
    const partial = end < whole.length;
    const source = reveal(streaming || partial ? holdBack(text) : text);
    let state = states.get(element);
    if (state === undefined || !source.startsWith(state.source) || state.dom === "") {
      state = freshState();
      states.set(element, state);
      element.replaceChildren();
    } else if (state.source === source) {
      state.text = text;
      return !partial;
    } else if ((streaming || partial) && now() < state.tailWaitUntil) {
      return false;
    }
    const started = now();
    const grown = source.length - state.source.length;
    state.source = source;
    state.text = text;
    if (source.length > maxChars) {
      state.growing = null; // no later frame parses the text again
      paintPlain(element, state, plainPart);
      return !partial;
    }
    let tail = parseTail(state);
    if (state.shownReferences !== null && !sameReferences(tail.references, state.shownReferences)) {
      // A definition in the tail changes how the finished blocks read: start again.
      state = freshState();
      state.source = source;
      states.set(element, state);
      tail = parseTail(state);
    }
    if (state.tokens + tokenCount(tail.tokens) + shownTokens(state.growing, tail.tokens) > maxTokens) {
      // Shown as plain text, a growing block still counts its complete rows, so that the next
      // frame parses only what follows them (and knows when the tokens fall under the limit).
      if (state.growing && tail.grow) {
        keepRows(state.growing, tail.grow);
        Object.assign(state.growing, { node: null, temporary: [], rendered: null });
      }
      paintPlain(element, state, plainPart);
    } else {
      if (state.dom === "plain" && state.growing) {
        // Back under the limit: rows counted while plain are not in the DOM; show the block whole.
        state.growing = null;
        tail = parseTail(state);
      }
      paintMarkdown(element, state, tail);
    }
    const took = now() - started;
    state.tailWaitUntil = took > SLOW_TAIL_MS ? now() + BACKOFF * took : 0;
    if (grown >= MIN_STEP_CHARS && took > 0) state.rate = (state.rate + grown / took) / 2;
    return !partial;
  };
}
