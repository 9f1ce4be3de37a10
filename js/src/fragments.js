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
 * Parse `html` and append it to `parent`, with break opportunities in long runs.
 * @param {HTMLElement} parent
 * @param {string} html
 * @returns {number} the child nodes added
 */
export function appendHtml(parent, html) {
  const template = parent.ownerDocument.createElement("template");
  template.innerHTML = html;
  return appendFragment(parent, template.content);
}

/**
 * @param {HTMLElement} parent
 * @param {string} text
 * @returns {number} the child nodes added
 */
export function appendText(parent, text) {
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
export function appendFragment(parent, fragment) {
  breakLongRuns(/** @type {any} */ (fragment));
  const count = fragment.childNodes.length;
  parent.append(fragment);
  return count;
}
