// Clearing the chat: a "Clear" button in the bar under the composer, and a confirmation in
// place before anything is lost. The server clears the session for every view, its saved copy
// and the model's context (control `clear_history`, docs/protocol.md section 9.4); there is no
// undo, so the confirmation says how many messages go, and Cancel (or Esc) is where focus lands.
// `%llmsock clear` does the same from a cell.

/**
 * What the confirmation asks.
 * @param {number} count  messages in the transcript
 * @returns {string}
 */
export function clearQuestion(count) {
  return `Clear all ${count} message${count === 1 ? "" : "s"} of this chat? They cannot be brought back.`;
}

/**
 * The Clear button and its confirmation.
 *
 * Args (one object): document; onClear() -> true if the request was sent; say(text) reads a
 * confirmation out. Returns {element, paint({count, ready}), destroy()}: `ready` is true when
 * the chat is connected and idle (the server refuses to clear during a turn).
 *
 * @param {object} options
 * @param {Document} options.document
 * @param {() => boolean} options.onClear
 * @param {(text: string) => void} options.say
 */
export function createClearControl({ document, onClear, say }) {
  const element = document.createElement("span");
  element.className = "llmsock-clear";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "llmsock-clear-button";
  button.setAttribute("data-action", "clear");
  button.setAttribute("aria-label", "Clear the chat");
  button.textContent = "Clear";
  button.disabled = true;
  const confirm = document.createElement("div");
  confirm.className = "llmsock-confirm";
  confirm.setAttribute("role", "group");
  confirm.setAttribute("aria-label", "Confirm clearing the chat");
  confirm.hidden = true;
  const question = document.createElement("span");
  question.className = "llmsock-confirm-text";
  const yes = document.createElement("button");
  yes.type = "button";
  yes.setAttribute("data-action", "confirm-clear");
  yes.className = "llmsock-confirm-yes";
  yes.textContent = "Clear chat";
  const no = document.createElement("button");
  no.type = "button";
  no.setAttribute("data-action", "cancel-clear");
  no.textContent = "Cancel";
  confirm.append(question, yes, no);
  element.append(button, confirm);

  let count = 0;
  let ready = false;

  function close() {
    confirm.hidden = true;
    button.hidden = false;
    button.focus();
  }

  const onButton = () => {
    if (!ready || count === 0) return;
    question.textContent = clearQuestion(count);
    button.hidden = true;
    confirm.hidden = false;
    no.focus();
  };
  const onYes = () => {
    if (!ready) return;
    if (onClear()) say("Chat cleared");
    close();
  };
  const onKey = (/** @type {KeyboardEvent} */ event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    event.stopPropagation(); // only the confirmation closes, the notebook stays in edit mode
    close();
  };
  button.addEventListener("click", onButton);
  yes.addEventListener("click", onYes);
  no.addEventListener("click", close);
  confirm.addEventListener("keydown", onKey);

  /** @param {{count: number, ready: boolean}} now */
  function paint(now) {
    count = now.count;
    ready = now.ready;
    button.disabled = !(ready && count > 0);
    yes.disabled = !ready;
    if (!confirm.hidden) {
      if (count === 0) close();
      else question.textContent = clearQuestion(count);
    }
  }

  function destroy() {
    button.removeEventListener("click", onButton);
    yes.removeEventListener("click", onYes);
    no.removeEventListener("click", close);
    confirm.removeEventListener("keydown", onKey);
  }

  return { element, paint, destroy };
}
