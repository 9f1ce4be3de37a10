// The DOM: builds the chat inside anywidget's `el` and paints states from the reducer. It owns
// no protocol logic. Painting happens at most once per animation frame; messages are compared
// by identity (the reducer replaces only the objects that changed), so a streaming delta
// re-renders one message, never the transcript, and of that message only the blocks that can
// still change (incremental.js). Text reaches the DOM only as textContent or as
// HTML from the sanitizing markdown renderer. An answer's reasoning and tool calls are painted
// by steps.js, in place, so their open/closed state survives the deltas that follow.
//
// Quiet when all is well: under the composer, one line says how the chat is connected, with a
// "details" disclosure that holds why that transport was taken (the rungs that failed first)
// and where the chat is saved. Those lines come out of it only when they matter: the
// connection is down, or the chat could not be restored. Diagnostics are shown by level, never
// by code: warnings and errors are lines of the transcript, info notes a quiet line here.
// Next to it, a "settings" disclosure holds the model settings sent with each prompt
// (settings.js).
//
// The message box's keys (Enter, Esc, Up/Down recall, the Stop shortcut), its growth and the
// warning before a very large message are composer.js's; this module wires them. So are each
// message's actions (Copy, Regenerate or Retry, Edit; message-actions.js), the Clear button
// with its confirmation (clear.js), and the question of a tool call that waits for the user's
// approval (approval.js, in the call's card).

import { createApprovals } from "./approval.js";
import { paintChips } from "./chips.js";
import { createClearControl } from "./clear.js";
import { copyText, createCodeActions } from "./code-actions.js";
import { createComposer } from "./composer.js";
import { createHeader } from "./header.js";
import { reveal } from "./invisible.js";
import { createMessageActions } from "./message-actions.js";
import { createSettingsPanel, DEFAULT_SETTINGS } from "./settings.js";
import { createSteps } from "./steps.js";
import { breakLongRuns } from "./wrap.js";

const BUSY = new Set(["generating", "paused"]);

/** @type {WeakMap<Node, string>} the text each element shows, before reveal() */
const shownText = new WeakMap();

/**
 * The status line for a connection state and an optional error from the kernel.
 * @param {import("./reducer.js").Connection} connection
 * @param {string | null} [kernelError]
 * @returns {string}
 */
export function statusText(connection, kernelError = null) {
  switch (connection.state) {
    case "open":
      if (kernelError) return `connected · ${connection.transport || "websocket"} — error: ${kernelError}`;
      return `connected · ${connection.transport || "websocket"}`;
    case "connecting":
      return "connecting…";
    case "closed":
      if (connection.retryInMs !== null && connection.retryInMs !== undefined) {
        return `disconnected — retrying in ${Math.max(1, Math.round(connection.retryInMs / 1000))} s`;
      }
      return "disconnected";
    case "error":
      return connection.detail ? `error: ${connection.detail}` : "error";
    default:
      return String(connection.state);
  }
}

/**
 * The text of a notice: a diagnostic (`Warning: message (code)`) or an error reply.
 * @param {import("./reducer.js").Notice} notice
 * @returns {string}
 */
export function noticeText(notice) {
  if (notice.kind === "reply") return `Error ${notice.code}: ${notice.message}`;
  const level = String(notice.level || "info");
  const label = `${level.charAt(0).toUpperCase()}${level.slice(1)}`;
  return notice.message ? `${label}: ${notice.message} (${notice.code})` : `${label}: ${notice.code}`;
}

/**
 * Whether the connection's detail matters enough to be shown outside the disclosure: no rung
 * works now, so why they failed is the news. (In an error the status line says it already.)
 * @param {import("./reducer.js").Connection} connection
 * @returns {boolean}
 */
export function detailMatters(connection) {
  return connection.state === "closed" && Boolean(connection.detail);
}

/**
 * Make an element with attributes and (revealed) text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {Document} document
 * @param {K} tag
 * @param {Record<string, string>} [attrs]
 * @param {string | null} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(document, tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) setText(node, text);
  return node;
}

/**
 * Show `text` in `node` as text, revealed and wrappable (a no-op when it is already shown).
 * @param {HTMLElement} node
 * @param {string} text
 */
