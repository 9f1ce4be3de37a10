// The widget's state and its one transition function. Pure: reduce(state, event) -> state, with
// events as protocol.parse() makes them plus `{type: "connection", ...}` from the client.
// Updates are immutable; an event that changes nothing returns the same state object, and an
// event that changes one message copies the array and replaces only that message object, so
// the view can compare messages by identity and re-render just the ones that changed.

import { assistantId, finishStatus } from "./protocol.js";

/** @typedef {import("./protocol.js").Message} Message */
/** @typedef {import("./protocol.js").ToolRecord} ToolRecord */

/**
 * A warning or error diagnostic, or an error reply: a line of the transcript, shown after the
 * message count it arrived at.
 * @typedef {{id: string, afterIndex: number, kind: "diagnostic" | "reply", level?: string, code: string,
 *   message: string}} Notice
 */

/**
 * An info diagnostic: a quiet note of the status area, about the moment (see applyTurnStart).
 * @typedef {{id: string, code: string, message: string, turnId: string}} Info
 */

/**
 * The connection as the status line shows it (from the client's reports).
 * @typedef {{state: string, transport: string, detail: string, retryInMs: number | null,
 *   [field: string]: any}} Connection
 */

/**
 * The widget's whole state.
 * @typedef {object} State
 * @property {string} sessionId
 * @property {Message[]} messages
 * @property {Notice[]} notices  warnings, errors and error replies: lines of the transcript
 * @property {Info[]} infos  info diagnostics still current: quiet notes of the status area
 * @property {number} waiting  prompts announced as queued that have not started yet
 * @property {"idle" | "generating" | "paused"} status
 * @property {number | null} lastSeq  the last session sequence applied
 * @property {boolean} synced  the transcript has been loaded since the last connect
 * @property {number} noticeCounter
 * @property {string | null} kernelError
 * @property {Connection} connection
 */

/**
 * What reduce() takes: a parsed server event, or a connection report or kernel error.
 * @typedef {import("./protocol.js").ServerEvent | {type: string, [field: string]: any}} WidgetEvent
 */

/** Most notices kept; older ones are dropped first. */
export const MAX_NOTICES = 100;

/** Most info notes kept at once; older ones are dropped first. */
export const MAX_INFOS = 5;

/** The diagnostic code of a prompt that waits behind the running turn (protocol "Error codes"). */
export const QUEUED = "queued";

/** The error of a tool call whose turn ended before it finished (as the server records it). */
export const TOOL_ABORTED = Object.freeze({
  code: "aborted",
  message: "the turn ended before the tool finished",
});

// Events that belong to the session's sequence (protocol section 5.1); replies have none.
const SESSION_EVENTS = new Set([
  "user.message",
  "status",
  "model.start",
  "model.delta",
  "model.usage",
  "model.end",
  "model.error",
  "diagnostic",
  "cleared",
]);

/**
 * The state before anything happened.
 * @returns {State}
 */
export function initialState() {
  return {
    sessionId: "",
    messages: [],
    notices: [],
    infos: [],
    waiting: 0,
    status: "idle",
    lastSeq: null,
    synced: false,
    noticeCounter: 0,
    kernelError: null,
    connection: { state: "connecting", transport: "websocket", detail: "", retryInMs: null },
  };
}

/**
 * @param {Message[]} messages
 * @param {(message: Message) => boolean} predicate
 * @returns {number} the index of the last match, or -1
 */
function lastIndex(messages, predicate) {
  for (let i = messages.length - 1; i >= 0; i -= 1) if (predicate(messages[i])) return i;
  return -1;
}

// The assistant message of a turn: by turnId, or (if the event had none) the last streaming one.
/**
 * @param {Message[]} messages
 * @param {string} turnId
 * @returns {number}
 */
function findAssistant(messages, turnId) {
  if (turnId) return lastIndex(messages, (m) => m.role === "assistant" && m.turnId === turnId);
  return lastIndex(messages, (m) => m.role === "assistant" && m.status === "streaming");
}

/**
 * @param {string} turnId
 * @returns {Message}
 */
function newAssistant(turnId, ts = null, model = "") {
  return {
    id: assistantId(turnId),
    role: "assistant",
    text: "",
    status: "streaming",
    error: null,
    turnId,
    usage: null,
    reasoning: "",
    tools: [],
    ts,
    model,
  };
}

/**
 * The state without the user message `id` and everything after it (a prompt that replaces it
 * started, protocol section 9.8); notices after the cut go too. Unchanged without `id`, or if
 * the message is not there (this view never had it: its history reload shows the result).
 * @param {State} state
 * @param {string | undefined} id
 * @returns {State}
 */
function cutAt(state, id) {
  if (!id) return state;
  const index = state.messages.findIndex((m) => m.role === "user" && m.id === id);
  if (index === -1) return state;
  return {
    ...state,
    messages: state.messages.slice(0, index),
    notices: state.notices.filter((n) => n.afterIndex <= index),
  };
}

