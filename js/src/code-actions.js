// Actions on an answer's code blocks: a small toolbar at the top of each finished <pre> with
// Copy, and, where the llmsock-notebook plugin answers, Insert above / Insert below / Replace
// cell / Insert and run, which put the code into the notebook around the cell holding the chat.
//
// The toolbar is built here as DOM nodes after the Markdown is rendered and sanitized, never as
// HTML through the sanitizer, and it goes inside the <pre>: the incremental painter counts the
// answer's top-level nodes, so nothing may be added beside them. A block gets its toolbar once;
// a <pre> of the streaming tail is a new node at every frame and gets a new one. While the
// answer streams, only a block that something follows has one (a fence being written grows,
// and a toolbar that came and went would flicker).
//
// The code a button takes is the block as it is shown: the fence's content after reveal()
// (invisible and bidi characters are shown as markers, and stay markers: what the reader
// checked is what runs), without the line break that ends its last line. It is the <code>
// element's text, which markdown-it and highlight.js keep equal to the fence's content (spans
// and <wbr> add no text); js/test/code-actions.test.js holds the two equal.
//
// The plugin is reached as for snapshots (docs/persistence.md, section 4): DOM events that
// bubble from the view, acknowledged with preventDefault().

import { askPlugin } from "./plugin.js";

/** Asks whether the plugin can put code into the notebook that holds the view. */
export const CAPABILITIES_EVENT = "llmsock:capabilities";
/** Puts a block's code into the notebook. */
export const INSERT_EVENT = "llmsock:insert-code";
/** How long a confirmation ("Copied") stays next to the buttons. */
export const NOTE_MS = 2500;

/**
 * @typedef {object} Action
 * @property {string} id  data-action of the button
 * @property {string} label  the visible text
 * @property {string} name  the accessible name (it contains the label)
 * @property {string} [where]  the insert event's `where`
 * @property {string} [done]  what the note says once the plugin did it
 */

/** @type {Action} */
const COPY = { id: "copy", label: "Copy", name: "Copy code" };

/** @type {Action[]} */
export const INSERT_ACTIONS = [
  { id: "above", where: "above", label: "Insert above", name: "Insert above the chat", done: "Inserted above" },
  { id: "below", where: "below", label: "Insert below", name: "Insert below the chat", done: "Inserted below" },
  { id: "replace", where: "replace", label: "Replace cell", name: "Replace cell: the active one", done: "Replaced" },
  {
    id: "run",
    where: "run-below",
    label: "Insert and run",
    name: "Insert and run below the chat",
    done: "Inserted and running",
  },
];

/**
 * The <code> element of a block markdown-it made, or undefined.
 * @param {Element} pre
 * @returns {Element | undefined}
 */
function codeElement(pre) {
  return [...pre.children].find((child) => child.tagName === "CODE");
}

/**
 * The code a block's <pre> shows: its <code>'s text without the final line break, or null
 * when it is not a block markdown-it made (a <pre> with a <code> in it).
 * @param {Element} pre
 * @returns {string | null}
 */
export function codeOf(pre) {
  const code = codeElement(pre);
  if (code === undefined) return null;
  const text = code.textContent ?? "";
  return text.endsWith("\n") ? text.slice(0, -1) : text;
}

/**
 * The language named on a block's fence (markdown-it's `language-*` class), or "".
 * @param {Element} pre
 * @returns {string}
 */
function languageOf(pre) {
  const name = [...(codeElement(pre)?.classList ?? [])].find((cls) => cls.startsWith("language-"));
  return name ? name.slice("language-".length) : "";
}

/**
 * Whether anything but white space follows `node` inside `root` (then a fence in it is closed:
 * Markdown never reopens a block that another one follows).
 * @param {Node} node
 * @param {Node} root
 * @returns {boolean}
 */
export function followed(node, root) {
  for (let at = node; at !== root && at.parentNode !== null; at = at.parentNode) {
    for (let next = at.nextSibling; next !== null; next = next.nextSibling) {
      if (next.nodeType === 1 || (next.textContent ?? "").trim() !== "") return true;
    }
  }
  return false;
}

/**
 * Ask the plugin whether it can put code into the notebook holding `el`.
 * @param {Element} el
 * @returns {boolean}
 */
