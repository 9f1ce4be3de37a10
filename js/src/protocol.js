// Wire format of the envelope dialect (docs/protocol.md, section 6), as the widget speaks it.
// Pure: no DOM, no WebSocket, no clock. parse() turns a server frame into one normalized event;
// userMessage()/control() build client frames. Unknown fields are ignored (protocol rule 5).

import { attachmentsOf } from "./attachments.js";

/** Subprotocol that fixes the envelope dialect for this connection. */
export const DIALECT_SUBPROTOCOL = "llmsock.envelope.v1";
/** Version of the kernel <-> widget message contract (docs/widget-comm.md). */
export const WIDGET_PROTOCOL = "llmsock-widget/1";

/**
 * A tool call of a message, as the reducer and the view keep it.
 * @typedef {object} ToolRecord
 * @property {string} id
 * @property {string} name
 * @property {string} arguments  the JSON text the model wrote (it may be invalid JSON)
 * @property {"running" | "complete" | "error"} status
 * @property {unknown} result
 * @property {{code: string, message: string} | null} error
 * @property {number | null} durationMs
 * @property {Approval} [approval]  only on a call that needs the user's approval
 * @property {number | null} [timeoutMs]  how long the server waits for that approval
 * @property {number | null} [askedAt]  when the server asked, in ms since the epoch (its clock)
 */

/**
 * Where a call that needs the user's approval stands (docs/protocol.md, "Approval").
 * @typedef {"pending" | "approved" | "denied" | "timeout" | "aborted"} Approval
 */

/**
 * One transcript message (the snapshot shape, protocol section 13).
 * @typedef {object} Message
 * @property {string} id
 * @property {"user" | "assistant"} role
 * @property {string} text
 * @property {"complete" | "streaming" | "aborted" | "error" | "length"} status
 * @property {{code: string, message: string} | null} error
 * @property {string} turnId
 * @property {{inputTokens: number | null, outputTokens: number | null} | null} usage
 * @property {string} reasoning
 * @property {ToolRecord[]} tools
 * @property {number | null} [ts]  when it was sent or began, in ms since the epoch
 * @property {number} [replaced]  a prompt: how many earlier messages it replaced (section 9.8)
 * @property {string} [model]  an answer: the model that gave it (from model.start; not in a history)
 * @property {{name: string, text: string}[]} [attachments]  a prompt: what its `@name` mentions sent (section 7.1)
 */

/**
 * A parsed server frame: `type` says which (the reducer switches on it), the common fields are
 * always there, the others depend on the type (see BUILDERS).
 * @typedef {{type: string, name: string, seq: number | null, turnId: string, sessionId: string,
 *   ts: number | null, [field: string]: any}} ServerEvent
 */

/**
 * A client frame, before encode().
 * @typedef {{type: string, id?: string, data?: object, token?: string}} ClientMessage
 */

const SESSION_STATUSES = new Set(["idle", "generating", "paused"]);
const MESSAGE_STATUSES = new Set(["complete", "streaming", "aborted", "error", "length"]);
const TOOL_STATUSES = new Set(["running", "complete", "error"]);
/** @type {ReadonlySet<unknown>} */
export const APPROVALS = new Set(["pending", "approved", "denied", "timeout", "aborted"]);
/** @type {Record<string, Approval>} an approval's outcome by the reason the server gave */
const REFUSED = { timeout: "timeout", aborted: "aborted" };
/** @type {Record<string, Message["status"]>} */
const FINISH_STATUS = { stop: "complete", length: "length", aborted: "aborted" };

/** @type {(value: unknown, fallback?: string) => string} */
const str = (value, fallback = "") => (typeof value === "string" ? value : fallback);
/** @type {(value: unknown) => number | null} */
const int = (value) => (Number.isInteger(value) ? /** @type {number} */ (value) : null);
/** @type {(value: unknown) => value is Record<string, any>} */
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * Map an `end` event's finishReason to a message status (unknown reasons count as complete).
 * @param {string} finishReason
 * @returns {Message["status"]}
 */
export function finishStatus(finishReason) {
  return FINISH_STATUS[finishReason] ?? "complete";
}

/**
 * The id of the assistant message of a turn, as the server's history names it.
 * @param {string} turnId
 * @returns {string}
 */
export function assistantId(turnId) {
  return `${turnId}:a`;
}