// Tool records: {id, name, arguments (text), status, result, error, durationMs; for a call that
// needs approval also approval, timeoutMs, askedAt}. A changed record is a new object; the
// others (and the array, if nothing changed) are kept.
/**
 * @param {ToolRecord[] | undefined} tools
 * @param {string} id
 * @param {(tool: ToolRecord) => ToolRecord} update
 * @returns {ToolRecord[]}
 */
function upsertTool(tools, id, update) {
  const list = tools ?? [];
  const index = list.findIndex((t) => t.id === id);
  /** @type {ToolRecord} */
  const base =
    index === -1
      ? { id, name: "", arguments: "", status: "running", result: null, error: null, durationMs: null }
      : list[index];
  const next = list.slice();
  if (index === -1) next.push(update(base));
  else next[index] = update(base);
  return next;
}

/**
 * @param {ToolRecord[] | undefined} tools
 * @param {{id: string, name: string, arguments: string}} call
 * @returns {ToolRecord[]}
 */
function applyToolCall(tools, call) {
  return upsertTool(tools, call.id, (t) => ({ ...t, name: call.name || t.name, arguments: call.arguments }));
}

/**
 * @param {ToolRecord[] | undefined} tools
 * @param {{id: string, name: string, ok: boolean, result: unknown, error: ToolRecord["error"],
 *   durationMs: number | null}} result
 * @returns {ToolRecord[]}
 */
function applyToolResult(tools, result) {
  // A result for a call never seen (its event was missed) still gets a record.
  return upsertTool(tools, result.id, (t) => ({
    ...t,
    name: result.name || t.name,
    status: result.ok ? "complete" : "error",
    result: result.result,
    error: result.ok ? null : result.error,
    durationMs: result.durationMs,
  }));
}

/**
 * A call waits for the user's approval: its record says so, with how long the server waits and
 * when it asked (the event's timestamp), so the view can count down. A record whose decision
 * came first (events out of order cannot happen on one connection, but a history can hold it)
 * keeps that decision.
 * @param {ToolRecord[] | undefined} tools
 * @param {{id: string, name: string, arguments: string, timeoutMs: number | null}} request
 * @param {number | null} askedAt
 * @returns {ToolRecord[]}
 */
function applyApproval(tools, request, askedAt) {
  return upsertTool(tools, request.id, (t) => ({
    ...t,
    name: t.name || request.name,
    arguments: t.arguments || request.arguments,
    approval: t.approval && t.approval !== "pending" ? t.approval : "pending",
    timeoutMs: request.timeoutMs,
    askedAt,
  }));
}

/**
 * The decision on a call that waited: approved, or denied (by a user, a timeout, a stop).
 * @param {ToolRecord[] | undefined} tools
 * @param {{id: string, name: string, approval: import("./protocol.js").Approval}} decision
 * @returns {ToolRecord[]}
 */
function applyApprovalResult(tools, decision) {
  return upsertTool(tools, decision.id, (t) => ({ ...t, name: t.name || decision.name, approval: decision.approval }));
}

// A turn that ends while tools still run (abort, failure): those calls end as errors, as the
// server's session records them, and a call still waiting for approval was stopped. Returns
// the same message if no tool is running.
/**
 * @param {Message} message
 * @returns {Message}
 */
function stopTools(message) {
  if (!Array.isArray(message.tools) || !message.tools.some((t) => t.status === "running")) {
    return message;
  }
  /** @type {ToolRecord[]} */
  const tools = message.tools.map((t) => {
    if (t.status !== "running") return t;
    /** @type {ToolRecord} */
    const stopped = { ...t, status: "error", error: TOOL_ABORTED };
    if (t.approval === "pending") stopped.approval = "aborted";
    return stopped;
  });
  return { ...message, tools };
}

/**
 * @param {State} state
 * @param {WidgetEvent} event
 * @returns {State}
 */
function applyDelta(state, event) {
  const text = typeof event.text === "string" ? event.text : "";
  const reasoning = typeof event.reasoning === "string" ? event.reasoning : "";
  const call = event.toolCall ?? null;
  const result = event.toolResult ?? null;
  const asked = event.approval ?? null;
  const decided = event.approvalResult ?? null;
  if (text === "" && reasoning === "" && call === null && result === null && asked === null && decided === null) {
    return state;
  }
  return updateAssistant(state, event, (m) => {
    let next = m;
    if (text !== "") next = { ...next, text: next.text + text };
    if (reasoning !== "") next = { ...next, reasoning: (next.reasoning ?? "") + reasoning };
    if (call !== null) next = { ...next, tools: applyToolCall(next.tools, call) };
    if (asked !== null) next = { ...next, tools: applyApproval(next.tools, asked, event.ts ?? null) };
    if (decided !== null) next = { ...next, tools: applyApprovalResult(next.tools, decided) };
    if (result !== null) next = { ...next, tools: applyToolResult(next.tools, result) };
    return next;
  });
}

