// The moves connection-state.js's decisions are made of: open the current candidate, give way
// to the next one, walk the ladder again, back off, tear down, start and stop timers, report.
// Each works on a step in progress, `{state, effects}`, whose `state` is the step's own copy
// (made by begin()): a move edits that copy in place, replacing (never editing) the arrays and
// objects it shares with the state the step started from, and appends the effects it needs.
// Pure, like the module that uses it: no DOM, no WebSocket, no clock.

import { resumeFrom } from "./cursor.js";
import { DIALECT_SUBPROTOCOL, socketUrl } from "./protocol.js";

/** @typedef {import("./ladder.js").Candidate} Candidate */
/** @typedef {import("./connection-state.js").ConnectionState} ConnectionState */
/** @typedef {import("./connection-state.js").ConnectionChange} ConnectionChange */
/** @typedef {import("./connection-state.js").ConnectionSettings} ConnectionSettings */
/** @typedef {import("./connection-state.js").TimerName} TimerName */
/** @typedef {import("./connection-state.js").Step} Step */

/** What a view whose kernel is gone says: retrying cannot help, running the cell again does. */
export const KERNEL_GONE = "the kernel restarted: run the cell again";

/** Walks in a row that must end as a gone kernel's do before the view says KERNEL_GONE. */
export const KERNEL_SILENT_WALKS = 2;

/**
 * Delay before reconnect attempt `attempt` (0-based): base * 2^attempt, capped, half jittered.
 * @param {number} attempt
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [schedule]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 10000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * The status line's words for a close event's code and reason (1006 when there is no code).
 * @param {unknown} code
 * @param {unknown} reason
 * @returns {string}
 */
export function closeDetail(code, reason) {
  const shown = Number.isInteger(code) ? code : 1006;
  const why = typeof reason === "string" ? reason.slice(0, 120) : "";
  return why ? `closed (${shown}: ${why})` : `closed (${shown})`;
}

/**
 * How long `candidate` has to say ready once its socket is made: its own time (the kernel's
 * LLMSOCK_CONNECT_TIMEOUT, through the ladder) or the client's `probeMs`.
 * @param {Candidate | null} candidate
 * @param {ConnectionSettings} settings
 * @returns {number} milliseconds
 */
export function probeTime(candidate, settings) {
  const own = candidate?.probeMs;
  return typeof own === "number" && Number.isFinite(own) && own > 0 ? own : settings.probeMs;
}

/**
 * Milliseconds as the status line says them: whole seconds, at least 1.
 * @param {number} ms
 * @returns {string}
 */
export function seconds(ms) {
  return `${Math.max(1, Math.round(ms / 1000))} s`;
}

/**
 * Answer an input that changes nothing: the same state, no effects.
 * @param {ConnectionState} state
 * @returns {Step}
 */
export function unchanged(state) {
  return { state, effects: [] };
}

/**
 * Start a step: a copy of the state for the moves to edit, and no effects yet.
 * @param {ConnectionState} state
 * @returns {Step}
 */
export function begin(state) {
  return { state: { ...state }, effects: [] };
}

/**
 * Return the candidate being tried or used, or null when there is none.
 * @param {ConnectionState} state
 * @returns {Candidate | null}
 */
export function current(state) {
  return state.target?.candidates[state.candidate] ?? null;
}

/**
 * Whether `candidate` is the comm rung (the widget's own channel to the kernel).
 * @param {Candidate | null} candidate
 * @returns {boolean}
 */
export function isComm(candidate) {
  return candidate?.transport === "comm";
}

/**
 * Report a connection change, on the current candidate's transport.
 * @param {Step} t
 * @param {ConnectionChange["state"]} state
 * @param {string} [detail]
 * @param {Partial<ConnectionChange>} [extra]
 */
export function report(t, state, detail = "", extra = {}) {
  const change = {
    state,
    transport: current(t.state)?.transport ?? "websocket",
    detail,
    retryInMs: null,
    attempt: t.state.attempt,
    ...extra,
  };
  t.effects.push({ type: "report", change });
}

/**
 * Start `timer` (again, if it runs).
 * @param {Step} t
 * @param {TimerName} timer
 * @param {number} ms
 */
