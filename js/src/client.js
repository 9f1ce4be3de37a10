// The connection edge: the thin shell around connection-state.js, which decides. This module
// performs what a step asks for: it creates sockets (with the injected WebSocket constructor or a
// candidate's own `create`), sets and clears the injected timers, sends frames, and calls
// onEvent and onConnection; each socket event and timer expiry goes back into the state as an
// input. connection-state.js describes the ladder walk, the backoff, the heartbeat and resume.
//
// The WebSocket constructor, the timers, the random source and the id generator are injected,
// so tests drive it with fakes. The token lives in this closure only: it goes as the first
// frame of a WebSocket and nowhere else (never into a URL, a subprotocol, which proxies log,
// an event, a connection report or the connection state).

import { backoffDelay, canSend, initialConnectionState, step } from "./connection-state.js";
import { control, createIdGenerator, encode, parse } from "./protocol.js";

export { backoffDelay };

const OPEN = 1;

/**
 * The timers a client schedules with (the page's, or a test's fake clock).
 * @typedef {object} Timers
 * @property {(fn: () => void, ms: number) => any} setTimeout
 * @property {(handle: any) => void} clearTimeout
 */

/** @typedef {import("./ladder.js").Candidate} Candidate */
/** @typedef {import("./connection-state.js").ConnectionChange} ConnectionChange */
/** @typedef {import("./connection-state.js").ConnectionInput} ConnectionInput */
/** @typedef {import("./connection-state.js").ConnectionEffect} ConnectionEffect */
/** @typedef {import("./connection-state.js").TimerName} TimerName */

/** @type {Timers} */
const defaultTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

/**
 * Create a client.
 *
 * Args (one object):
 *   WebSocket: the constructor for candidates without their own `create` (window.WebSocket).
 *   onEvent(event): every parsed server frame, in order, from the current connection only.
 *   onConnection({state, transport, detail, retryInMs, attempt, resumed, replayed}): connection
 *     changes; state is "connecting" | "open" | "closed" | "error". Never carries the token.
 *   timers: {setTimeout, clearTimeout}; random: () => [0, 1); newId: () => unique string.
 *   baseMs, capMs: the backoff schedule. probeMs: how long a candidate has to say `ready`,
 *     unless it brings its own (`probeMs`, the kernel's connect timeout); three times that once
 *     its socket opened.
 * Returns: {connect({url, token, session} | {candidates, token, session}), send(message) -> bool,
 *   close(), isOpen(), position()}.
 *
 * @param {object} options
 * @param {any} options.WebSocket
 * @param {(event: any) => void} [options.onEvent]
 * @param {(change: ConnectionChange) => void} [options.onConnection]
 * @param {Timers} [options.timers]
 * @param {() => number} [options.random]
 * @param {() => string} [options.newId]
 * @param {number} [options.baseMs]
 * @param {number} [options.capMs]
 * @param {number} [options.probeMs]
 * @param {number} [options.heartbeatMs]
 */