// Replace the assistant message of the event's turn with update(message), or append
// update(newAssistant()) if the turn has none yet (its start was missed, or it never started).
/**
 * @param {State} state
 * @param {WidgetEvent} event
 * @param {(message: Message) => Message} update
 * @returns {State}
 */
function updateAssistant(state, event, update) {
  const index = findAssistant(state.messages, event.turnId);
  const messages = state.messages.slice();
  if (index === -1) messages.push(update(newAssistant(event.turnId)));
  else messages[index] = update(messages[index]);
  return { ...state, messages };
}

/**
 * @param {State} state
 * @param {Omit<Notice, "id" | "afterIndex">} fields
 * @returns {State}
 */
function addNotice(state, fields) {
  const noticeCounter = state.noticeCounter + 1;
  const notice = { id: `n${noticeCounter}`, afterIndex: state.messages.length, ...fields };
  const notices = [...state.notices, notice].slice(-MAX_NOTICES);
  return { ...state, notices, noticeCounter };
}

/**
 * The note of prompts still waiting (the server's wording when it queues one).
 * @param {number} waiting
 * @returns {string}
 */
export function waitingText(waiting) {
  return `prompt queued; ${waiting} waiting`;
}

/**
 * Show a diagnostic by its level alone, whatever its code: a warning or an error is a line of
 * the transcript; an info is a quiet note that replaces an earlier note of the same code.
 * @param {State} state
 * @param {WidgetEvent} event  a parsed diagnostic
 * @returns {State}
 */
function applyDiagnostic(state, event) {
  const fields = { code: String(event.code ?? ""), message: String(event.message ?? "") };
  if (event.level !== "info") {
    return addNotice(state, { kind: "diagnostic", level: event.level, ...fields });
  }
  const noticeCounter = state.noticeCounter + 1;
  /** @type {Info} */
  const info = { id: `n${noticeCounter}`, turnId: event.turnId ?? "", ...fields };
  const infos = [...state.infos.filter((n) => n.code !== info.code), info].slice(-MAX_INFOS);
  // The server says "queued" once per prompt it puts behind the running turn.
  const waiting = info.code === QUEUED ? state.waiting + 1 : state.waiting;
  return { ...state, infos, waiting, noticeCounter };
}

/**
 * A turn starts (its user message arrives): the info notes were about before, so they go,
 * except the note of the prompts that still wait. A queued prompt starting is one fewer
 * waiting. A "queued" note names the turn it waits behind; one that names none came before
 * that turn had started, and the next turn to start is that one, not a queued prompt.
 * @param {State} state
 * @param {WidgetEvent} event  a parsed user message
 * @returns {State}
 */
function applyTurnStart(state, event) {
  if (state.infos.length === 0 && state.waiting === 0) return state;
  const queued = state.infos.find((n) => n.code === QUEUED);
  const behind = queued !== undefined && (queued.turnId === "" || queued.turnId === event.turnId);
  const waiting = behind ? state.waiting : Math.max(0, state.waiting - 1);
  const infos =
    queued !== undefined && waiting > 0
      ? [{ ...queued, turnId: event.turnId ?? "", message: waitingText(waiting) }]
      : [];
  return { ...state, infos, waiting };
}

/**
 * Forget the queue (it is empty): drop the note of waiting prompts.
 * @param {State} state
 * @returns {State}
 */
function queueDrained(state) {
  if (state.waiting === 0 && !state.infos.some((n) => n.code === QUEUED)) return state;
  return { ...state, waiting: 0, infos: state.infos.filter((n) => n.code !== QUEUED) };
}

/**
 * @param {State} state
 * @param {WidgetEvent} event  a parsed history reply
 * @returns {State}
 */
function applyHistory(state, event) {
  // On one connection the reply comes after every event it covers, so an older history than
  // what is applied can only be a stale reply; taking it would lose the events after it.
  if (event.sequence !== null && state.lastSeq !== null && event.sequence < state.lastSeq) {
    return state;
  }
  // A finished message cannot have a running tool; the current one can.
  const finished = event.messages.map(stopTools);
  const messages = event.current ? [...finished, event.current] : finished;
  // Notices are not in the history; keep those whose place still exists.
  const notices = state.notices.filter((n) => n.afterIndex <= messages.length);
  // The prompts announced as waiting may have started meanwhile; an idle session has none left.
  const settled = event.status === "idle" ? queueDrained(state) : state;
  return {
    ...settled,
    messages,
    notices,
    lastSeq: event.sequence ?? state.lastSeq,
    status: event.status ?? state.status,
    synced: true,
  };
}