export function start(t, timer, ms) {
  stop(t, timer);
  t.state.timers = { ...t.state.timers, [timer]: true };
  t.effects.push({ type: "start-timer", timer, ms });
}

/**
 * Stop `timer` if it runs.
 * @param {Step} t
 * @param {TimerName} timer
 */
export function stop(t, timer) {
  if (!t.state.timers[timer]) return;
  t.state.timers = { ...t.state.timers, [timer]: false };
  t.effects.push({ type: "stop-timer", timer });
}

/**
 * Stop every timer and close the current socket, if any.
 * @param {Step} t
 * @param {number} [code]
 * @param {string} [reason]
 */
export function teardown(t, code = 1000, reason = "replaced") {
  stop(t, "retry");
  stop(t, "probe");
  stop(t, "heartbeat");
  if (t.state.socket === null) return;
  t.effects.push({ type: "close", socket: t.state.socket, code, reason });
  t.state.socket = null;
}

/**
 * Try the candidates from the top again, with only the ladder's own reasons for skipping.
 * @param {Step} t
 */
export function restartLadder(t) {
  t.state.established = false;
  t.state.walkAnswered = false;
  t.state.candidate = 0;
  t.state.skipped = [...(t.state.target?.skippedBefore ?? [])];
}

/**
 * Open a socket to the current candidate and give it its probe time to say ready.
 * @param {Step} t
 * @param {ConnectionSettings} settings
 */
export function openCurrent(t, settings) {
  const s = t.state;
  if (s.target === null) return;
  if (s.target.candidates.length === 0) {
    const why = s.target.skippedBefore.join("; ") || "none was offered";
    report(t, "error", `no way to reach the server (${why})`);
    return;
  }
  const candidate = s.target.candidates[s.candidate];
  report(t, "connecting", s.established ? "" : `trying ${candidate.transport}`);
  s.socketCount += 1;
  s.socket = s.socketCount;
  s.readySeen = false;
  s.opened = false;
  s.waitedLate = false;
  t.effects.push({
    type: "open",
    socket: s.socket,
    url: socketUrl(candidate.url, s.target.session, resumeFrom(s.cursor)),
    protocols: [DIALECT_SUBPROTOCOL],
    create: candidate.create ?? null,
  });
  start(t, "probe", probeTime(candidate, settings));
}

/**
 * Wait the backoff delay, then open the current candidate again.
 * @param {Step} t
 * @param {string} detail
 * @param {ConnectionSettings} settings
 */
export function scheduleRetry(t, detail, { baseMs, capMs, random }) {
  const delay = backoffDelay(t.state.attempt, { baseMs, capMs, random });
  t.state.attempt += 1;
  report(t, "closed", detail, { retryInMs: delay });
  start(t, "retry", delay);
}

/**
 * Give up the current candidate: try the next one now, or start over after a pause.
 * @param {Step} t
 * @param {string} detail
 * @param {ConnectionSettings} settings
 */
export function nextCandidate(t, detail, settings) {
  const tried = current(t.state);
  teardown(t);
  t.state.established = false;
  if (tried) t.state.skipped = [...t.state.skipped, `${tried.transport}: ${detail}`];
  if (t.state.target !== null && t.state.candidate + 1 < t.state.target.candidates.length) {
    t.state.candidate += 1;
    openCurrent(t, settings);
    return;
  }
  // The whole walk failed. A socket rung that worked before is refused now and the comm rung,
  // tried last, heard nothing: a gone kernel, or a blip; several walks like this are not a blip.
  const gone = t.state.socketWorked && !t.state.walkAnswered && isComm(tried);
  t.state.silentWalks = gone ? t.state.silentWalks + 1 : 0;
  if (t.state.silentWalks >= KERNEL_SILENT_WALKS) {
    kernelGone(t, "its server refuses connections and the widget's channel is silent");
    return;
  }
  restartLadder(t);
  scheduleRetry(t, `no transport answered (${detail})`, settings);
}

/**
 * End the attempts for good: the kernel that made this view is gone (`why` says how it showed).
 * A new target (the `connect` of a live kernel) starts them again.
 * @param {Step} t
 * @param {string} why
 */
export function kernelGone(t, why) {
  teardown(t);
  restartLadder(t);
  t.state.silentWalks = 0;
  report(t, "error", `${KERNEL_GONE} (${why})`);
}
