// The connection's decisions, apart from its effects: which ladder candidate to try next, when to
// retry and after how long, when a socket counts as established, what heartbeat silence and a
// close code mean. Pure, like cursor.js and reducer.js: step(state, input, settings) returns the
// next state and the effects for client.js to perform, in order (open or close a socket, send a
// frame, start or stop a timer, hand an event on, report a change). An input that changes
// nothing returns the same state object and no effects.
//
// No DOM, no WebSocket, no clock and no token: sockets are known by number, timers by name, the
// shell adds the token to the `auth` frame and the ids to the frames it sends, and the one
// random source (the backoff's jitter) comes in with the settings.
//
// The ladder (ladder.js): a candidate is taken when the server's `ready` comes through it within
// its probe time (the kernel's connect timeout, else `probeMs`); a candidate whose socket opened
// gets LATE_READY_FACTOR times that, since the way in works and only a busy machine is late;
// otherwise the next one is tried at once, and the reason each was skipped or failed goes into
// the open report, which says `fallback` when a rung above the one taken was tried and failed.
// The candidate that worked is kept for reconnects; when it stops answering before `ready`, the
// ladder is walked again from the top. Every failure after the last `ready` waits a capped,
// jittered exponential backoff before the next attempt.
//
// A view whose kernel is gone (restarted, shut down) can never reach its server again, and
// says so instead of retrying forever (KERNEL_GONE, an error: no more attempts). It shows in
// three ways: the comm rung cannot even be made (the widget's comm is closed); a server on the
// old address refuses the token (4401 `invalid token`: another server); or KERNEL_SILENT_WALKS
// walks in a row end with every socket rung refused (closed before ready, by no server of
// ours), although one of them worked before on this target, and the comm rung silent (a live
// kernel answers a link, even with no server; a busy one is only slow, and the sockets of its
// server stay open).
// Only a new `connect`, which a live kernel sends, starts the attempts again.
//
// Resume (protocol section 4.1) is cursor.js's bookkeeping: each socket's URL asks for
// `resume=<epoch>:<seq>` when the cursor knows a position. A `ready` that did not resume asks
// for the transcript with get_history; one that did needs nothing else, since the reducer drops
// replayed duplicates by sequence.

import {
  begin,
  closeDetail,
  current,
  isComm,
  kernelGone,
  nextCandidate,
  openCurrent,
  probeTime,
  report,
  restartLadder,
  scheduleRetry,
  seconds,
  start,
  stop,
  teardown,
  unchanged,
} from "./connection-moves.js";
import { onEvent as cursorOnEvent, onReady as cursorOnReady, initialCursor } from "./cursor.js";

export { backoffDelay, closeDetail } from "./connection-moves.js";

/** Close codes after which reconnecting cannot help (protocol section 12). */
export const FATAL_CLOSE_CODES = new Set([4400]);

/** How many probe times a candidate whose socket opened has to say ready. */
export const LATE_READY_FACTOR = 3;

export { KERNEL_GONE, KERNEL_SILENT_WALKS } from "./connection-moves.js";

/** @typedef {import("./cursor.js").Cursor} Cursor */
/** @typedef {import("./ladder.js").Candidate} Candidate */
/** @typedef {import("./protocol.js").ServerEvent} ServerEvent */

/**
 * A connection change, as the client reports it (never carries the token).
 * @typedef {object} ConnectionChange
 * @property {"connecting" | "open" | "closed" | "error"} state
 * @property {string} transport
 * @property {string} detail
 * @property {number | null} retryInMs
 * @property {number} attempt
 * @property {boolean | null} [resumed]
 * @property {number} [replayed]
 * @property {boolean} [fallback]  on "open": a rung above the one taken was tried and failed
 */

/**
 * What the client connects to: one session through a ladder (the token stays in client.js).
 * @typedef {object} Target
 * @property {Candidate[]} candidates
 * @property {string} session
 * @property {string} key  the candidates' transports and URLs, to recognise the same ladder
 * @property {string[]} skippedBefore  the ladder's own reasons for the rungs it left out
 */

/** @typedef {"probe" | "heartbeat" | "retry"} TimerName */