export function createClient({
  WebSocket,
  onEvent = () => {},
  onConnection = () => {},
  timers = defaultTimers,
  random = Math.random,
  newId = createIdGenerator({ random }),
  baseMs = 500,
  capMs = 10000,
  probeMs = 4000,
  heartbeatMs = 15000,
}) {
  if (typeof WebSocket !== "function") throw new TypeError("createClient needs a WebSocket constructor");
  const settings = { baseMs, capMs, probeMs, heartbeatMs, random };
  let state = initialConnectionState();
  /** @type {string | null} the token of the server connected to; null when there is none */
  let token = null;
  /** @type {{socket: number, ws: any} | null} the socket the state calls current */
  let live = null;
  /** @type {Record<TimerName, any>} the pending timers' handles, by name */
  const handles = { probe: null, heartbeat: null, retry: null };

  /**
   * Take one input and perform its effects; return the state the step made.
   * @param {ConnectionInput} input
   */
  function apply(input) {
    const next = step(state, input, settings);
    state = next.state;
    for (const effect of next.effects) {
      // An input taken meanwhile (a socket that could not be made, a listener that called
      // connect() or close()) has moved the client on: the rest was decided for a state that is gone.
      if (state !== next.state) break;
      perform(effect);
    }
    return next.state;
  }

  /** @param {ConnectionEffect} effect */
  function perform(effect) {
    switch (effect.type) {
      case "open":
        return openSocket(effect.socket, effect.url, effect.protocols, effect.create);
      case "close":
        return closeSocket(effect.socket, effect.code, effect.reason);
      case "detach":
        if (live?.socket === effect.socket) release();
        return;
      case "send":
        return sendFrame(effect.socket, effect.frame);
      case "start-timer":
        return startTimer(effect.timer, effect.ms);
      case "stop-timer":
        return stopTimer(effect.timer);
      case "deliver":
        return onEvent(effect.event);
      case "report":
        return onConnection(effect.change);
    }
  }

  /**
   * @param {number} socket
   * @param {string} url
   * @param {string[]} protocols
   * @param {Candidate["create"] | null} create
   */
  function openSocket(socket, url, protocols, create) {
    let ws;
    try {
      ws = create ? create(url, protocols) : new WebSocket(url, protocols);
    } catch {
      apply({ type: "open-failed", socket });
      return;
    }
    live = { socket, ws };
    ws.onopen = () => apply({ type: "opened", socket });
    ws.onmessage = (message) => {
      if (typeof message.data !== "string") return;
      const event = parse(message.data);
      apply({ type: "frame", socket, event });
      // Acted upon only once it has been handed on; the step ignores it if the listener has
      // replaced or closed the connection meanwhile.
      if (event !== null && event.type === "ready") apply({ type: "ready", socket, event });
    };
    ws.onclose = (event) => apply({ type: "closed", socket, code: event?.code, reason: event?.reason });
    ws.onerror = () => {}; // a close event always follows; it decides what happens next
  }

  /** Forget the current socket: none of its events reach the state any more. */
  function release() {
    const { ws } = /** @type {{ws: any}} */ (live);
    live = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    return ws;
  }

  /**
   * @param {number} socket
   * @param {number} code
   * @param {string} reason
   */
  function closeSocket(socket, code, reason) {
    if (live?.socket !== socket) return;
    const ws = release();
    try {
      ws.close(code, reason);
    } catch {
      // Closing a socket that never opened may throw in some engines; it is gone either way.
    }
  }

  /**
   * @param {number} socket
   * @param {"auth" | "ping" | "get_history"} frame
   */
  function sendFrame(socket, frame) {
    if (live?.socket !== socket || live.ws.readyState !== OPEN) return;
    if (frame === "auth") live.ws.send(encode({ type: "auth", token: /** @type {string} */ (token) }));
    else if (frame === "ping") live.ws.send(encode({ type: "ping", id: newId() }));
    else live.ws.send(encode(control(frame, newId())));
  }

  /**
   * @param {TimerName} timer
   * @param {number} ms
   */
  function startTimer(timer, ms) {
    stopTimer(timer);
    handles[timer] = timers.setTimeout(() => {
      handles[timer] = null;
      apply({ type: "timeout", timer });
    }, ms);
  }

  /** @param {TimerName} timer */
  function stopTimer(timer) {
    if (handles[timer] !== null) timers.clearTimeout(handles[timer]);
    handles[timer] = null;
  }

  /**
   * Connect to `session` through `candidates` (or the one WebSocket `url`), dropping any other.
   * @param {{url?: string, token: string, session: string, candidates?: Candidate[], skipped?: string[]}} target
   * @returns {boolean} false when it is the same target again and a socket is there
   */
  function connect({ url, token: secret, session, candidates, skipped = [] }) {
    const list = candidates ?? [{ transport: "websocket", url: url ?? "", reason: "websocket" }];
    const sameServer = secret === token;
    token = secret;
    const before = state;
    return apply({ type: "connect", candidates: list, skipped, session, sameServer }) !== before;
  }

  /**
   * Send a client message on the connection, if it is open and the server has said ready.
   * @param {object} message
   * @returns {boolean}
   */
  function send(message) {
    if (!isOpen()) return false;
    live?.ws.send(encode(message));
    return true;
  }

  function isOpen() {
    return canSend(state) && live !== null && live.ws.readyState === OPEN;
  }

  function close() {
    token = null;
    apply({ type: "close" });
  }

  return {
    connect,
    send,
    close,
    isOpen,
    position: () => ({ ...state.cursor }),
  };
}
