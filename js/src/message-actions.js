// Actions on the transcript's messages, in a row under each one: Copy (an answer's Markdown
// source, as the model wrote it), Regenerate the last answer (Retry when it failed), and Edit a
// prompt to send it again. The row also carries the message's time and, for an answer whose
// model reported it, its token usage; a prompt that replaced earlier ones says how many.
//
// Edit, Regenerate and Retry send a prompt that *replaces* an earlier one (docs/protocol.md,
// "Replacing a prompt"): when its turn starts, the server cuts that prompt and everything after
// it from the transcript, for every view and for the model. One linear transcript, no branches.
// They are offered only while the chat is idle and connected (a turn would race the cut), as
// disabled buttons otherwise, so the row does not jump at every turn.
//
// The first half is pure (which actions a message has, the texts); the second builds the rows.

/**
 * What the row of one message depends on besides the message.
 * @typedef {object} RowContext
 * @property {boolean} ready  connected and idle, nothing waiting: a prompt may replace another
 * @property {boolean} last  the transcript's last message
 * @property {import("./reducer.js").Message | null} prompt  for an answer: the prompt just before it
 * @property {number} after  for a prompt: how many messages it and the ones after it make
 */

/**
 * @typedef {object} MessageAction
 * @property {"copy" | "regenerate" | "retry" | "edit"} id
 * @property {string} label
 * @property {string} name  the accessible name
 * @property {boolean} enabled
 */

/**
 * The actions of one message, in the order they are shown.
 * @param {import("./reducer.js").Message} message
 * @param {RowContext} context
 * @returns {MessageAction[]}
 */
export function actionsFor(message, context) {
  if (message.status === "streaming") return [];
  if (message.role === "user") {
    return [{ id: "edit", label: "Edit", name: "Edit this prompt", enabled: context.ready }];
  }
  /** @type {MessageAction[]} */
  const actions = [{ id: "copy", label: "Copy", name: "Copy this answer as Markdown", enabled: true }];
  if (context.last && context.prompt !== null) {
    const retry = message.status === "error";
    actions.push({
      id: retry ? "retry" : "regenerate",
      label: retry ? "Retry" : "Regenerate",
      name: retry ? "Retry the last prompt" : "Regenerate the last answer",
      enabled: context.ready,
    });
  }
  return actions;
}

/**
 * What the editor says sending will do.
 * @param {number} after  the prompt and the messages after it
 * @returns {string}
 */
export function replaceWarning(after) {
  const later = after - 1;
  if (later <= 0) return "Sending replaces this prompt.";
  return `Sending replaces this prompt and the ${later} message${later === 1 ? "" : "s"} after it.`;
}

/**
 * What a prompt that replaced earlier messages says about it.
 * @param {number} replaced
 * @returns {string}
 */
export function replacedText(replaced) {
  return `sent again: replaced ${replaced} earlier message${replaced === 1 ? "" : "s"}`;
}

/**
 * An answer's token usage as shown, or "" when the model reported none.
 * @param {{inputTokens?: number | null, outputTokens?: number | null} | null | undefined} usage
 * @returns {string}
 */
export function usageText(usage) {
  if (!usage) return "";
  const parts = [];
  if (typeof usage.inputTokens === "number") parts.push(`${usage.inputTokens} in`);
  if (typeof usage.outputTokens === "number") parts.push(`${usage.outputTokens} out`);
  return parts.length > 0 ? `${parts.join(" · ")} tokens` : "";
}

/**
 * A message time as the row shows it (hours and minutes; the full date in its title).
 * @param {number | null | undefined} ts  milliseconds since the epoch
 * @returns {{short: string, full: string, iso: string} | null}
 */
export function timeText(ts) {
  if (typeof ts !== "number" || !Number.isFinite(ts) || ts <= 0) return null;
  const date = new Date(ts);
  const pad = (n) => String(n).padStart(2, "0");
  return {
    short: `${pad(date.getHours())}:${pad(date.getMinutes())}`,
    full: date.toLocaleString(),
    iso: date.toISOString(),
  };
}