export function probeInsert(el) {
  const detail = { version: 1, insertCode: false };
  return askPlugin(el, CAPABILITIES_EVENT, detail) && detail.insertCode === true;
}

/**
 * Hand `code` to the plugin, from `from` (the button: the plugin finds the cell holding it).
 * @param {Element} from
 * @param {string} code
 * @param {string} where  "above" | "below" | "replace" | "run-below"
 * @returns {{ok: boolean, message: string}}  message: why not, when not ok
 */
export function requestInsert(from, code, where) {
  const detail = { version: 1, code, where, ok: false, message: "" };
  if (!askPlugin(from, INSERT_EVENT, detail)) return { ok: false, message: "no notebook answered" };
  return { ok: detail.ok === true, message: typeof detail.message === "string" ? detail.message : "" };
}

/**
 * Copy `text` with the old command, through a textarea that is selected for a moment.
 * @param {Element} near  where the textarea goes (inside the view, so focus stays there)
 * @param {string} text
 * @returns {boolean}
 */
function copyWithCommand(near, text) {
  const document = near.ownerDocument;
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.setAttribute("aria-hidden", "true");
  area.className = "llmsock-copy-area";
  near.append(area);
  area.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch {
    done = false;
  }
  area.remove();
  return done;
}

/**
 * Put `text` on the clipboard: the Clipboard API, else the copy command.
 * @param {Element} near
 * @param {string} text
 * @returns {Promise<boolean>}
 */
export async function copyText(near, text) {
  const clipboard = near.ownerDocument.defaultView?.navigator?.clipboard;
  if (clipboard && typeof clipboard.writeText === "function") {
    try {
      await clipboard.writeText(text);
      return true;
    } catch {
      // refused (no permission, an insecure page, not focused): try the old command
    }
  }
  return copyWithCommand(near, text);
}

/**
 * The code-block actions of one view.
 *
 * Args (one object):
 *   host: the view's element, from which the capability probe is dispatched.
 *   announcer: the parent for the polite live region that reads confirmations out.
 *   setTimeout / clearTimeout: for the note's lifetime (injectable for tests).
 *   copy(near, text) -> Promise<boolean>: the clipboard (injectable for tests).
 * Returns {decorate(body, finished), destroy()}: decorate adds a toolbar to each <pre> of
 * `body` that has none; `finished` says the answer has ended (every block is final).
 *
 * @param {object} options
 * @param {HTMLElement} options.host
 * @param {HTMLElement} options.announcer
 * @param {(fn: () => void, ms: number) => any} [options.setTimeout]
 * @param {(handle: any) => void} [options.clearTimeout]
 * @param {(near: Element, text: string) => Promise<boolean>} [options.copy]
 */