function setText(node, text) {
  if (shownText.get(node) === text) return;
  shownText.set(node, text);
  node.textContent = reveal(text);
  breakLongRuns(node);
}

function interleave(messages, notices) {
  // A notice sits after the message count it was created at ("in place").
  const items = [];
  let n = 0;
  for (let i = 0; i <= messages.length; i += 1) {
    while (n < notices.length && notices[n].afterIndex <= i) items.push(notices[n++]);
    if (i < messages.length) items.push(messages[i]);
  }
  while (n < notices.length) items.push(notices[n++]);
  return items;
}

/**
 * Build the chat UI in `el`.
 *
 * Args (second argument, one object):
 *   renderMarkdown(text) -> sanitized HTML string; when it has `into(element, text, streaming)`
 *     (markdown.js), answers are painted with that, incrementally, instead.
 *   onSend(text, attachments) -> true if the prompt was sent (the textarea is then cleared);
 *     attachments: the `@name` mentions the kernel described ([] without `kernel`).
 *   kernel: the kernel's requests (kernel-requests.js): `@name` completion and attachments, and
 *     "Explain the last error"; none (the default): neither.
 *   onStop() -> asks the server to abort the running turn.
 *   requestFrame / cancelFrame: requestAnimationFrame and its cancel (injectable).
 *   settings: the model settings to show first; onSettings(change): the user changed some.
 *   onResend(text, replaces) -> true if a prompt replacing the user message `replaces` was sent.
 *   onClear() -> true if the request to clear the chat was sent.
 *   onApprove(callId, approved) -> true if the answer to a tool call that waits for approval
 *     was sent (approval.js paints the question in the call's card).
 *   timers: {setTimeout, clearTimeout, now} for the approvals' countdown (now: ms since the
 *     epoch; the page's by default).
 * Returns: {update(state), flush(), destroy(), setStore(), markSaved(), setSettings(settings),
 *   setIdentity({session, model, models})} (the header's session name, the kernel's default
 *   model and the models set up there).
 *
 * @param {HTMLElement} el
 * @param {object} options
 * @param {((text: string) => string) & {into?: (element: HTMLElement, text: string, streaming?: boolean) => boolean}} options.renderMarkdown
 * @param {(text: string) => boolean} options.onSend
 * @param {() => unknown} options.onStop
 * @param {(fn: () => void) => any} [options.requestFrame]
 * @param {(handle: any) => void} [options.cancelFrame]
 * @param {import("./settings.js").ModelSettings} [options.settings]
 * @param {(change: Partial<import("./settings.js").ModelSettings>) => void} [options.onSettings]
 * @param {(text: string, replaces: string) => boolean} [options.onResend]
 * @param {() => boolean} [options.onClear]
 * @param {(near: Element, text: string) => Promise<boolean>} [options.copy]
 * @param {import("./kernel-requests.js").KernelRequests | null} [options.kernel]
 * @param {(callId: string, approved: boolean) => boolean} [options.onApprove]
 * @param {{setTimeout: (fn: () => void, ms: number) => any, clearTimeout: (handle: any) => void, now: () => number}} [options.timers]
 */
