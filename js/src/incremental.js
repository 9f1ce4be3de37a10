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
// answer is shown as plain text, which is appended to as well.
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

import { reveal } from "./invisible.js";
import { breakLongRuns } from "./wrap.js";

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
 * The tokens of a table's first `rows` body rows.
 * @param {any[]} tokens  the table's tokens, table_open to table_close
 * @param {number} rows
 * @returns {number}
 */
function rowTokens(tokens, rows) {
  let count = 0;
  let seen = 0;
  let inBody = false;
  for (const token of tokens) {
    if (seen === rows) break;
    if (token.type === "tbody_open") inBody = true;
    else if (inBody) {
      count += 1 + (token.children?.length ?? 0);
      if (token.type === "tr_close") seen += 1;
    }
  }
  return count;
}

/**
 * The body rows in a table's tokens.
 * @param {any[]} tokens
 * @returns {number}
 */
function bodyRows(tokens) {
  return tokens.filter((token) => token.type === "tr_open").length - 1;
}

/**
 * The tokens a full parse gives a table beyond `tokens`: its rows already shown, and their
 * tbody when `tokens` have no rows of their own.
 * @param {TableState | null} table
 * @param {any[]} tokens  starting with the table's tokens
 * @returns {number}
 */
function shownTokens(table, tokens) {
  if (table === null || table.rows === 0) return 0;
  const close = tokens.findIndex((token) => token.type === "table_close");
  return table.tokens + (tokens[close - 1]?.type === "tbody_close" ? 0 : 2);
}

/**
 * Each row of a table body with the line break after it.
 * @param {HTMLTableSectionElement} body
 * @returns {ChildNode[][]}
 */
function rowNodes(body) {
  return [...body.rows].map((row) => (row.nextSibling ? [row, row.nextSibling] : [row]));
}

/**
 * @typedef {object} Chunk  finished top-level blocks, as a range of the revealed source
 * @property {number} start
 * @property {number} end
 * @property {any[] | null} tokens  this frame's tokens (rendered at once or dropped)
 * @property {TableState | null} table  the shown table it starts with (its tokens hold only new rows)
 */

/**
 * @typedef {object} TableState  a table at the start of the tail whose complete rows are shown
 * @property {string} head  its header and delimiter lines
 * @property {number} end  where the rows not shown yet start in the source
 * @property {HTMLTableElement | null} node  the table in the element (null: not shown yet)
 * @property {number} rows  body rows shown for good
 * @property {number} tokens  the tokens of those rows
 * @property {ChildNode[]} temporary  nodes of a partial last row, removed at the next frame
 */

/**
 * @typedef {object} Tail  the tokens still to render, and the definitions of the whole text
 * @property {any[]} tokens
 * @property {Record<string, any>} references
 * @property {{tokens: any[], keep: number, end: number} | null} grow  the table the tokens start
 *   with: its tokens, how many of their rows are complete, and where those end in the source
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
 * @property {number} plainNodes  its child nodes that hold them
 * @property {number} tailWaitUntil  no tail render before this time while streaming
 * @property {TableState | null} table  the growing table the tail starts with
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
    plainNodes: 0,
    tailWaitUntil: 0,
    table: null,
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
 * Returns paint(element, text, streaming) -> true if the element shows `text` (false: a slow
 * tail was left for a later frame; call again).
 *
 * @param {object} options
 * @param {any} options.md
 * @param {(html: string) => string} options.sanitize
 * @param {number} options.maxTokens
 * @param {number} options.maxChars
 * @param {() => number} options.now
 * @returns {(element: HTMLElement, text: string, streaming?: boolean) => boolean}
 */