export function createCodeActions({ host, announcer, setTimeout, clearTimeout, copy = copyText }) {
  const document = host.ownerDocument;
  const win = /** @type {Window} */ (document.defaultView);
  const later = setTimeout ?? ((fn, ms) => win.setTimeout(fn, ms));
  const cancel = clearTimeout ?? ((handle) => win.clearTimeout(handle));
  /** @type {boolean | null} whether the plugin answered the probe (null: not asked in the page yet) */
  let canInsert = null;
  /** @type {WeakMap<Element, any>} a toolbar -> the timer that clears its note */
  const noteTimers = new WeakMap();
  const timers = new Set();

  const live = document.createElement("div");
  live.className = "llmsock-sr-only";
  live.setAttribute("role", "status");
  live.setAttribute("aria-live", "polite");
  live.setAttribute("data-role", "code-announcer");
  announcer.append(live);

  function insertable() {
    // A view outside the page yet would get no answer: ask again once it is in.
    if (canInsert === null && host.isConnected) canInsert = probeInsert(host);
    return canInsert === true;
  }

  /**
   * Show `text` next to the buttons for a while, and have it read out.
   * @param {Element} toolbar
   * @param {string} text
   * @param {boolean} failed
   */
  function say(toolbar, text, failed) {
    const note = /** @type {HTMLElement} */ (toolbar.querySelector(".llmsock-code-note"));
    note.textContent = text;
    note.toggleAttribute("data-failed", failed);
    // The same words again must be read again: clear the region first.
    live.textContent = "";
    live.textContent = text;
    const previous = noteTimers.get(toolbar);
    if (previous !== undefined) {
      cancel(previous);
      timers.delete(previous);
    }
    const timer = later(() => {
      timers.delete(timer);
      note.textContent = "";
      note.removeAttribute("data-failed");
    }, NOTE_MS);
    timers.add(timer);
    noteTimers.set(toolbar, timer);
  }

  /**
   * @param {HTMLButtonElement} button
   * @param {Element} pre
   * @param {Element} toolbar
   */
  async function onCopy(button, pre, toolbar) {
    const code = codeOf(pre) ?? "";
    const done = await copy(button, code);
    if (done) {
      say(toolbar, "Copied", false);
      return;
    }
    // Nothing could reach the clipboard: select the code, so Ctrl+C copies it.
    const selection = win.getSelection();
    const range = document.createRange();
    range.selectNodeContents(codeElement(pre) ?? pre);
    selection?.removeAllRanges();
    selection?.addRange(range);
    say(toolbar, "Copy failed: the code is selected, press Ctrl+C", true);
  }

  /**
   * @param {HTMLButtonElement} button
   * @param {Element} pre
   * @param {Element} toolbar
   * @param {Action} action
   */
  function onInsert(button, pre, toolbar, action) {
    const { ok, message } = requestInsert(button, codeOf(pre) ?? "", /** @type {string} */ (action.where));
    if (ok) say(toolbar, /** @type {string} */ (action.done), false);
    else say(toolbar, `Not done: ${message || "the notebook refused"}`, true);
  }

  /**
   * @param {Action} action
   * @returns {HTMLButtonElement}
   */
  function button(action) {
    const node = document.createElement("button");
    node.type = "button";
    node.className = "llmsock-code-action";
    node.setAttribute("data-action", action.id);
    node.setAttribute("aria-label", action.name);
    node.title = action.name;
    node.textContent = action.label;
    return node;
  }

  /**
   * The toolbar for `pre`.
   * @param {Element} pre
   * @param {boolean} inserts
   * @returns {HTMLElement}
   */
  function toolbarFor(pre, inserts) {
    const toolbar = document.createElement("div");
    toolbar.className = "llmsock-code-actions";
    toolbar.setAttribute("role", "toolbar");
    toolbar.setAttribute("aria-label", "Code block actions");
    // Inside the transcript's live log: adding buttons is not news to read out.
    toolbar.setAttribute("aria-live", "off");
    toolbar.setAttribute("data-inserts", String(inserts));
    const language = languageOf(pre);
    const label = document.createElement("span");
    label.className = "llmsock-code-lang";
    label.textContent = language;
    const note = document.createElement("span");
    note.className = "llmsock-code-note";
    note.setAttribute("aria-hidden", "true"); // the live region reads it out
    const copyButton = button(COPY);
    copyButton.addEventListener("click", () => void onCopy(copyButton, pre, toolbar));
    toolbar.append(label, note, copyButton);
    if (inserts) {
      for (const action of INSERT_ACTIONS) {
        const node = button(action);
        node.addEventListener("click", () => onInsert(node, pre, toolbar, action));
        toolbar.append(node);
      }
    }
    return toolbar;
  }

  /**
   * Give each code block of `body` its toolbar (once); while streaming only the closed ones.
   * @param {HTMLElement} body
   * @param {boolean} finished
   */
  function decorate(body, finished) {
    const pres = body.querySelectorAll("pre");
    if (pres.length === 0) return;
    const inserts = insertable();
    for (const pre of pres) {
      const existing = [...pre.children].find((child) => child.classList.contains("llmsock-code-actions"));
      if (existing?.getAttribute("data-inserts") === String(inserts)) continue;
      if (codeOf(pre) === null || !(finished || followed(pre, body))) continue;
      const toolbar = toolbarFor(pre, inserts);
      if (existing) existing.replaceWith(toolbar);
      else pre.prepend(toolbar);
    }
  }

  function destroy() {
    for (const timer of timers) cancel(timer);
    timers.clear();
    live.remove();
  }

  return { decorate, destroy };
}