/**
 * The connection's whole state.
 * @typedef {object} ConnectionState
 * @property {Target | null} target  null before the first connect and after close
 * @property {number} candidate  index of the candidate being tried or used
 * @property {boolean} established  the current candidate has said ready on this target before
 * @property {number | null} socket  the current socket's number, or null when there is none
 * @property {number} socketCount  sockets opened so far (the last one's number)
 * @property {boolean} readySeen  the current socket has said ready
 * @property {boolean} opened  the current socket has opened
 * @property {boolean} waitedLate  its probe was extended because it opened and was late
 * @property {boolean} socketWorked  a socket rung (not the comm) has said ready on this target
 * @property {boolean} walkAnswered  on this walk of the ladder the comm answered, a socket stayed
 *     open until its probe ran out, or a server closed one with a code of its own
 * @property {number} silentWalks  walks in a row that ended as a gone kernel's do
 * @property {boolean} heard  a frame arrived since the last heartbeat tick
 * @property {boolean} pinged  the last heartbeat tick sent a ping
 * @property {number} attempt  failures since the last ready: the backoff's exponent
 * @property {string[]} skipped  why earlier candidates were not used, for the status line
 * @property {Record<TimerName, boolean>} timers  which timers are running
 * @property {Cursor} cursor  where the session stands, for resuming
 */

/**
 * What happened: a call of the client's API, a socket's event or a timer's expiry.
 * @typedef {{type: "connect", candidates: Candidate[], skipped: string[], session: string,
 *     sameServer: boolean}
 *   | {type: "close"}
 *   | {type: "opened", socket: number}
 *   | {type: "open-failed", socket: number}
 *   | {type: "frame", socket: number, event: ServerEvent | null}
 *   | {type: "ready", socket: number, event: ServerEvent}
 *   | {type: "closed", socket: number, code?: unknown, reason?: unknown}
 *   | {type: "timeout", timer: TimerName}} ConnectionInput
 */

/**
 * What the shell does, in order. `send` names the frame; the shell builds it (token, ids).
 * @typedef {{type: "open", socket: number, url: string, protocols: string[],
 *     create: Candidate["create"] | null}
 *   | {type: "close", socket: number, code: number, reason: string}
 *   | {type: "detach", socket: number}
 *   | {type: "send", socket: number, frame: "auth" | "ping" | "get_history"}
 *   | {type: "start-timer", timer: TimerName, ms: number}
 *   | {type: "stop-timer", timer: TimerName}
 *   | {type: "deliver", event: ServerEvent}
 *   | {type: "report", change: ConnectionChange}} ConnectionEffect
 */

/**
 * The schedule and the random source.
 * @typedef {object} ConnectionSettings
 * @property {number} baseMs  the first backoff delay
 * @property {number} capMs  the longest backoff delay
 * @property {number} probeMs  how long a candidate has to say ready, unless it has its own time
 * @property {number} heartbeatMs  the heartbeat period; 0 turns it off
 * @property {() => number} random  in [0, 1), for the backoff's jitter
 */

/** @typedef {{state: ConnectionState, effects: ConnectionEffect[]}} Step */

/**
 * The state of a client that has not connected yet.
 * @returns {ConnectionState}
 */
export function initialConnectionState() {
  return {
    target: null,
    candidate: 0,
    established: false,
    socket: null,
    socketCount: 0,
    readySeen: false,
    opened: false,
    waitedLate: false,
    socketWorked: false,
    walkAnswered: false,
    silentWalks: 0,
    heard: false,
    pinged: false,
    attempt: 0,
    skipped: [],
    timers: { probe: false, heartbeat: false, retry: false },
    cursor: initialCursor(),
  };
}

/**
 * Whether client messages may go out: the current socket has said ready (and is open, which
 * only the shell can see).
 * @param {ConnectionState} state
 * @returns {boolean}
 */
export function canSend(state) {
  return state.socket !== null && state.readySeen;
}

/**
 * Take one input: return the next state and the effects to perform, in order.
 * @param {ConnectionState} state
 * @param {ConnectionInput} input
 * @param {ConnectionSettings} settings
 * @returns {Step}
 */
export function step(state, input, settings) {
  switch (input.type) {
    case "connect":
      return connect(state, input, settings);
    case "close":
      return close(state);
    case "opened":
      return opened(state, input.socket);
    case "open-failed":
      return openFailed(state, input.socket, settings);
    case "frame":
      return frame(state, input.socket, input.event);
    case "ready":
      return ready(state, input.socket, input.event, settings);
    case "closed":
      return closed(state, input.socket, input.code, input.reason, settings);
    case "timeout":
      return timeout(state, input.timer, settings);
    default:
      return unchanged(state);
  }
}

// --- the inputs -------------------------------------------------------------------------------

/**
 * Connect to a new target; do nothing if it is the target in use and a socket is there.
 * @param {ConnectionState} state
 * @param {{candidates: Candidate[], skipped: string[], session: string, sameServer: boolean}} to
 * @param {ConnectionSettings} settings
 * @returns {Step}
 */