/** @param {unknown} value */
function usageOf(value) {
  if (!isObject(value)) return null;
  const inputTokens = int(value.inputTokens);
  const outputTokens = int(value.outputTokens);
  return inputTokens === null && outputTokens === null ? null : { inputTokens, outputTokens };
}

/**
 * @param {unknown} value
 * @param {string} [fallbackCode]
 */
function errorOf(value, fallbackCode = "model_error") {
  if (!isObject(value)) return null;
  return { code: str(value.code, fallbackCode), message: str(value.message) };
}

/**
 * The text of a tool call's arguments: a string is kept as the model wrote it (it may be
 * invalid JSON), any other JSON value becomes pretty JSON text; missing arguments are "".
 * @param {unknown} value
 * @returns {string}
 */
export function argumentsText(value) {
  if (typeof value === "string") return value;
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2) ?? "";
  } catch {
    return String(value);
  }
}

/** @param {unknown} value */
function toolCallOf(value) {
  if (!isObject(value)) return null;
  return { id: str(value.id), name: str(value.name), arguments: argumentsText(value.arguments) };
}

/** @param {unknown} value */
function toolResultOf(value) {
  if (!isObject(value)) return null;
  const ok = value.ok === true;
  return {
    id: str(value.id),
    name: str(value.name),
    ok,
    result: value.result === undefined ? null : value.result,
    // A failed call always has an error to show, even if the server sent none.
    error: ok ? null : (errorOf(value.error, "tool_error") ?? { code: "tool_error", message: "" }),
    durationMs: int(value.durationMs),
  };
}

/**
 * The approval a decision gives: approved, or denied by a user, a timeout or a stop.
 * @param {boolean} approved
 * @param {string} reason  "user" | "timeout" | "aborted" (another reason counts as "user")
 * @returns {Approval}
 */
export function approvalOf(approved, reason) {
  return approved ? "approved" : (REFUSED[reason] ?? "denied");
}

// A call waits for the user's approval: {toolCallId, toolName, arguments, timeoutMs}.
/** @param {unknown} value */
function approvalRequestOf(value) {
  if (!isObject(value)) return null;
  return {
    id: str(value.toolCallId),
    name: str(value.toolName),
    arguments: argumentsText(value.arguments),
    timeoutMs: int(value.timeoutMs),
  };
}

// The decision on such a call: {toolCallId, toolName, approved, reason}.
/** @param {unknown} value */
function approvalResultOf(value) {
  if (!isObject(value)) return null;
  return {
    id: str(value.toolCallId),
    name: str(value.toolName),
    approval: approvalOf(value.approved === true, str(value.reason)),
  };
}

// One tool record of a history message (its arguments are the JSON text the model wrote).
/** @param {unknown} value */
function toolRecordOf(value) {
  if (!isObject(value)) return null;
  const error = errorOf(value.error, "tool_error");
  /** @type {ToolRecord} */
  const record = {
    id: str(value.id),
    name: str(value.name),
    arguments: argumentsText(value.arguments),
    status: TOOL_STATUSES.has(value.status) ? value.status : error ? "error" : "complete",
    result: value.result === undefined ? null : value.result,
    error,
    durationMs: int(value.durationMs),
  };
  // Only a call that needed approval says where it stands (the server sends no "" either);
  // a waiting one also when it was asked and for how long, so a late view counts down too.
  if (APPROVALS.has(value.approval)) record.approval = value.approval;
  if (record.approval === "pending") {
    record.timeoutMs = int(value.timeoutMs);
    record.askedAt = int(value.askedAt);
  }
  return record;
}

/**
 * Normalize one history message (snapshot shape, protocol section 13); null if unusable.
 * @param {unknown} raw
 * @returns {Message | null}
 */
export function normalizeMessage(raw) {
  if (!isObject(raw)) return null;
  const role = raw.role === "user" || raw.role === "assistant" ? raw.role : null;
  if (role === null) return null;
  const turnId = str(raw.turnId);
  return {
    id: str(raw.id) || (role === "assistant" ? assistantId(turnId) : `${turnId}:u`),
    role,
    text: str(raw.text),
    status: MESSAGE_STATUSES.has(raw.status) ? raw.status : "complete",
    error: errorOf(raw.error),
    turnId,
    usage: usageOf(raw.usage),
    reasoning: str(raw.reasoning),
    tools: Array.isArray(raw.tools) ? raw.tools.map(toolRecordOf).filter((t) => t !== null) : [],
    ts: int(raw.ts),
    replaced: role === "user" ? (int(raw.replaced) ?? 0) : 0,
    attachments: role === "user" ? attachmentsOf(raw.attachments) : [],
  };
}

