// Putting rendered HTML and text into the DOM, with break opportunities in long runs (wrap.js).
// The HTML is sanitized already: these only parse it and append it.

import { breakLongRuns } from "./wrap.js";

/**
 * Parse `html` into a fragment of `document`, with break opportunities in long runs.
 * @param {Document} document
 * @param {string} html
 * @returns {DocumentFragment}
 */
export function htmlFragment(document, html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  breakLongRuns(/** @type {any} */ (template.content));
  return template.content;
}

/**
 * Append `text` to `parent`, with break opportunities in long runs.
 * @param {HTMLElement} parent
 * @param {string} text
 * @returns {number} the child nodes added
 */
export function appendText(parent, text) {
  const fragment = parent.ownerDocument.createDocumentFragment();
  fragment.append(text);
  breakLongRuns(/** @type {any} */ (fragment));
  return appendNodes(parent, fragment);
}

/**
 * Append the nodes of `fragment` to `parent`.
 * @param {HTMLElement} parent
 * @param {DocumentFragment} fragment
 * @returns {number} the child nodes added
 */
export function appendNodes(parent, fragment) {
  const count = fragment.childNodes.length;
  parent.append(fragment);
  return count;
}
