// The WebSocket edge: one socket on one session, reconnected with capped, jittered exponential
// backoff. The WebSocket constructor, the timers, the random source and the id generator are
// injected, so tests drive it with fakes. The token lives in this closure only: it goes into the
// subprotocol list and nowhere else (never into a URL, an event or a connection report).

import { control, createIdGenerator, encode, parse, socketUrl, subprotocols } from "./protocol.js";

const OPEN = 1;
/** Close codes after which reconnecting cannot help (protocol section 12). */
const FATAL_CLOSE_CODES = new Set([4400]);

const defaultTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

/** Delay before reconnect attempt `attempt` (0-based): base * 2^attempt, capped, half jittered. */
export function backoffDelay(attempt, { baseMs = 500, capMs = 10000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

function closeDetail(event) {
  const code = event && Number.isInteger(event.code) ? event.code : 1006;
  const reason = event && typeof event.reason === "string" ? event.reason.slice(0, 120) : "";
  return reason ? `closed (${code}: ${reason})` : `closed (${code})`;
}

/**
 * Create a client.
 *
 * Args (one object):
 *   WebSocket: the constructor to use (window.WebSocket in the browser, a fake in tests).
 *   onEvent(event): every parsed server frame, in order, from the current socket only.
 *   onConnection({state, transport, detail, retryInMs, attempt}): connection changes; state is
 *     "connecting" | "open" | "closed" | "error". Never carries the URL or the token.
 *   timers: {setTimeout, clearTimeout}; random: () => [0, 1); newId: () => unique string.
 *   baseMs, capMs: the backoff schedule.
 * Returns: {connect({url, token, session}), send(message) -> bool, close(), isOpen()}.
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
}) {
  if (typeof WebSocket !== "function") throw new TypeError("createClient needs a WebSocket constructor");
  let target = null; // {url, token, session}
  let socket = null;
  let retryTimer = null;
  let attempt = 0;
  let stopped = false;

  const report = (state, detail = "", extra = {}) =>
    onConnection({ state, transport: "websocket", detail, retryInMs: null, attempt, ...extra });

  function detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  function teardown() {
    if (retryTimer !== null) timers.clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) {
      const old = socket;
      socket = null;
      detach(old);
      try {
        old.close(1000, "replaced");
      } catch {
        // Closing a socket that never opened may throw in some engines; it is gone either way.
      }
    }
  }

  function scheduleRetry(detail) {
    const delay = backoffDelay(attempt, { baseMs, capMs, random });
    attempt += 1;
    report("closed", detail, { retryInMs: delay });
    retryTimer = timers.setTimeout(() => {
      retryTimer = null;
      open();
    }, delay);
  }

  function handleMessage(ws, event) {
    if (ws !== socket || typeof event.data !== "string") return;
    const parsed = parse(event.data);
    if (parsed === null) return;
    onEvent(parsed);
    if (parsed.type === "ready" && socket === ws) {
      attempt = 0; // the server accepted us: the next failure starts the schedule again
      // Catch up (first connect, reconnect, or a view shown mid-turn): the reply resets the
      // transcript and names the sequence it is exact at.
      ws.send(encode(control("get_history", newId())));
    }
  }

  function handleClose(ws, event) {
    if (ws !== socket) return;
    socket = null;
    detach(ws);
    if (stopped) return;
    if (event && FATAL_CLOSE_CODES.has(event.code)) {
      report("error", closeDetail(event));
      return;
    }
    scheduleRetry(closeDetail(event));
  }

  function open() {
    if (stopped || target === null) return;
    report("connecting");
    let ws;
    try {
      ws = new WebSocket(socketUrl(target.url, target.session), subprotocols(target.token));
    } catch {
      // The engine's message may quote the subprotocols, which hold the token: say it plainly.
      scheduleRetry("could not open the WebSocket (bad URL or token)");
      return;
    }
    socket = ws;
    ws.onopen = () => {
      if (ws === socket) report("open");
    };
    ws.onmessage = (event) => handleMessage(ws, event);
    ws.onclose = (event) => handleClose(ws, event);
    ws.onerror = () => {}; // a close event always follows; it decides what happens next
  }

  function connect({ url, token, session }) {
    stopped = false;
    const same =
      target !== null && target.url === url && target.token === token && target.session === session;
    // The kernel answers every view's hello to all views: the same target again is a no-op
    // while a socket exists; while waiting to retry it means "the server is there: go now".
    if (same && socket !== null) return false;
    teardown();
    target = { url, token, session };
    attempt = 0;
    open();
    return true;
  }

  function send(message) {
    if (socket === null || socket.readyState !== OPEN) return false;
    socket.send(encode(message));
    return true;
  }

  function close() {
    stopped = true;
    teardown();
    target = null;
    report("closed");
  }

  return { connect, send, close, isOpen: () => socket !== null && socket.readyState === OPEN };
}