/**
 * The rows of one view.
 *
 * Args (one object):
 *   document: the view's document.
 *   copy(near, text) -> Promise<boolean>: the clipboard (code-actions.js copyText).
 *   onResend(text, replaces): send `text` as a prompt replacing the user message `replaces`.
 *   say(text): have a confirmation read out (the view's polite region).
 * Returns {paint(node, message, context), forget(node)}: paint puts or updates the row at the
 * end of the message's element (a no-op when neither the message nor its context changed).
 *
 * @param {object} options
 * @param {Document} options.document
 * @param {(near: Element, text: string) => Promise<boolean>} options.copy
 * @param {(text: string, replaces: string) => boolean} options.onResend
 * @param {(text: string) => void} options.say
 */
export function createMessageActions({ document, copy, onResend, say }) {
  /** @type {WeakMap<Element, {message: object, ready: boolean, last: boolean, prompt: object | null,
   *   after: number, open: boolean, row: HTMLElement}>} */
  const painted = new WeakMap();
  /** @type {WeakSet<Element>} prompts whose editor is open (no DOM query per frame to know) */
  const editing = new WeakSet();
  /** @type {WeakMap<Element, {message: import("./reducer.js").Message, context: RowContext}>} */
  const latest = new WeakMap();

  /**
   * @param {string} tag
   * @param {Record<string, string>} attrs
   * @param {string} [text]
   */
  function h(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /**
   * Open the editor of a prompt in place of its text.
   * @param {HTMLElement} node  the prompt's element
   * @param {HTMLButtonElement} editButton
   */
  function openEditor(node, editButton) {
    const now = latest.get(node);
    if (!now || editing.has(node)) return;
    editing.add(node);
    const body = /** @type {HTMLElement} */ (node.querySelector(".llmsock-body"));
    const editor = h("div", { class: "llmsock-editor", role: "group", "aria-label": "Edit prompt" });
    const area = /** @type {HTMLTextAreaElement} */ (
      h("textarea", {
        class: "llmsock-editor-input",
        "aria-label": "Edited prompt",
        rows: String(Math.min(12, Math.max(2, now.message.text.split("\n").length))),
        "data-lm-suppress-shortcuts": "true",
      })
    );
    area.value = now.message.text;
    const warning = h("div", { class: "llmsock-editor-note", "data-role": "replace-warning" });
    warning.textContent = replaceWarning(now.context.after);
    const send = /** @type {HTMLButtonElement} */ (
      h("button", { type: "button", class: "llmsock-editor-send", "data-action": "resend" }, "Send")
    );
    const cancel = h("button", { type: "button", class: "llmsock-editor-cancel", "data-action": "cancel" }, "Cancel");
    const buttons = h("div", { class: "llmsock-editor-buttons" });
    buttons.append(send, cancel);
    editor.append(area, warning, buttons);
    body.hidden = true;
    body.after(editor);
    editButton.disabled = true;

    const close = () => {
      editor.remove();
      editing.delete(node);
      body.hidden = false;
      const again = latest.get(node);
      if (again) repaint(node, again.message, again.context, true);
      /** @type {HTMLElement | null} */ (node.querySelector('[data-action="edit"]'))?.focus();
    };
    const submit = () => {
      const current = latest.get(node);
      if (!current?.context.ready || area.value.trim() === "") return;
      if (onResend(area.value, current.message.id)) {
        editor.remove();
        editing.delete(node);
        body.hidden = false;
        say("Sent again");
      }
    };
    send.addEventListener("click", submit);
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      // Typing stays in the box (classic notebook hosts listen in the bubble phase), and Esc
      // closes the editor only, not the notebook's edit mode.
      if (!event.ctrlKey && !event.metaKey) event.stopPropagation();
      if (event.key === "Escape") {
        event.preventDefault();
        close();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    syncEditor(node);
    area.focus();
  }

  /** Keep an open editor's Send and warning in step with the chat (a turn elsewhere, a new answer). */
  function syncEditor(node) {
    const now = latest.get(node);
    if (!editing.has(node) || !now) return;
    const editor = /** @type {HTMLElement} */ (node.querySelector(".llmsock-editor"));
    const send = /** @type {HTMLButtonElement} */ (editor.querySelector(".llmsock-editor-send"));
    send.disabled = !now.context.ready;
    const warning = /** @type {HTMLElement} */ (editor.querySelector(".llmsock-editor-note"));
    warning.textContent = now.context.ready
      ? replaceWarning(now.context.after)
      : "Wait for the chat to be idle and connected to send.";
  }

  /**
   * @param {HTMLElement} node
   * @param {HTMLButtonElement} button
   * @param {MessageAction} action
   */
  async function act(node, button, action) {
    const now = latest.get(node);
    if (!now) return;
    const { message, context } = now;
    if (action.id === "copy") {
      const done = await copy(button, message.text);
      say(done ? "Answer copied as Markdown" : "Copy failed: the clipboard refused");
      return;
    }
    if (action.id === "edit") {
      openEditor(node, button);
      return;
    }
    if (context.prompt !== null && context.ready && onResend(context.prompt.text, context.prompt.id)) {
      say(action.id === "retry" ? "Retrying" : "Regenerating");
    }
  }

  /**
   * @param {HTMLElement} node
   * @param {import("./reducer.js").Message} message
   * @param {RowContext} context
   * @param {boolean} [force]
   */
  function repaint(node, message, context, force = false) {
    // Called for every message at every frame of a stream: an unchanged row costs a few compares.
    const open = editing.has(node);
    const before = painted.get(node);
    const same =
      before &&
      before.message === message &&
      before.ready === context.ready &&
      before.last === context.last &&
      before.prompt === context.prompt &&
      before.after === context.after &&
      before.open === open;
    if (same && !force) return;
    const actions = actionsFor(message, context);
    const row = h("div", { class: "llmsock-actions", "data-role": "message-actions", "aria-live": "off" });
    const info = h("span", { class: "llmsock-meta" });
    const time = timeText(/** @type {any} */ (message).ts);
    if (time) info.append(h("time", { datetime: time.iso, title: time.full, class: "llmsock-time" }, time.short));
    const replaced = /** @type {any} */ (message).replaced;
    if (message.role === "user" && typeof replaced === "number" && replaced > 0) {
      info.append(h("span", { class: "llmsock-marker", "data-role": "replaced" }, replacedText(replaced)));
    }
    const usage = message.role === "assistant" ? usageText(message.usage) : "";
    if (usage) info.append(h("span", { class: "llmsock-usage", "data-role": "usage" }, usage));
    row.append(info);
    for (const action of actions) {
      const button = /** @type {HTMLButtonElement} */ (
        h(
          "button",
          {
            type: "button",
            class: "llmsock-msg-action",
            "data-action": action.id,
            "aria-label": action.name,
            title: action.name,
          },
          action.label,
        )
      );
      button.disabled = !action.enabled || (action.id === "edit" && open);
      button.addEventListener("click", () => void act(node, button, action));
      row.append(button);
    }
    // Focus stays on a button that is rebuilt (a turn ended while it had focus).
    const focused = before?.row.contains(document.activeElement)
      ? document.activeElement?.getAttribute("data-action")
      : null;
    if (before) before.row.replaceWith(row);
    else node.append(row);
    if (focused) /** @type {HTMLElement | null} */ (row.querySelector(`[data-action="${focused}"]`))?.focus();
    const { ready, last, prompt, after } = context;
    painted.set(node, { message, ready, last, prompt, after, open, row });
  }

  /**
   * Put or update the row of `node`.
   * @param {HTMLElement} node
   * @param {import("./reducer.js").Message} message
   * @param {RowContext} context
   */
  function paint(node, message, context) {
    latest.set(node, { message, context });
    if (message.status === "streaming" && !painted.has(node)) return; // nothing to show yet
    repaint(node, message, context);
    syncEditor(node);
  }

  return { paint };
}
