// A tool call that waits for the user's approval: a tool that changes state (run_code, a tool
// registered with approval=True) runs only after the user approves that call. The first half
// is pure: the texts, the countdown, the code a run_code call would run. The second builds the
// part of a tool card that asks (steps.js places it): what the call will do, the time left and
// Approve / Deny buttons; it keeps the buttons of every waiting card in step with the
// connection and ticks their countdowns, once a second, while any waits.
//
// The code of a run_code call is shown highlighted through the sanitizing Markdown renderer
// (markdown.js), as an answer's code is; everything else reaches the DOM as textContent.

import { reveal } from "./invisible.js";

/** The tool whose `code` argument is shown as code. */
export const RUN_CODE = "run_code";

/** @type {Record<string, string>} what the card says of each approval */
const APPROVAL_TEXT = {
  pending: "waiting for approval",
  approved: "approved",
  denied: "denied by you",
  timeout: "not approved in time",
  aborted: "stopped",
};

/**
 * What a card says of where its call stands ("" for a call that needed no approval).
 * @param {string | undefined} approval
 * @returns {string}
 */
export function approvalText(approval) {
  return approval ? (APPROVAL_TEXT[approval] ?? approval) : "";
}

/**
 * The time left as `m:ss`, whole seconds rounded up (never below 0:00).
 * @param {number} ms
 * @returns {string}
 */
