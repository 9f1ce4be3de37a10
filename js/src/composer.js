// The message box's behaviour: it grows with its text, keys that leave it, recall earlier
// prompts and stop an answer, and a warning before a very large message goes out.
//
// view.js builds the box and its buttons and decides when a prompt may be sent; this module
// adds, on the same elements:
// - growth: one line when empty, taller with each line up to the CSS max-height (style.css),
//   then it scrolls. One layout read (scrollHeight) per input event; keys that only move the
//   caret cause none.
// - Esc: the focus leaves the box for the notebook cell that holds the chat (JupyterLab and
//   Notebook 7 are then in command mode, where their shortcuts work again); elsewhere the box
//   is just blurred. The event is not stopped: the host sees it.
// - Up in an empty box recalls the last prompt this view sent, again for older ones; Down
//   goes forward, and past the newest leaves the box empty. Only on the first line (Up) or
//   the last line (Down), so moving through a multi-line text keeps working; typing ends it.
// - STOP_KEYS (Ctrl+Shift+Backspace, Control on every platform: browsers and JupyterLab give it
//   no meaning in a text box, while Cmd+Shift+Backspace clears browsing data on macOS) stops
//   a streaming answer from anywhere in the chat, as the Stop button does.
// - A message over LARGE_CHARS characters is not sent at the first Send: a polite line says
//   its size and asks for Send again; typing clears the line and the confirmation.
// - With the kernel's requests (kernel-requests.js): `@name` completion (mentions.js), which
//   takes the keys it needs while its list is open; and at Send, each name the text mentions is
//   described by the kernel and goes with the prompt as an attachment (attachments.js). The box
//   waits read-only meanwhile, and the polite line says what is being read, then what was cut
//   or left as text.

import { buildAttachments, mentionedNames } from "./attachments.js";
import { createMentions } from "./mentions.js";

/** The Stop shortcut, as aria-keyshortcuts spells it. */
export const STOP_KEYS = "Control+Shift+Backspace";
/** The same, as the Stop button's title shows it. */
export const STOP_KEYS_LABEL = "Ctrl+Shift+Backspace";
/** Messages longer than this many characters are sent only when Send is pressed twice. */
export const LARGE_CHARS = 100_000;
/** How many sent prompts Up can recall. */
export const HISTORY_LIMIT = 100;

/**
 * Whether the key event is the Stop shortcut.
 * @param {KeyboardEvent} event
 * @returns {boolean}
 */
export function isStopKey(event) {
  return event.key === "Backspace" && Boolean(event.ctrlKey && event.shiftKey) && !event.altKey && !event.metaKey;
}

/**
 * The warning shown before a large message is sent.
 * @param {number} chars
 * @returns {string}
 */
export function largeText(chars) {
  const size = chars.toLocaleString("en-US");
  return `This message is ${size} characters long. Press Send again to send it, or edit it.`;
}

/**
 * Whether the caret (a collapsed selection) is on the first line of the box's text.
 * @param {HTMLTextAreaElement} box
 * @returns {boolean}
 */
function onFirstLine(box) {
  return box.selectionStart === box.selectionEnd && !box.value.slice(0, box.selectionStart).includes("\n");
}

/**
 * Whether the caret is on the last line of the box's text.
 * @param {HTMLTextAreaElement} box
 * @returns {boolean}
 */
function onLastLine(box) {
  return box.selectionStart === box.selectionEnd && !box.value.slice(box.selectionEnd).includes("\n");
}

/**
 * Add the composer's behaviour to the message box.
 *
 * Args (one object):
 *   root: the chat's root (the Stop shortcut works anywhere in it);
 *   textarea, stopButton: the message box and the Stop button view.js made;
 *   submit(): send the box's text, as the Send button does;
 *   stop(): stop the streaming answer (called only when the Stop button is enabled);
 *   changed(): the text changed (view.js repaints its buttons);
 *   kernel: the kernel's requests (kernel-requests.js), for `@name` mentions; none: no mentions.
 * Returns {warning, mayGo(text), send(text, onSend), sent(text), resize(), destroy()}:
 * `warning` is the polite line to place under the composer; mayGo(text) is false the first
 * time a large text is sent (the warning is then shown); send(text, onSend) calls
 * onSend(text, attachments) with the mentions described (at once when there are none) and,
 * when that returns true, does sent(text); sent(text) empties the box and remembers the prompt.
 *
 * @param {object} options
 * @param {HTMLElement} options.root
 * @param {HTMLTextAreaElement} options.textarea
 * @param {HTMLButtonElement} options.stopButton
 * @param {() => void} options.submit
 * @param {() => unknown} options.stop
 * @param {() => void} options.changed
 * @param {import("./kernel-requests.js").KernelRequests | null} [options.kernel]
 */