/** @param {Record<string, any>} body  a successful get_history result */
function historyEvent(body) {
  const data = isObject(body.data) ? body.data : {};
  const messages = Array.isArray(data.messages) ? data.messages.map(normalizeMessage).filter((m) => m !== null) : [];
  const current = normalizeMessage(data.current);
  return {
    type: "history",
    requestId: body.requestId ?? null,
    messages,
    current: current && { ...current, status: "streaming" },
    sequence: int(data.sequence),
    status: SESSION_STATUSES.has(data.status) ? data.status : null,
    // The settings the session kept (the last prompt's options, section 13); index.js adopts them.
    settings: isObject(data.settings) ? data.settings : null,
  };
}

// One builder per (kind, event.type): takes the event body, returns the type-specific fields.
/** @type {Record<string, (e: Record<string, any>) => object>} */
const BUILDERS = {
  "session.ready": (e) => ({
    sessionId: str(e.sessionId),
    sequence: int(e.sequence),
    status: SESSION_STATUSES.has(e.status) ? e.status : "idle",
    created: e.created === true,
    protocol: str(e.protocol),
    epoch: str(e.epoch),
    // Only a connection that asked to resume is told whether it was (protocol section 4.1).
    resumed: typeof e.resumed === "boolean" ? e.resumed : null,
    replayed: int(e.replayed) ?? 0,
  }),
  "session.cleared": () => ({}),
  "user.message": (e) => ({
    text: str(e.text),
    messageId: str(e.messageId),
    // A prompt that replaces an earlier one (an edit, a regenerate): its id, and how many
    // messages went with it (section 9.8).
    replaces: str(e.replaces),
    replaced: int(e.replaced) ?? 0,
    // The context its mentions carried (section 7.1): the chips under the prompt.
    attachments: attachmentsOf(isObject(e.options) ? e.options.attachments : null),
  }),
  "status.status": (e) => ({ status: SESSION_STATUSES.has(e.status) ? e.status : "idle" }),
  "model.start": (e) => ({ model: str(e.model), messageId: str(e.messageId) }),
  // A delta carries answer text, reasoning text, a tool call, a tool result, a call that waits
  // for approval or the decision on it (the server sends one per event; each missing part is
  // ""/null so the reducer can apply them all).
  "model.delta": (e) => ({
    text: str(e.text),
    reasoning: str(e.reasoning),
    toolCall: toolCallOf(e.toolCall),
    toolResult: toolResultOf(e.toolResult),
    approval: approvalRequestOf(e.approval),
    approvalResult: approvalResultOf(e.approvalResult),
  }),
  "model.usage": (e) => ({ usage: usageOf(e) }),
  "model.end": (e) => ({
    finishReason: str(e.finishReason, "stop"),
    text: typeof e.text === "string" ? e.text : null,
    usage: usageOf(e.usage),
  }),
  "model.error": (e) => ({
    code: str(e.code, "model_error"),
    message: str(e.message),
    recoverable: e.recoverable !== false,
    text: typeof e.text === "string" ? e.text : null,
  }),
  "diagnostic.diagnostic": (e) => ({
    level: ["info", "warning", "error"].includes(e.level) ? e.level : "info",
    code: str(e.code),
    message: str(e.message),
  }),
  "control.result": (e) => ({
    action: str(e.action),
    ok: e.ok === true,
    message: str(e.message),
    data: isObject(e.data) ? e.data : {},
    requestId: e.requestId ?? null,
  }),
  "control.pong": (e) => ({ requestId: e.requestId ?? null }),
  "error.error": (e) => ({
    code: str(e.code, "error"),
    message: str(e.message),
    recoverable: e.recoverable !== false,
    requestId: e.requestId ?? null,
  }),
};

// Normalized type names: what the reducer switches on.
/** @type {Record<string, string>} */
const TYPE_NAMES = {
  "session.ready": "ready",
  "session.cleared": "cleared",
  "user.message": "user.message",
  "status.status": "status",
  "model.start": "model.start",
  "model.delta": "model.delta",
  "model.usage": "model.usage",
  "model.end": "model.end",
  "model.error": "model.error",
  "diagnostic.diagnostic": "diagnostic",
  "control.result": "control.result",
  "control.pong": "pong",
  "error.error": "error.reply",
};