/**
 * @param {State} state
 * @param {WidgetEvent} event  a parsed ready
 * @returns {State}
 */
function applyReady(state, event) {
  const switched = state.sessionId !== "" && event.sessionId !== state.sessionId;
  if (event.resumed === true && !switched) {
    // The server replays what this view missed: keep the transcript and the sequence it is at,
    // so the replayed events it already has are dropped as duplicates.
    return { ...state, sessionId: event.sessionId, status: event.status };
  }
  return {
    ...state,
    sessionId: event.sessionId,
    // A new connection starts a new sequence baseline: after a server restart with a fresh
    // store the session may be back at 0, and its events must not be dropped as duplicates.
    lastSeq: event.sequence,
    status: event.status,
    synced: false,
    messages: switched ? [] : state.messages,
    notices: switched ? [] : state.notices,
    infos: switched ? [] : state.infos,
    waiting: switched ? 0 : state.waiting,
  };
}

/**
 * @param {State} state
 * @param {WidgetEvent} event  an event of the session's sequence
 * @returns {State}
 */
function applySessionEvent(state, event) {
  switch (event.type) {
    case "user.message": {
      /** @type {Message} */
      const message = {
        id: event.messageId || `${event.turnId}:u`,
        role: "user",
        text: event.text,
        status: "complete",
        error: null,
        turnId: event.turnId,
        usage: null,
        // The same shape as a user message from the history (protocol.normalizeMessage).
        reasoning: "",
        tools: [],
        ts: event.ts,
        replaced: event.replaced ?? 0,
        attachments: event.attachments ?? [],
      };
      const kept = cutAt(state, event.replaces);
      return applyTurnStart({ ...kept, messages: [...kept.messages, message] }, event);
    }
    case "status":
      return state.status === event.status ? state : { ...state, status: event.status };
    case "model.start":
      if (findAssistant(state.messages, event.turnId) !== -1 && event.turnId) return state;
      return { ...state, messages: [...state.messages, newAssistant(event.turnId, event.ts, event.model)] };
    case "model.delta":
      return applyDelta(state, event);
    case "model.usage":
      return updateAssistant(state, event, (m) => ({ ...m, usage: event.usage }));
    case "model.end":
      return updateAssistant(state, event, (m) => ({
        ...stopTools(m),
        status: finishStatus(event.finishReason),
        // The end event carries the whole answer: it wins over the concatenated deltas.
        text: event.text ?? m.text,
        usage: event.usage ?? m.usage,
      }));
    case "model.error":
      return updateAssistant(state, event, (m) => ({
        ...stopTools(m),
        status: "error",
        text: event.text ?? m.text,
        error: { code: event.code, message: event.message },
      }));
    case "diagnostic":
      return applyDiagnostic(state, event);
    case "cleared":
      // The server clears only between turns: nothing waits.
      return { ...state, messages: [], notices: [], infos: [], waiting: 0 };
    default:
      return state;
  }
}

/**
 * Return the state after `event`; the same object if the event changes nothing.
 * @param {State} state
 * @param {WidgetEvent} event
 * @returns {State}
 */
export function reduce(state, event) {
  if (!event || typeof event.type !== "string") return state;
  if (SESSION_EVENTS.has(event.type)) {
    if (event.seq !== null && event.seq !== undefined) {
      if (state.lastSeq !== null && event.seq <= state.lastSeq) return state;
      state = { ...state, lastSeq: event.seq };
    }
    return applySessionEvent(state, event);
  }
  switch (event.type) {
    case "ready":
      return applyReady(state, event);
    case "history":
      return applyHistory(state, event);
    case "control.result":
      // An answer to an approval that came too late (another view answered first, the call
      // timed out) is refused: say so, as an error reply is.
      if (event.action !== "approval" || event.ok) return state;
      return addNotice(state, {
        kind: "reply",
        level: "error",
        code: "approval",
        message: event.message || "the approval was refused",
      });
    case "error.reply":
      return addNotice(state, {
        kind: "reply",
        level: "error",
        code: event.code,
        message: event.message,
      });
    case "kernel.error":
      // While a socket is open the kernel's complaint is shown next to it; otherwise it is the
      // connection's state (for example: the server could not start).
      if (state.connection.state === "open") return { ...state, kernelError: event.message };
      return {
        ...state,
        kernelError: event.message,
        connection: { ...state.connection, state: "error", detail: event.message, retryInMs: null },
      };
    case "connection":
      return {
        ...state,
        kernelError: event.state === "open" || event.state === "connecting" ? null : state.kernelError,
        connection: {
          state: event.state,
          transport: event.transport ?? "websocket",
          detail: event.detail ?? "",
          retryInMs: event.retryInMs ?? null,
        },
      };
    default:
      // control results other than get_history, pongs, unknown kinds: nothing to show.
      return state;
  }
}