function connect(state, { candidates, skipped, session, sameServer }, settings) {
  const key = JSON.stringify(candidates.map((c) => [c.transport, c.url]));
  const { target } = state;
  const same = target !== null && target.key === key && sameServer && target.session === session;
  // The kernel answers every view's hello to all views: the same target again is a no-op while
  // a socket exists; while waiting to retry it means "the server is there: go now".
  if (same && state.socket !== null) return unchanged(state);
  const t = begin(state);
  teardown(t);
  const s = t.state;
  // Another session, or another server (a new token): nothing to resume from.
  if (target === null || target.session !== session || !sameServer) s.cursor = initialCursor();
  s.target = { candidates, session, key, skippedBefore: skipped };
  s.candidate = 0;
  s.established = false;
  s.skipped = [...skipped];
  s.attempt = 0;
  s.socketWorked = false;
  s.walkAnswered = false;
  s.silentWalks = 0;
  openCurrent(t, settings);
  return t;
}

/**
 * Stop: close the socket, stop every timer, forget the target.
 * @param {ConnectionState} state
 * @returns {Step}
 */
function close(state) {
  const t = begin(state);
  teardown(t);
  t.state.target = null;
  report(t, "closed");
  return t;
}

/**
 * Note that the socket opened and ask for the auth frame, unless its candidate needs none.
 * @param {ConnectionState} state
 * @param {number} socket
 * @returns {Step}
 */
function opened(state, socket) {
  if (socket !== state.socket) return unchanged(state);
  const t = begin(state);
  t.state.opened = true;
  if (isComm(current(state))) t.state.walkAnswered = true; // the kernel linked: it lives
  // The server answers nothing until it has the token (protocol section 2). A comm link needs
  // none: it rides the kernel's channel, which Jupyter has already authenticated.
  if (!current(state)?.create) t.effects.push({ type: "send", socket, frame: "auth" });
  return t;
}

/**
 * Count a socket that could not be made as a failed candidate, or a failed retry once established.
 * @param {ConnectionState} state
 * @param {number} socket
 * @param {ConnectionSettings} settings
 * @returns {Step}
 */
function openFailed(state, socket, settings) {
  if (socket !== state.socket) return unchanged(state);
  const t = begin(state);
  t.state.socket = null;
  stop(t, "probe"); // the probe of a socket that never was
  if (isComm(current(state))) {
    // The comm rung's socket cannot be made only when the widget's comm is closed: the kernel
    // that made this widget is gone, and with it the server every rung leads to.
    kernelGone(t, "the widget's channel is closed");
    return t;
  }
  const detail = "could not open the connection (bad URL)";
  if (state.established) scheduleRetry(t, detail, settings);
  else nextCandidate(t, detail, settings);
  return t;
}

/**
 * Take a frame (parsed, or null when it was not one): it counts as life and is handed on. A
 * `ready` is acted upon by its own input, once it has been handed on.
 * @param {ConnectionState} state
 * @param {number} socket
 * @param {ServerEvent | null} event
 * @returns {Step}
 */
function frame(state, socket, event) {
  if (socket !== state.socket) return unchanged(state);
  const t = begin(state);
  t.state.heard = true;
  if (event === null) return t;
  if (event.type !== "ready") t.state.cursor = cursorOnEvent(t.state.cursor, event);
  t.effects.push({ type: "deliver", event });
  return t;
}

/**
 * Make the socket the server accepted the connection: probe off, heartbeat on, catch up.
 * @param {ConnectionState} state
 * @param {number} socket
 * @param {ServerEvent} event
 * @param {ConnectionSettings} settings
 * @returns {Step}
 */
function ready(state, socket, event, settings) {
  if (socket !== state.socket) return unchanged(state);
  const t = begin(state);
  const s = t.state;
  s.readySeen = true;
  stop(t, "probe");
  s.heard = true;
  s.pinged = false;
  stop(t, "heartbeat");
  if (settings.heartbeatMs > 0) start(t, "heartbeat", settings.heartbeatMs);
  s.attempt = 0; // the next failure starts the schedule again
  s.established = true;
  s.silentWalks = 0;
  if (!isComm(current(s))) s.socketWorked = true;
  s.cursor = cursorOnReady(s.cursor, { epoch: event.epoch, resumed: event.resumed });
  const why = s.skipped.length ? ` (${s.skipped.join("; ")})` : "";
  const chosen = current(s);
  // The candidates above this one were tried on this walk and failed: say so, never silently.
  const fallback = s.candidate > 0;
  const how = `${fallback ? "fallback: " : ""}${chosen?.reason || chosen?.transport}${why}`;
  const replayed = event.replayed ?? 0;
  if (event.resumed === true) {
    report(t, "open", `${how}; resumed, ${replayed} events replayed`, { resumed: true, replayed, fallback });
    return t;
  }
  // Catch up (first connect, a reconnect that could not resume, or a view shown mid-turn): the
  // reply resets the transcript and names the sequence it is exact at.
  const reloaded = event.resumed === false ? "; could not resume, reloaded the transcript" : "";
  report(t, "open", `${how}${reloaded}`, { resumed: event.resumed ?? null, replayed: 0, fallback });
  t.effects.push({ type: "send", socket, frame: "get_history" });
  return t;
}