export function countdownText(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

/**
 * When a waiting call's time runs out, by this page's clock; null if the server gave no time.
 * The server's timestamp says how long it has waited already (a view that joins late, a
 * replay), but a clock ahead of ours never adds time, and one far behind never takes more
 * than the whole timeout.
 * @param {{timeoutMs?: number | null, askedAt?: number | null}} tool
 * @param {number} now  this page's clock, ms since the epoch
 * @returns {number | null}
 */
export function deadlineOf(tool, now) {
  if (typeof tool.timeoutMs !== "number") return null;
  const waited = typeof tool.askedAt === "number" ? Math.min(Math.max(0, now - tool.askedAt), tool.timeoutMs) : 0;
  return now + tool.timeoutMs - waited;
}

/**
 * The code a run_code call would run, or null (another tool, or arguments without a code string).
 * @param {{name: string, arguments: string}} tool
 * @returns {string | null}
 */
export function codeOf(tool) {
  if (tool.name !== RUN_CODE) return null;
  try {
    const args = JSON.parse(tool.arguments);
    return args !== null && typeof args === "object" && typeof args.code === "string" ? args.code : null;
  } catch {
    return null;
  }
}

/**
 * `code` as a fenced Markdown block of `language`: the fence is longer than any run of
 * backticks in the code, so no code can close it early.
 * @param {string} code
 * @param {string} [language]
 * @returns {string}
 */
export function fenced(code, language = "python") {
  const longest = Math.max(0, ...[...code.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return `${fence}${language}\n${code}\n${fence}`;
}

/**
 * @param {Document} document
 * @param {string} tag
 * @param {Record<string, string>} attrs
 * @param {string | null} [text]
 */
function h(document, tag, attrs, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

/**
 * Make the approval part of the tool cards of one view.
 *
 * Args (one object):
 *   document; renderMarkdown(text) -> sanitized HTML (markdown.js), for run_code's code.
 *   onApprove(callId, approved) -> true if the answer was sent.
 *   say(text): read out to screen readers (the view's announcer).
 *   timers: {setTimeout, clearTimeout, now} (now: ms since the epoch), injectable for tests.
 * Returns: {code(tool) -> element | null, ask(tool) -> element, setConnected(open), destroy()}.
 *
 * @param {object} options
 * @param {Document} options.document
 * @param {(text: string) => string} options.renderMarkdown
 * @param {(callId: string, approved: boolean) => boolean} options.onApprove
 * @param {(text: string) => void} [options.say]
 * @param {{setTimeout: (fn: () => void, ms: number) => any, clearTimeout: (handle: any) => void, now: () => number}} options.timers
 */
export function createApprovals({ document, renderMarkdown, onApprove, say = () => {}, timers }) {
  let connected = false;
  /** @type {Map<string, boolean>} call id -> the answer this view sent */
  const answered = new Map();
  /** @type {Map<string, number | null>} call id -> its deadline by this page's clock */
  const deadlines = new Map();
  /** @type {Map<string, {group: HTMLElement, buttons: HTMLButtonElement[], timer: HTMLElement, note: HTMLElement}>} */
  const waiting = new Map(); // the asking part of each waiting card shown
  let tick = null;

  function paintButtons(id) {
    const part = waiting.get(id);
    if (!part) return;
    const sent = answered.has(id);
    for (const button of part.buttons) button.disabled = sent || !connected;
    part.note.textContent = sent ? (answered.get(id) ? "approving…" : "denying…") : connected ? "" : "not connected";
  }

  function paintTimer(id, now) {
    const part = waiting.get(id);
    const deadline = deadlines.get(id);
    if (!part || deadline === null || deadline === undefined) return;
    part.timer.textContent = `${countdownText(deadline - now)} left`;
  }

  // One timer for every countdown shown, at the next whole second of the soonest; none when
  // nothing waits. A card no longer in the page (cleared, replaced) stops counting.
  function schedule() {
    if (tick !== null) timers.clearTimeout(tick);
    tick = null;
    const now = timers.now();
    let next = Number.POSITIVE_INFINITY;
    for (const id of waiting.keys()) {
      const deadline = deadlines.get(id);
      if (deadline === null || deadline === undefined || deadline <= now) continue;
      next = Math.min(next, (deadline - now) % 1000 || 1000);
    }
    if (next !== Number.POSITIVE_INFINITY) tick = timers.setTimeout(onTick, next);
  }

  function onTick() {
    tick = null;
    const now = timers.now();
    for (const [id, part] of waiting) {
      if (part.group.isConnected) paintTimer(id, now);
      else waiting.delete(id);
    }
    schedule();
  }

  function decide(id, approved) {
    if (answered.has(id) || !connected) return;
    if (!onApprove(id, approved)) return;
    answered.set(id, approved);
    const group = waiting.get(id)?.group;
    // A disabled button loses the focus: a keyboard user keeps it on the card's summary.
    const focused = group?.contains(document.activeElement) === true;
    paintButtons(id);
    if (focused)
      /** @type {HTMLElement | null | undefined} */ (group?.closest("details")?.querySelector("summary"))?.focus();
  }

  /**
   * The code a run_code call would run, highlighted, or null for any other call.
   * @param {import("./protocol.js").ToolRecord} tool
   * @returns {HTMLElement | null}
   */
  function code(tool) {
    const text = codeOf(tool);
    if (text === null) return null;
    const block = h(document, "div", { class: "llmsock-md llmsock-tool-code" });
    block.innerHTML = renderMarkdown(fenced(text));
    return block;
  }

  /**
   * The asking part of a waiting call's card: the question, the time left, Approve and Deny.
   * The first time a call is seen waiting, screen readers are told (its answer may be busy).
   * @param {import("./protocol.js").ToolRecord} tool
   * @returns {HTMLElement}
   */
  function ask(tool) {
    const id = tool.id;
    const name = reveal(tool.name || "(unnamed tool)");
    const group = h(document, "div", { class: "llmsock-approval", role: "group", "aria-label": `Approve ${name}?` });
    const question = h(
      document,
      "div",
      { class: "llmsock-approval-question" },
      `${name} runs only after you approve this call.`,
    );
    // A timer is not a live region: the seconds are not read out as they change.
    const timer = h(document, "span", { class: "llmsock-approval-timer", role: "timer", "aria-live": "off" });
    const note = h(document, "span", { class: "llmsock-approval-note" });
    const approve = /** @type {HTMLButtonElement} */ (
      h(document, "button", { type: "button", class: "llmsock-approve", "aria-label": `Approve ${name}` }, "Approve")
    );
    const deny = /** @type {HTMLButtonElement} */ (
      h(document, "button", { type: "button", class: "llmsock-deny", "aria-label": `Deny ${name}` }, "Deny")
    );
    approve.addEventListener("click", () => decide(id, true));
    deny.addEventListener("click", () => decide(id, false));
    const row = h(document, "div", { class: "llmsock-approval-row" });
    row.append(approve, deny, timer, note);
    group.append(question, row);
    if (!deadlines.has(id)) {
      deadlines.set(id, deadlineOf(tool, timers.now()));
      say(`${name} waits for your approval`);
    }
    waiting.set(id, { group, buttons: [approve, deny], timer, note });
    paintButtons(id);
    paintTimer(id, timers.now());
    schedule();
    return group;
  }

  /**
   * The connection opened or closed: the waiting cards' buttons follow.
   * @param {boolean} open
   */
  function setConnected(open) {
    if (open === connected) return;
    connected = open;
    // An answer sent before the connection dropped may never have arrived: a call that still
    // waits once it is back can be answered again (the server takes the first answer only).
    if (open) for (const id of waiting.keys()) answered.delete(id);
    for (const id of waiting.keys()) paintButtons(id);
  }

  /**
   * A call's card no longer asks (decided, or gone): forget its asking part.
   * @param {string} id
   */
  function settled(id) {
    if (waiting.delete(id)) schedule();
  }

  function destroy() {
    if (tick !== null) timers.clearTimeout(tick);
    tick = null;
    waiting.clear();
  }

  return { code, ask, settled, setConnected, destroy };
}