export function createView(
  el,
  {
    renderMarkdown,
    onSend,
    onStop,
    requestFrame,
    cancelFrame,
    settings = DEFAULT_SETTINGS,
    onSettings = () => {},
    onResend = () => false,
    onClear = () => false,
    copy = copyText,
    kernel = null,
    onApprove = () => false,
    timers,
  },
) {
  const document = el.ownerDocument;
  const win = /** @type {Window} */ (document.defaultView);
  const raf = requestFrame ?? ((fn) => win.requestAnimationFrame(fn));
  const caf = cancelFrame ?? ((handle) => win.cancelAnimationFrame(handle));

  const root = h(document, "div", { class: "llmsock-chat" });
  const transcript = h(document, "div", {
    class: "llmsock-transcript",
    role: "log",
    "aria-live": "polite",
    "aria-label": "Conversation",
    tabindex: "0",
  });
  const composer = h(document, "div", { class: "llmsock-composer" });
  const textarea = h(document, "textarea", {
    class: "llmsock-input",
    "aria-label": "Message",
    rows: "1",
    placeholder: "Message — Enter to send, Shift+Enter for a new line",
    // JupyterLab: keep notebook shortcuts (a, b, d d, Shift+Enter) off keys typed here.
    "data-lm-suppress-shortcuts": "true",
  });
  const sendButton = h(document, "button", { type: "button", class: "llmsock-send" }, "Send");
  const stopButton = h(document, "button", { type: "button", class: "llmsock-stop" }, "Stop");
  const buttons = h(document, "div", { class: "llmsock-buttons" });
  // Under the composer: the status line, the "details" disclosure and the info notes on one
  // row; a line that matters (the connection is down, the chat was not restored) under it.
  const bar = h(document, "div", { class: "llmsock-bar" });
  const status = h(document, "div", {
    class: "llmsock-status",
    role: "status",
    "data-connection": "connecting",
    "data-transport": "websocket",
  });
  const more = h(document, "details", { class: "llmsock-more", "data-role": "details" });
  more.append(h(document, "summary", { class: "llmsock-more-summary" }, "details"));
  const moreBody = h(document, "div", { class: "llmsock-more-body" });
  more.append(moreBody);
  const notes = h(document, "div", { class: "llmsock-notes", "data-role": "notes", "aria-live": "polite" });
  const alerts = h(document, "div", { class: "llmsock-alerts", "data-role": "alerts" });
  // Why this transport (the ladder's choice and what failed first) and where the chat is saved.
  const detail = h(document, "div", { class: "llmsock-detail", "data-role": "connection-detail" });
  const store = h(document, "div", { class: "llmsock-detail", "data-role": "store" });
  moreBody.append(detail, store);
  const settingsPanel = createSettingsPanel(document, { initial: settings, onChange: onSettings });
  // Reads out what an action did ("Answer copied as Markdown", "Chat cleared"): not news of the log.
  const announcer = h(document, "div", {
    class: "llmsock-sr-only",
    role: "status",
    "aria-live": "polite",
    "data-role": "announcer",
  });
  const say = (text) => {
    announcer.textContent = ""; // the same words again must be read again
    announcer.textContent = text;
  };
  const clear = createClearControl({ document, onClear, say });
  bar.append(status, more, settingsPanel.element, clear.element, notes);
  buttons.append(sendButton, stopButton);
  composer.append(textarea, buttons);
  // The session's name, its model and tokens over the transcript; the empty state in it.
  const header = createHeader({
    onExplain: kernel ? () => kernel.explain() : null,
    document,
    host: el,
    say: (text) => say(text),
    onModel: (name) => {
      chosenModel = name;
      onSettings({ model: name });
      if (current !== null) paintHeader(current);
    },
    onExample: (text) => {
      textarea.value = text;
      const { Event } = /** @type {Window & typeof globalThis} */ (win);
      textarea.dispatchEvent(new Event("input", { bubbles: true })); // the composer resizes
      textarea.focus();
    },
  });
  /** @type {{session: string, model: string, models: string[]}} */
  let identity = { session: "", model: "", models: [] };
  /** @type {string | null} the chat's model setting */
  let chosenModel = settings.model ?? null;
  root.append(header.header, transcript, composer, bar, alerts, announcer);
  more.hidden = true;
  el.append(root);
  // Copy (and, with the notebook plugin, insert) on each finished code block of an answer.
  const codeActions = createCodeActions({ host: el, announcer: root });
  const messageActions = createMessageActions({ document, copy, onResend, say });
  // What a tool call that waits for approval asks, in its card (steps.js places it).
  const approvals = createApprovals({
    document,
    renderMarkdown,
    onApprove,
    say,
    timers: timers ?? {
      setTimeout: (fn, ms) => win.setTimeout(fn, ms),
      clearTimeout: (handle) => win.clearTimeout(handle),
      now: () => Date.now(),
    },
  });

  let current = null; // the state last painted
  let pending = null; // the state to paint at the next frame
  let frame = null;
  let shownMessages = []; // message objects painted, by index
  let messageEls = [];
  const noticeEls = new Map(); // notice id -> element
  const stepsOf = new WeakMap(); // assistant message element -> its steps painter
  let retry = new Set(); // answer elements whose text is still to be painted in full
  let again = new Set(); // those of the last frame, painted again in this one
  let painted = new Set(); // message elements whose text was painted in this frame

  function canSend() {
    return current !== null && current.connection.state === "open" && textarea.value.trim() !== "";
  }

  function paintControls() {
    sendButton.disabled = !canSend();
    const busy = current !== null && BUSY.has(current.status);
    stopButton.disabled = !(busy && current.connection.state === "open");
  }

  function paintBody(node, message) {
    painted.add(node);
    const body = node.querySelector(".llmsock-body");
    if (message.role !== "user" && typeof renderMarkdown.into === "function") {
      // Incremental: only the blocks that can still change are rendered again.
      const whole = renderMarkdown.into(body, message.text, message.status === "streaming");
      if (!whole) retry.add(node);
      codeActions.decorate(body, whole && message.status !== "streaming");
      return;
    }
    if (message.role === "user") body.textContent = reveal(message.text);
    else body.innerHTML = renderMarkdown(message.text);
    breakLongRuns(body);
    if (message.role === "user") paintChips(node, message.attachments); // the context it carried
    if (message.role !== "user") codeActions.decorate(body, message.status !== "streaming");
  }

  function paintFooter(node, message) {
    node.querySelector(".llmsock-footer")?.remove();
    let footer = null;
    if (message.status === "aborted") {
      footer = h(document, "div", { class: "llmsock-footer" });
      footer.append(h(document, "span", { class: "llmsock-marker" }, "(stopped)"));
    } else if (message.status === "length") {
      footer = h(document, "div", { class: "llmsock-footer" });
      footer.append(h(document, "span", { class: "llmsock-marker" }, "(cut off: length limit)"));
    } else if (message.status === "error") {
      const error = message.error || { code: "model_error", message: "" };
      footer = h(document, "div", { class: "llmsock-footer" });
      footer.append(h(document, "div", { class: "llmsock-error" }, `Error ${error.code}: ${error.message}`));
    }
    if (footer) node.insertBefore(footer, node.querySelector(".llmsock-actions"));
  }

  /**
   * The message's status on its element; an answer whose text is still being shown in steps
   * (the painter's budget) stays "streaming" until all of it shows.
   */
  function paintStatusOf(node, message) {
    const status = retry.has(node) && message.status !== "streaming" ? "streaming" : message.status;
    node.setAttribute("data-status", status);
    // Screen readers wait for a streaming answer instead of reading every partial render.
    node.setAttribute("aria-busy", status === "streaming" ? "true" : "false");
  }

  function paintMessage(node, message, previous) {
    const steps = stepsOf.get(node);
    if (steps && (!previous || previous.reasoning !== message.reasoning)) {
      steps.paintReasoning(message.reasoning ?? "");
    }
    if (steps && (!previous || previous.tools !== message.tools)) steps.paintTools(message.tools ?? []);
    // The end of a stream repaints too: a partial last line held back while streaming shows now.
    const ended = previous?.status === "streaming" && message.status !== "streaming";
    const behind = again.has(node); // its text was still being shown in steps
    if (!previous || previous.text !== message.text || previous.role !== message.role || ended || behind) {
      paintBody(node, message);
    }
    paintStatusOf(node, message);
    if (!previous || previous.status !== message.status || previous.error !== message.error) {
      paintFooter(node, message);
    }
  }

  function createMessage(message) {
    const node = h(document, "div", { class: "llmsock-msg", "data-role": message.role });
    if (message.role === "assistant") {
      const container = h(document, "div", { class: "llmsock-steps" });
      node.append(container);
      stepsOf.set(node, createSteps(container, approvals));
    }
    node.append(h(document, "div", { class: message.role === "user" ? "llmsock-body" : "llmsock-body llmsock-md" }));
    paintMessage(node, message, null);
    return node;
  }

  function paintTranscript(state) {
    const nextEls = state.messages.map((message, i) => {
      const previous = shownMessages[i];
      const node = messageEls[i];
      if (previous === message) return node; // unchanged: no work at all
      if (previous && node && previous.id === message.id && previous.role === message.role) {
        paintMessage(node, message, previous);
        return node;
      }
      return createMessage(message);
    });
    const liveNotices = new Set(state.notices.map((n) => n.id));
    for (const id of [...noticeEls.keys()]) if (!liveNotices.has(id)) noticeEls.delete(id);
    for (const notice of state.notices) {
      if (!noticeEls.has(notice.id)) {
        const attrs = { class: "llmsock-notice", "data-level": notice.level ?? "error", "data-code": notice.code };
        noticeEls.set(notice.id, h(document, "div", attrs, noticeText(notice)));
      }
    }
    const byMessage = new Map(state.messages.map((m, i) => [m, nextEls[i]]));
    const wanted = interleave(state.messages, state.notices).map(
      (item) => byMessage.get(item) ?? noticeEls.get(item.id),
    );
    // Put the wanted nodes in order, moving only those out of place; then drop the rest.
    wanted.forEach((node, i) => {
      if (transcript.children[i] !== node) transcript.insertBefore(node, transcript.children[i] ?? null);
    });
    while (transcript.children.length > wanted.length) transcript.lastElementChild?.remove();
    shownMessages = state.messages;
    messageEls = nextEls;
  }

  // The header; the empty state, in the transcript while it has nothing else (paintTranscript
  // drops it as soon as there is a message or a notice). Not before the history came: a chat
  // being restored is not a new one.
  function paintHeader(state) {
    const empty = header.paint({ ...identity, chosen: chosenModel, messages: state.messages });
    const show = empty && state.synced && state.notices.length === 0;
    if (show && header.empty.parentNode !== transcript) transcript.append(header.empty);
    if (!show && header.empty.parentNode === transcript) header.empty.remove();
  }

  function setIdentity(next) {
    identity = {
      session: String(next.session ?? ""),
      model: String(next.model ?? ""),
      models: Array.isArray(next.models) ? next.models.map(String) : [],
    };
    if (current !== null) paintHeader(current);
  }

  // Settings changed elsewhere (the traits): the panel shows them, the header its model.
  function setSettings(next) {
    settingsPanel.set(next);
    chosenModel = next.model ?? null;
    if (current !== null) paintHeader(current);
  }

  // Each message's row of actions, and the Clear button: what they offer depends on the
  // message, its place, and whether the chat is idle and connected.
  function paintActions(state) {
    const ready = state.connection.state === "open" && state.status === "idle" && !(state.waiting > 0);
    const messages = state.messages;
    messages.forEach((message, i) => {
      const before = messages[i - 1];
      messageActions.paint(messageEls[i], message, {
        ready,
        last: i === messages.length - 1,
        prompt: message.role === "assistant" && before?.role === "user" ? before : null,
        after: messages.length - i,
      });
    });
    clear.paint({ count: messages.length, ready });
  }

  // A line goes under the bar while it matters, into the disclosure otherwise; the disclosure
  // is there only when it holds something.
  function place(node, matters) {
    const parent = matters ? alerts : moreBody;
    // The connection's line comes first in either place.
    if (node.parentNode !== parent)
      parent.insertBefore(node, node === detail && store.parentNode === parent ? store : null);
    more.hidden = ![...moreBody.children].some((child) => child.textContent !== "");
  }

  function paintStatus({ connection, kernelError }) {
    status.setAttribute("data-connection", connection.state);
    status.setAttribute("data-transport", connection.transport || "websocket");
    setText(status, statusText(connection, kernelError));
    status.title = reveal(connection.detail || "");
    setText(detail, connection.detail || "");
    place(detail, detailMatters(connection));
  }

  function paintNotes(infos) {
    notes.replaceChildren(
      ...infos.map((info) =>
        h(document, "span", { class: "llmsock-info", "data-code": info.code }, info.message || info.code),
      ),
    );
  }

  // The notebook took a snapshot of this view's session: say how much it holds (the file gets
  // it at the next save).
  function markSaved(snapshot) {
    const count = Array.isArray(snapshot?.messages) ? snapshot.messages.length : 0;
    store.setAttribute("data-snapshot-messages", String(count));
    store.title = snapshot ? `${count} messages in the notebook's copy of this chat` : "";
  }

  // Where the chat is saved; `problem` (the notebook's copy could not be restored) matters.
  function setStore(text, problem = "") {
    setText(store, text ? `chat saved in: ${text}${problem ? ` · ${problem}` : ""}` : "");
    place(store, Boolean(text && problem));
  }

  // Whether the reader is at the bottom, as of the last scroll: then new content follows the
  // tail. Kept from scroll events so a frame never reads a layout it has just changed.
  let following = true;
  const onScroll = () => {
    following = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight <= 24;
  };

  function schedule() {
    if (frame === null)
      frame = raf(() => {
        frame = null;
        flush();
      });
  }

  function flush() {
    if (frame !== null) caf(frame);
    frame = null;
    const state = pending;
    pending = null;
    again = retry;
    retry = new Set();
    painted = new Set();
    let grew = false;
    if (state !== null && state !== current) {
      // Before the transcript: the cards that ask for approval paint their buttons by it.
      approvals.setConnected(state.connection.state === "open");
      if (current === null || state.messages !== current.messages || state.notices !== current.notices) {
        paintTranscript(state);
        grew = true;
      }
      if (current === null || state.messages !== current.messages || state.synced !== current.synced) {
        paintHeader(state);
      }
      if (current === null || state.connection !== current.connection || state.kernelError !== current.kernelError) {
        paintStatus(state);
      }
      if (current === null || state.infos !== current.infos) paintNotes(state.infos);
      current = state;
      paintControls();
      paintActions(state);
    }
    // Answers whose slow tail was left for this frame.
    for (const node of again) {
      const index = messageEls.indexOf(node);
      if (index === -1 || painted.has(node)) continue;
      paintBody(node, shownMessages[index]);
      paintStatusOf(node, shownMessages[index]);
      grew = true;
    }
    // One write, after every change of this frame.
    if (grew && following) transcript.scrollTop = transcript.scrollHeight;
    if (retry.size > 0) schedule();
  }

  function update(state) {
    pending = state;
    schedule();
  }

  function submit() {
    const text = textarea.value;
    if (!canSend() || !composerKeys.mayGo(text)) return;
    composerKeys.send(text, onSend); // with the attachments of its mentions (composer.js)
    paintControls();
  }

  // The box's keys (Enter, Esc, Up/Down recall, the Stop shortcut), its growth, the large-text
  // warning (composer.js).
  const composerKeys = createComposer({
    root,
    textarea,
    stopButton,
    submit,
    stop: () => onStop(),
    changed: paintControls,
    kernel,
  });
  root.insertBefore(composerKeys.warning, bar);
  const onSendClick = () => submit();
  const onStopClick = () => onStop();
  transcript.addEventListener("scroll", onScroll, { passive: true });
  sendButton.addEventListener("click", onSendClick);
  stopButton.addEventListener("click", onStopClick);
  sendButton.disabled = true;
  stopButton.disabled = true;

  function destroy() {
    if (frame !== null) caf(frame);
    frame = null;
    pending = null;
    transcript.removeEventListener("scroll", onScroll);
    composerKeys.destroy();
    sendButton.removeEventListener("click", onSendClick);
    stopButton.removeEventListener("click", onStopClick);
    settingsPanel.destroy();
    clear.destroy();
    codeActions.destroy();
    approvals.destroy();
    root.remove();
  }

  return { update, flush, destroy, setStore, markSaved, setSettings, setIdentity };
}