export function createStreamPainter({ md, sanitize, maxTokens, maxChars, now }) {
  /** @type {WeakMap<HTMLElement, StreamState>} */
  const states = new WeakMap();

  /**
   * Parse `html` and append it to `parent`, with break opportunities in long runs.
   * @param {HTMLElement} parent
   * @param {string} html
   * @returns {number} the child nodes added
   */
  function appendHtml(parent, html) {
    const template = parent.ownerDocument.createElement("template");
    template.innerHTML = html;
    return appendFragment(parent, template.content);
  }

  /**
   * @param {HTMLElement} parent
   * @param {string} text
   * @returns {number} the child nodes added
   */
  function appendText(parent, text) {
    const fragment = parent.ownerDocument.createDocumentFragment();
    fragment.append(text);
    return appendFragment(parent, fragment);
  }

  /**
   * Append `fragment` to `parent`, with break opportunities in long runs.
   * @param {HTMLElement} parent
   * @param {DocumentFragment} fragment
   * @returns {number} the child nodes added
   */
  function appendFragment(parent, fragment) {
    breakLongRuns(/** @type {any} */ (fragment));
    const count = fragment.childNodes.length;
    parent.append(fragment);
    return count;
  }

  /**
   * @param {any[]} tokens
   * @param {Record<string, any>} references
   * @returns {string}
   */
  function renderTokens(tokens, references) {
    return sanitize(md.renderer.render(tokens, md.options, { references }));
  }

  /**
   * Parse the tail; commit the blocks that are finished. Returns the tail's own tokens and the
   * definitions of the whole text.
   * @param {StreamState} state
   * @returns {Tail}
   */
  function parseTail(state) {
    const { table } = state;
    // A table being shown stands in the tail as its header and delimiter lines only.
    const head = table ? table.head : "";
    const from = table ? table.end : state.offset;
    const tail = head + state.source.slice(from);
    const at = (/** @type {number} */ offset) => from + offset - head.length;
    const env = { references: { ...state.references } };
    const tokens = md.parse(tail, env);
    const starts = lineStarts(tail);
    const { index, line } = finishedPrefix(tokens, tail, starts);
    if (index > 0) {
      const end = starts[line];
      const committed = tokens.slice(0, index);
      state.chunks.push({ start: state.offset, end: at(end), tokens: committed, table });
      state.tokens += tokenCount(committed) + shownTokens(table, committed);
      if (Object.keys(env.references).length > Object.keys(state.references).length) {
        // The tail defines labels: keep those of the finished part (parsing it alone gives them).
        const own = { references: { ...state.references } };
        md.parse(tail.slice(0, end), own);
        state.references = own.references;
      }
      state.offset = at(end);
      state.table = null;
    }
    const rest = tokens.slice(index);
    const first = rest[0];
    if (
      first?.type !== "table_open" ||
      first.map[0] !== line ||
      starts.length <= line + 2 ||
      maxTokens >= 3 * MAX_AUTOCOMPLETED_CELLS
    ) {
      state.table = null;
      return { tokens: rest, references: env.references, grow: null };
    }
    state.table ??= {
      head: tail.slice(starts[line], starts[line + 2]),
      end: at(starts[line + 2]),
      node: null,
      rows: 0,
      tokens: 0,
      temporary: [],
    };
    // Rows on complete lines stay rows whatever follows; a partial last one may not.
    const complete = Math.min(first.map[1], starts.length - 1);
    const close = rest.findIndex((token) => token.type === "table_close");
    const grow = { tokens: rest.slice(0, close + 1), keep: complete - line - 2, end: at(starts[complete]) };
    return { tokens: rest, references: env.references, grow };
  }

  /**
   * Show `table`'s rows from `tokens` (a table with the rows not shown yet): the first `keep`
   * for good, the others until the next frame. A table not shown yet is appended to `element`.
   * @param {HTMLElement} element
   * @param {TableState} table
   * @param {any[]} tokens
   * @param {number} keep
   * @param {Record<string, any>} references
   */
  function growTable(element, table, tokens, keep, references) {
    for (const node of table.temporary) node.remove();
    const template = element.ownerDocument.createElement("template");
    template.innerHTML = renderTokens(tokens, references);
    const fragment = template.content;
    breakLongRuns(/** @type {any} */ (fragment));
    const fresh = /** @type {HTMLTableElement} */ (fragment.firstChild);
    const body = fresh.tBodies[0];
    const rows = body ? rowNodes(body) : [];
    if (table.node === null) {
      table.node = fresh;
      element.append(fragment);
    } else if (body && table.node.tBodies.length === 0) {
      table.node.append(body, ...(body.nextSibling ? [body.nextSibling] : []));
    } else if (body) {
      table.node.tBodies[0].append(...rows.flat());
    }
    if (keep === 0 && body && table.rows === 0) {
      table.temporary = body.nextSibling ? [body, body.nextSibling] : [body];
    } else {
      table.temporary = rows.slice(keep).flat();
    }
    table.rows += keep;
    table.tokens += rowTokens(tokens, keep);
  }

  /**
   * @param {HTMLElement} element
   * @param {StreamState} state
   */
  function paintPlain(element, state) {
    for (const chunk of state.chunks) Object.assign(chunk, { tokens: null, table: null });
    state.table = null;
    if (state.dom !== "plain" || state.plain === null) {
      const plain = element.ownerDocument.createElement("div");
      plain.className = "llmsock-plain";
      element.replaceChildren(plain);
      Object.assign(state, { dom: "plain", plain, plainDone: 0, plainNodes: 0, domChunks: 0, domNodes: 0 });
    }
    const plain = /** @type {HTMLElement} */ (state.plain);
    while (plain.childNodes.length > state.plainNodes) plain.lastChild?.remove();
    const { source } = state;
    // Up to the last space, tab or line feed nothing changes any more: no run of text crosses
    // it (wrap.js), and reveal() replaces nothing across it.
    let cut = source.length;
    while (cut > state.plainDone && !" \t\n".includes(source[cut - 1])) cut -= 1;
    if (cut > state.plainDone) {
      state.plainNodes += appendText(plain, source.slice(state.plainDone, cut));
      state.plainDone = cut;
    }
    appendText(plain, source.slice(cut));
  }

  /**
   * @param {HTMLElement} element
   * @param {StreamState} state
   * @param {Tail} tail
   */
  function paintMarkdown(element, state, tail) {
    if (state.dom !== "md") {
      element.replaceChildren();
      Object.assign(state, { dom: "md", plain: null, domChunks: 0, domNodes: 0 });
    }
    // A table being shown (still growing, or just finished) keeps its node and the line break after it.
    const shown = (state.chunks[state.domChunks] ?? state).table?.node;
    const keep = shown && element.childNodes[state.domNodes] === shown ? 2 : 0;
    while (element.childNodes.length > state.domNodes + keep) element.lastChild?.remove();
    for (; state.domChunks < state.chunks.length; state.domChunks += 1) {
      const chunk = state.chunks[state.domChunks];
      const { table, tokens } = chunk;
      Object.assign(chunk, { tokens: null, table: null });
      if (table?.node && tokens && element.childNodes[state.domNodes] === table.node) {
        const close = tokens.findIndex((token) => token.type === "table_close");
        const own = tokens.slice(0, close + 1);
        growTable(element, table, own, bodyRows(own), tail.references);
        state.domNodes += 2;
        if (close + 1 < tokens.length) {
          state.domNodes += appendHtml(element, renderTokens(tokens.slice(close + 1), tail.references));
        }
        continue;
      }
      const env = { references: { ...tail.references } };
      const own = table || !tokens ? md.parse(state.source.slice(chunk.start, chunk.end), env) : tokens;
      state.domNodes += appendHtml(element, renderTokens(own, tail.references));
    }
    state.shownReferences = tail.references;
    let { tokens } = tail;
    if (tail.grow && state.table) {
      growTable(element, state.table, tail.grow.tokens, tail.grow.keep, tail.references);
      state.table.end = tail.grow.end;
      tokens = tokens.slice(tail.grow.tokens.length);
    }
    appendHtml(element, renderTokens(tokens, tail.references));
  }

  return (element, text, streaming = false) => {
    const source = reveal(streaming ? holdBack(text) : text);
    let state = states.get(element);
    if (state === undefined || !source.startsWith(state.source) || state.dom === "") {
      state = freshState();
      states.set(element, state);
      element.replaceChildren();
    } else if (state.source === source) {
      return true;
    } else if (streaming && now() < state.tailWaitUntil) {
      return false;
    }
    const started = now();
    state.source = source;
    if (source.length > maxChars) {
      paintPlain(element, state);
      return true;
    }
    let tail = parseTail(state);
    if (state.shownReferences !== null && !sameReferences(tail.references, state.shownReferences)) {
      // A definition in the tail changes how the finished blocks read: start again.
      state = freshState();
      state.source = source;
      states.set(element, state);
      tail = parseTail(state);
    }
    if (state.tokens + tokenCount(tail.tokens) + shownTokens(state.table, tail.tokens) > maxTokens)
      paintPlain(element, state);
    else paintMarkdown(element, state, tail);
    const took = now() - started;
    state.tailWaitUntil = took > SLOW_TAIL_MS ? now() + BACKOFF * took : 0;
    return true;
  };
}
