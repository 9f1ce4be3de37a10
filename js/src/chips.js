// The context a prompt carried: one chip per attachment (`@df`) under the user's message. A chip
// is a disclosure button; opening it shows the exact text that was sent with the prompt, as plain
// text in a <pre> (textContent, invisible characters revealed: never HTML).

import { reveal } from "./invisible.js";

/** @type {WeakMap<Element, unknown>} the attachments each row of chips shows */
const shown = new WeakMap();
let made = 0; // chips made in this page: each text gets its own id

/**
 * Show `attachments` as chips in `container` (a message's element), after its body.
 *
 * The row is made once and kept while the attachments are the same array, so a chip the user
 * opened stays open when the message is painted again; no attachments: no row.
 * @param {HTMLElement} container
 * @param {{name: string, text: string}[] | undefined | null} attachments
 */
export function paintChips(container, attachments) {
  const list = Array.isArray(attachments) ? attachments : [];
  let row = /** @type {HTMLElement | null} */ (container.querySelector(":scope > .llmsock-chips"));
  if (list.length === 0) {
    row?.remove();
    return;
  }
  if (row !== null && shown.get(row) === list) return;
  const document = container.ownerDocument;
  if (row === null) {
    row = document.createElement("div");
    row.className = "llmsock-chips";
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Context sent with this message");
    row.setAttribute("data-role", "chips");
    const body = container.querySelector(":scope > .llmsock-body");
    container.insertBefore(row, body ? body.nextSibling : null);
  }
  shown.set(row, list);
  row.replaceChildren(...list.map((attachment) => chip(document, attachment)));
}

/**
 * One chip: a button that opens and closes the text sent as `@name`.
 * @param {Document} document
 * @param {{name: string, text: string}} attachment
 * @returns {HTMLElement}
 */
function chip(document, { name, text }) {
  const id = `llmsock-chip-${++made}`;
  const wrap = document.createElement("div");
  wrap.className = "llmsock-chip";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "llmsock-chip-toggle";
  button.setAttribute("data-action", "chip");
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", id);
  button.title = `What was sent to the model as @${name}`;
  button.textContent = reveal(`@${name}`);
  const pre = document.createElement("pre");
  pre.id = id;
  pre.className = "llmsock-chip-text";
  pre.setAttribute("data-role", "chip-text");
  pre.hidden = true;
  pre.textContent = reveal(text);
  button.addEventListener("click", () => {
    const open = pre.hidden;
    pre.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
  });
  wrap.append(button, pre);
  return wrap;
}
