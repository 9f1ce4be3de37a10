// An answer past the renderer's limits, shown as plain text and appended to while it streams.
// The text is cut into blocks at the first line break PLAIN_PART_CHARS or more into each
// (plainParts; markdown.js's full render cuts it the same way): a browser lays a block's text
// out whole whenever it changes, so one block of megabytes would be laid out again at every
// frame, and a line break that ends a block shows as it does inside one.

import { appendText } from "./fragments.js";

/** @typedef {import("./incremental.js").StreamState} StreamState */

/** Plain text is cut into blocks at the first line break this many characters into each. */
export const PLAIN_PART_CHARS = 16 * 1024;

/**
 * `source` cut into the blocks plain text is shown in: each ends with the first line break
 * `size` or more characters into it, except the last.
 * @param {string} source
 * @param {number} [size]
 * @returns {string[]}
 */
export function plainParts(source, size = PLAIN_PART_CHARS) {
  const parts = [];
  let start = 0;
  for (let at = source.indexOf("\n", start + size); at !== -1; at = source.indexOf("\n", start + size)) {
    parts.push(source.slice(start, at + 1));
    start = at + 1;
  }
  parts.push(source.slice(start));
  return parts;
}

/**
 * Show `state.source` as plain text in `element`, appending to what it shows already.
 * @param {HTMLElement} element
 * @param {StreamState} state
 * @param {number} plainPart  PLAIN_PART_CHARS (smaller in tests)
 */
export function paintPlain(element, state, plainPart) {
  for (const chunk of state.chunks) Object.assign(chunk, { tokens: null, growing: null });
  const document = element.ownerDocument;
  if (state.dom !== "plain" || state.plain === null || state.part === null) {
    const plain = document.createElement("div");
    plain.className = "llmsock-plain";
    const part = plain.appendChild(document.createElement("div"));
    element.replaceChildren(plain);
    Object.assign(state, { dom: "plain", plain, part, partStart: 0, plainDone: 0, plainNodes: 0 });
    Object.assign(state, { domChunks: 0, domNodes: 0 });
  }
  let part = /** @type {HTMLElement} */ (state.part);
  while (part.childNodes.length > state.plainNodes) part.lastChild?.remove();
  const { source } = state;
  // A line break is final (below), so the blocks it ends are too.
  for (let at = source.indexOf("\n", state.partStart + plainPart); at !== -1; ) {
    if (at + 1 > state.plainDone) appendText(part, source.slice(state.plainDone, at + 1));
    part = /** @type {HTMLElement} */ (state.plain).appendChild(document.createElement("div"));
    Object.assign(state, { part, partStart: at + 1, plainDone: Math.max(state.plainDone, at + 1), plainNodes: 0 });
    at = source.indexOf("\n", state.partStart + plainPart);
  }
  // Up to the last space, tab or line feed nothing changes any more: no run of text crosses
  // it (wrap.js), and reveal() replaces nothing across it.
  let cut = source.length;
  while (cut > state.plainDone && !" \t\n".includes(source[cut - 1])) cut -= 1;
  if (cut > state.plainDone) {
    state.plainNodes += appendText(part, source.slice(state.plainDone, cut));
    state.plainDone = cut;
  }
  appendText(part, source.slice(cut));
}