/**
 * Parse one server frame (text) into a normalized event.
 *
 * Returns null when the frame is not an envelope at all (not JSON, no `data.event`), and
 * `{type: "unknown", ...}` for a well-formed envelope of a kind this version does not know.
 * Every event has `seq` (number for session events, null for replies), `turnId`, `ts`.
 * @param {unknown} frame  the frame's text (or an already decoded object)
 * @returns {ServerEvent | null}
 */
export function parse(frame) {
  let envelope;
  try {
    envelope = typeof frame === "string" ? JSON.parse(frame) : frame;
  } catch {
    return null;
  }
  if (!isObject(envelope) || !isObject(envelope.data)) return null;
  const { data } = envelope;
  const body = data.event;
  if (!isObject(body) || typeof body.type !== "string") return null;
  const kind = str(data.kind) || str(envelope.name).replace(/^interaction\./, "");
  const meta = isObject(data.meta) ? data.meta : {};
  const common = {
    name: str(envelope.name),
    seq: int(meta.sequence),
    turnId: str(meta.turnId),
    sessionId: str(meta.sessionId),
    ts: int(meta.timestamp),
  };
  const key = `${kind}.${body.type}`;
  if (key === "control.result" && body.action === "get_history" && body.ok === true) {
    return { ...common, ...historyEvent(body) };
  }
  const build = BUILDERS[key];
  if (!build) return { ...common, type: "unknown", kind, eventType: body.type };
  return { ...common, type: TYPE_NAMES[key], ...build(body) };
}

/**
 * Build a prompt frame: always the JSON form, so text that looks like JSON stays a prompt.
 * `options` (section 7.1: tools, timeout, retries, ...) go in `data.options` unless empty;
 * `replaces` names the user message this prompt replaces with everything after it (section 9.8).
 * @param {string} text
 * @param {string} id
 * @param {Record<string, unknown>} [options]
 * @param {string | null} [replaces]
 * @returns {ClientMessage}
 */
export function userMessage(text, id, options = {}, replaces = null) {
  /** @type {{text: string, options?: Record<string, unknown>, replaces?: string}} */
  const data = { text: String(text) };
  if (Object.keys(options).length > 0) data.options = { ...options };
  if (replaces) data.replaces = replaces;
  return { type: "user_message", id, data };
}

/**
 * Build a control frame such as `control("abort", id)` or `control("get_history", id)`.
 * @param {string} action
 * @param {string} id
 * @returns {ClientMessage}
 */
export function control(action, id) {
  return { type: "control", id, data: { type: action } };
}

/**
 * Build the answer to a tool call that waits for approval (any view of the session may answer;
 * the first answer wins, the others are refused with a control result that is not ok).
 * @param {string} toolCallId
 * @param {boolean} approved
 * @param {string} id
 * @returns {ClientMessage}
 */
export function approval(toolCallId, approved, id) {
  return { type: "approval", data: { toolCallId: String(toolCallId), approved: approved === true }, id };
}

/**
 * Encode a client message as one JSON text frame.
 * @param {ClientMessage} message
 * @returns {string}
 */
export function encode(message) {
  return JSON.stringify(message);
}

/**
 * Make an id generator: `<prefix>-<random tag>-<counter>` (well under the 128-character limit).
 *
 * Args: random, a function returning [0, 1) (injected so tests are deterministic).
 * @param {{prefix?: string, random?: () => number}} [options]
 * @returns {() => string}
 */
export function createIdGenerator({ prefix = "w", random = Math.random } = {}) {
  const tag = Math.floor(random() * 36 ** 6)
    .toString(36)
    .padStart(6, "0");
  let counter = 0;
  return () => `${prefix}-${tag}-${++counter}`;
}

/**
 * The WebSocket URL for a session: the session is in the query, the token never is.
 * @param {string} url
 * @param {string} session
 * @param {string | null} [resume]  "<epoch>:<seq>" to resume from, or null
 * @returns {string}
 */
export function socketUrl(url, session, resume = null) {
  const sep = url.includes("?") ? "&" : "?";
  const tail = resume ? `&resume=${encodeURIComponent(resume)}` : "";
  return `${url}${sep}session=${encodeURIComponent(session)}${tail}`;
}