export function createComposer({ root, textarea, stopButton, submit, stop, changed, kernel = null }) {
  const document = textarea.ownerDocument;
  const warning = document.createElement("div");
  warning.className = "llmsock-composer-warning";
  warning.setAttribute("role", "status");
  warning.setAttribute("aria-live", "polite");
  warning.setAttribute("data-role", "composer-warning");
  stopButton.title = `Stop the answer (${STOP_KEYS_LABEL})`;
  stopButton.setAttribute("aria-keyshortcuts", STOP_KEYS);
  textarea.rows = 1;

  /** @type {string[]} prompts sent from this view, oldest first */
  const history = [];
  let recalled = -1; // index into history of the prompt shown, -1 when none is
  let confirmed = ""; // the large text whose warning was shown: the next Send sends it
  let border = -1; // the box's top and bottom borders, read at the first resize
  let attaching = false; // the mentions of a prompt are being described: it is not sent yet
  const mentions = kernel ? createMentions({ textarea, complete: kernel.complete }) : null;

  // Height = the text's height: "auto" first so a box that shrinks reports its new height.
  function resize() {
    textarea.style.height = "auto";
    const height = textarea.scrollHeight;
    if (border < 0) border = Math.max(0, textarea.offsetHeight - textarea.clientHeight);
    textarea.style.height = `${height + border}px`;
  }

  function clearWarning() {
    confirmed = "";
    if (warning.textContent !== "") warning.textContent = "";
  }

  /**
   * Show `text` in the box (a recalled prompt, or nothing), the caret at `caret`.
   * @param {string} text
   * @param {number} caret
   */
  function show(text, caret) {
    textarea.value = text;
    textarea.setSelectionRange(caret, caret);
    clearWarning();
    resize();
    changed();
  }

  function recallOlder() {
    const index = recalled === -1 ? history.length - 1 : recalled - 1;
    if (index < 0) return false;
    recalled = index;
    const text = history[index];
    const firstLineEnd = text.indexOf("\n");
    show(text, firstLineEnd === -1 ? text.length : firstLineEnd);
    return true;
  }

  function recallNewer() {
    if (recalled === -1) return false;
    recalled = recalled + 1 < history.length ? recalled + 1 : -1;
    const text = recalled === -1 ? "" : history[recalled];
    show(text, text.length);
    return true;
  }

  function leave() {
    // The notebook cell around the chat takes the focus: the notebook is in command mode then.
    const cell = /** @type {HTMLElement | null} */ (textarea.closest(".jp-Cell"));
    if (cell?.hasAttribute("tabindex")) cell.focus({ preventScroll: true });
    if (document.activeElement === textarea) textarea.blur();
  }

  /** @param {KeyboardEvent} event */
  const onKeydown = (event) => {
    if (mentions?.keydown(event)) return; // the completion list's keys, while it is open
    const plain = !event.ctrlKey && !event.metaKey && !event.altKey && !event.shiftKey;
    if (event.key === "Escape" && plain && !event.isComposing) {
      leave(); // not stopped: the host sees the Escape too
      return;
    }
    // Classic notebook hosts listen in the bubble phase; keep typing inside the widget.
    if (!event.ctrlKey && !event.metaKey) event.stopPropagation();
    if (event.isComposing) return; // the input method's keys
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && plain && onFirstLine(textarea)) {
      if ((textarea.value === "" || recalled !== -1) && recallOlder()) event.preventDefault();
    } else if (event.key === "ArrowDown" && plain && onLastLine(textarea)) {
      if (recallNewer()) event.preventDefault();
    }
  };

  /** @param {KeyboardEvent} event */
  const onRootKeydown = (event) => {
    if (!isStopKey(event) || stopButton.disabled) return;
    event.preventDefault();
    event.stopPropagation();
    stop();
  };

  const onInput = () => {
    recalled = -1; // an edited prompt is a new one
    clearWarning();
    resize();
    changed();
  };

  /**
   * Whether `text` may go out now; false the first time a large one is sent (it warns then).
   * @param {string} text
   * @returns {boolean}
   */
  function mayGo(text) {
    if (text.length <= LARGE_CHARS || confirmed === text) return true;
    confirmed = text;
    warning.textContent = largeText(text.length);
    return false;
  }

  /**
   * The prompt `text` was sent: remember it, empty the box.
   * @param {string} text
   */
  function sent(text) {
    if (history[history.length - 1] !== text) history.push(text);
    if (history.length > HISTORY_LIMIT) history.shift();
    recalled = -1;
    show("", 0);
  }

  /**
   * Send `text` with the attachments of its mentions: `onSend(text, attachments)`, true if it went.
   * @param {string} text
   * @param {(text: string, attachments: {name: string, text: string}[]) => boolean} onSend
   * @returns {Promise<void>}
   */
  async function send(text, onSend) {
    if (attaching) return; // a second Send while the first one's mentions are read
    const names = kernel ? mentionedNames(text) : [];
    if (kernel === null || names.length === 0) {
      if (onSend(text, [])) sent(text);
      return;
    }
    attaching = true;
    mentions?.close();
    textarea.readOnly = true;
    textarea.setAttribute("aria-busy", "true");
    warning.textContent = `Reading ${names.map((name) => `@${name}`).join(", ")} from the kernel…`;
    /** @type {{attachments: {name: string, text: string}[], notes: string[]}} */
    let built = { attachments: [], notes: [] };
    try {
      built = await buildAttachments(text, kernel.describe);
    } catch {
      built.notes = ["The kernel could not be asked (its comm is closed); the mentions went as text."];
    } finally {
      attaching = false;
      textarea.readOnly = false;
      textarea.removeAttribute("aria-busy");
      warning.textContent = "";
    }
    if (onSend(text, built.attachments)) {
      sent(text);
      warning.textContent = built.notes.join(" ");
    }
    changed();
  }

  textarea.addEventListener("keydown", onKeydown);
  textarea.addEventListener("input", onInput);
  root.addEventListener("keydown", onRootKeydown);

  function destroy() {
    textarea.removeEventListener("keydown", onKeydown);
    textarea.removeEventListener("input", onInput);
    root.removeEventListener("keydown", onRootKeydown);
    mentions?.destroy();
  }

  return { warning, mayGo, send, sent, resize, destroy };
}