/**
 * Decide what a socket that closed by itself means: an error, the next candidate or a retry.
 * @param {ConnectionState} state
 * @param {number} socket
 * @param {unknown} code
 * @param {unknown} reason
 * @param {ConnectionSettings} settings
 * @returns {Step}
 */
function closed(state, socket, code, reason, settings) {
  if (socket !== state.socket) return unchanged(state);
  const t = begin(state);
  t.state.socket = null;
  if (isComm(current(state)) || serverSpoke(code)) t.state.walkAnswered = true;
  t.effects.push({ type: "detach", socket });
  stop(t, "probe");
  stop(t, "heartbeat");
  const detail = closeDetail(code, reason);
  if (code === 4401 && reason === "invalid token") {
    // This view's token is its server's; a server that does not know it is another one, on a
    // port the view's dead server had (protocol section 2).
    kernelGone(t, `the server on this address does not know this view: ${detail}`);
    return t;
  }
  if (typeof code === "number" && FATAL_CLOSE_CODES.has(code)) {
    report(t, "error", detail);
    return t;
  }
  if (!state.readySeen && !state.established) {
    nextCandidate(t, detail, settings);
    return t;
  }
  // The transport that worked before does not answer now: walk the ladder again.
  if (!state.readySeen) restartLadder(t);
  scheduleRetry(t, detail, settings);
  return t;
}

/**
 * Whether a close code comes from a live llmsock server (its own 4xxx codes, 1013 when full),
 * not from a browser or proxy that found nothing to talk to.
 * @param {unknown} code
 * @returns {boolean}
 */
function serverSpoke(code) {
  return typeof code === "number" && ((code >= 4000 && code < 5000) || code === 1013);
}

/**
 * Act on a timer that ran out.
 * @param {ConnectionState} state
 * @param {TimerName} timer
 * @param {ConnectionSettings} settings
 * @returns {Step}
 */
function timeout(state, timer, settings) {
  if (!state.timers[timer]) return unchanged(state);
  const t = begin(state);
  t.state.timers = { ...t.state.timers, [timer]: false };
  if (timer === "retry") openCurrent(t, settings);
  else if (timer === "probe") probeExpired(t, settings);
  else heartbeatTick(t, settings);
  return t;
}

/**
 * Give up a socket that opened but did not say ready in time: it must not hang the view (a
 * proxy that accepted the upgrade and lost the server, a busy kernel that does not take the comm).
 * @param {Step} t
 * @param {ConnectionSettings} settings
 */
function probeExpired(t, settings) {
  const s = t.state;
  if (s.socket === null || s.readySeen) return;
  const chosen = current(s);
  const probeMs = probeTime(chosen, settings);
  // Open and silent: something holds the socket (a busy server), unlike a proxy with nothing
  // behind it, which accepts the socket and closes it at once.
  if (s.opened) s.walkAnswered = true;
  if (s.opened && !s.waitedLate) {
    // The socket opened, so this way in works: a loaded machine (the kernel, the proxy, the
    // page) answers late. Wait longer before moving down a rung, and say so.
    s.waitedLate = true;
    const more = probeMs * (LATE_READY_FACTOR - 1);
    report(t, "connecting", `${chosen?.transport}: opened, no answer yet; waiting ${seconds(more)} more`);
    start(t, "probe", more);
    return;
  }
  const detail = `no answer in ${seconds(s.waitedLate ? probeMs * LATE_READY_FACTOR : probeMs)}`;
  if (!t.state.established) {
    nextCandidate(t, detail, settings);
    return;
  }
  teardown(t);
  restartLadder(t);
  scheduleRetry(t, detail, settings);
}

/**
 * Ping a connection silent for a whole period; drop one silent for another and reconnect.
 * Silence that long means it is dead: a sleeping laptop, a proxy that lost the server, a comm to
 * a kernel that is gone. Browsers do not expose WebSocket pings, so this is a protocol ping
 * (section 8); the server detects a dead client by its own.
 * @param {Step} t
 * @param {ConnectionSettings} settings
 */
function heartbeatTick(t, settings) {
  const s = t.state;
  if (s.socket === null) return;
  if (!s.heard && s.pinged) {
    teardown(t, 4000, "no answer to heartbeat");
    scheduleRetry(t, `no answer in ${seconds(2 * settings.heartbeatMs)}`, settings);
    return;
  }
  s.pinged = !s.heard;
  if (s.pinged) t.effects.push({ type: "send", socket: s.socket, frame: "ping" });
  s.heard = false;
  start(t, "heartbeat", settings.heartbeatMs);
}
