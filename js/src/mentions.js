// `@name` completion in the message box: typing `@` and a letter lists the kernel's names that
// start so (kernel-requests.js asks), the list under the caret's line follows the typing, and
// picking a name puts `@name ` in the box.
//
// Keys while the list is open: Down and Up move through it (wrapping), Enter or Tab picks, Esc
// closes it (and only it: the Esc is stopped, the box keeps the focus). A click picks too; the
// list never takes the focus (mousedown is prevented), so typing goes on in the box.
//
// ARIA: the combobox pattern (ARIA APG) on the message box: `aria-autocomplete="list"`,
// `aria-controls` naming the listbox, `aria-activedescendant` the active option while the list is
// open, `aria-haspopup="listbox"`. The box keeps its own role: a <textarea> may not take the
// combobox role (ARIA in HTML), nor `aria-expanded`; the listbox's `hidden` says whether it is
// open. Options are <li role="option"> with `aria-selected` on the active one.

import { mentionAt } from "./attachments.js";
import { reveal } from "./invisible.js";

/** @type {number} */
let lists = 0; // listboxes made in this page: each gets its own id

/**
 * Add `@name` completion to `textarea`.
 *
 * Returns {listbox, keydown(event), close(), isOpen(), destroy()}: the composer places nothing
 * (the listbox goes right after the box, positioned by style.css) and offers every keydown to
 * `keydown` first: it returns true when the key was the list's.
 *
 * @param {object} options
 * @param {HTMLTextAreaElement} options.textarea
 * @param {(prefix: string) => Promise<{name: string, kind: string}[]>} options.complete
 */
export function createMentions({ textarea, complete }) {
  const document = textarea.ownerDocument;
  const id = `llmsock-mentions-${++lists}`;
  const listbox = document.createElement("ul");
  listbox.id = id;
  listbox.className = "llmsock-mentions";
  listbox.setAttribute("role", "listbox");
  listbox.setAttribute("aria-label", "Names in the kernel");
  listbox.setAttribute("data-role", "mentions");
  listbox.hidden = true;
  textarea.setAttribute("aria-autocomplete", "list");
  textarea.setAttribute("aria-haspopup", "listbox");
  textarea.setAttribute("aria-controls", id);
  textarea.insertAdjacentElement("afterend", listbox);

  /** @type {{name: string, kind: string}[]} */
  let names = [];
  let active = -1;
  /** @type {{start: number, end: number, prefix: string} | null} the mention the list is for */
  let token = null;
  let asked = 0; // requests made: only the latest one's answer is shown

  const caretMention = () =>
    textarea.selectionStart === textarea.selectionEnd ? mentionAt(textarea.value, textarea.selectionStart) : null;

  function close() {
    asked += 1; // an answer still on its way is not wanted any more
    if (token === null && listbox.hidden) return; // closed already: typing costs no DOM work
    token = null;
    names = [];
    active = -1;
    if (!listbox.hidden) listbox.hidden = true;
    listbox.replaceChildren();
    textarea.removeAttribute("aria-activedescendant");
  }

  /** @param {number} index */
  function activate(index) {
    active = index;
    listbox.querySelectorAll("[role=option]").forEach((option, i) => {
      option.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    const option = listbox.children[index];
    if (option) {
      textarea.setAttribute("aria-activedescendant", option.id);
      /** @type {any} */ (option).scrollIntoView?.({ block: "nearest" });
    }
  }

  /** @param {{name: string, kind: string}[]} found */
  function show(found) {
    names = found;
    if (names.length === 0) {
      close(); // nothing to offer: the `@` is ordinary text
      return;
    }
    listbox.replaceChildren(
      ...names.map((entry, i) => {
        const option = document.createElement("li");
        option.id = `${id}-${i}`;
        option.setAttribute("role", "option");
        option.setAttribute("data-name", entry.name);
        const name = document.createElement("span");
        name.className = "llmsock-mention-name";
        name.textContent = reveal(entry.name);
        option.append(name);
        if (entry.kind) {
          const kind = document.createElement("span");
          kind.className = "llmsock-mention-kind";
          kind.textContent = reveal(entry.kind);
          option.append(kind);
        }
        return option;
      }),
    );
    listbox.hidden = false;
    activate(0);
  }

  /** Ask for the names of the mention at the caret (or close the list when there is none). */
  async function refresh() {
    const found = caretMention();
    if (found === null) {
      close();
      return;
    }
    token = found;
    asked += 1;
    const ticket = asked;
    const completions = await complete(found.prefix);
    if (ticket !== asked) return; // the user typed on, or the list was closed meanwhile
    show(completions);
  }

  /** @param {number} index */
  function pick(index) {
    const entry = names[index];
    const at = token;
    if (entry === undefined || at === null) return;
    const text = `@${entry.name} `;
    textarea.value = textarea.value.slice(0, at.start) + text + textarea.value.slice(at.end);
    const caret = at.start + text.length;
    textarea.setSelectionRange(caret, caret);
    close();
    textarea.focus();
    // The composer grows the box and the view repaints its buttons, as for typing.
    const { Event } = /** @type {Window & typeof globalThis} */ (document.defaultView);
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  /**
   * Handle a key of the box while the list is open; return whether it was the list's.
   * @param {KeyboardEvent} event
   * @returns {boolean}
   */
  function keydown(event) {
    if (listbox.hidden || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return false;
    const count = names.length;
    if (event.key === "ArrowDown" && !event.shiftKey) activate((active + 1) % count);
    else if (event.key === "ArrowUp" && !event.shiftKey) activate((active - 1 + count) % count);
    else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey) pick(active);
    else if (event.key === "Escape" && !event.shiftKey) close();
    else return false;
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  const onInput = () => {
    refresh();
  };
  // The caret moved (a click, Left, Home...): the list stays only while it is on the same mention.
  const onMoved = () => {
    if (listbox.hidden && token === null) return;
    const now = caretMention();
    if (now === null || token === null || now.start !== token.start) close();
  };
  const onBlur = () => close();
  /** @param {MouseEvent} event */
  const onListMousedown = (event) => event.preventDefault(); // the box keeps the focus
  /** @param {MouseEvent} event */
  const onListClick = (event) => {
    const option = /** @type {Element | null} */ (event.target)?.closest?.("[role=option]");
    const index = option ? [...listbox.children].indexOf(option) : -1;
    if (index !== -1) pick(index);
  };

  // destroy() removes every listener at once; the page's own AbortController (a test's jsdom has its own).
  const listening = new (textarea.ownerDocument.defaultView?.AbortController ?? AbortController)();
  const { signal } = listening;
  textarea.addEventListener("input", onInput, { signal });
  textarea.addEventListener("click", onMoved, { signal });
  textarea.addEventListener("keyup", onMoved, { signal });
  textarea.addEventListener("blur", onBlur, { signal });
  listbox.addEventListener("mousedown", onListMousedown, { signal });
  listbox.addEventListener("click", onListClick, { signal });

  function destroy() {
    close();
    listening.abort();
    listbox.remove();
  }

  return { listbox, keydown, close, isOpen: () => !listbox.hidden, destroy };
}
