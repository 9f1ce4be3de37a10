// The connection edge: one session over the first transport of a ladder that answers,
// reconnected with capped, jittered exponential backoff and resumed where it stopped.
//
// A ladder is a list of candidates, tried in order ({transport, url, reason, create?}; see
// ladder.js): a candidate is taken when the server's `ready` comes through it within
// `probeMs`; otherwise the next one is tried, and the reason each was skipped or failed is
// reported. The transport that worked is kept for reconnects; when it stops answering the
// ladder is walked again from the top.
//
// Resume (protocol section 4.1): the client remembers the server's epoch and the last session
// sequence it handed on (cursor.js), and a reconnect asks for `resume=<epoch>:<seq>`. If the server
// replays what was missed (`resumed: true`) nothing else is needed: duplicates are dropped by
// sequence in the reducer. Otherwise the client reloads the transcript with get_history and
// says so.
//
// The WebSocket constructor, the timers, the random source and the id generator are injected,
// so tests drive it with fakes. The token lives in this closure only: it goes as the first
// frame of a WebSocket and nowhere else (never into a URL, a subprotocol, which proxies log,
// an event or a connection report).

import { onEvent as cursorOnEvent, onReady as cursorOnReady, initialCursor, resumeFrom } from "./cursor.js";
import { control, createIdGenerator, DIALECT_SUBPROTOCOL, encode, parse, socketUrl } from "./protocol.js";

const OPEN = 1;
/** Close codes after which reconnecting cannot help (protocol section 12). */
const FATAL_CLOSE_CODES = new Set([4400]);

/**
 * The timers a client schedules with (the page's, or a test's fake clock).
 * @typedef {object} Timers
 * @property {(fn: () => void, ms: number) => any} setTimeout
 * @property {(handle: any) => void} clearTimeout
 */

/** @typedef {import("./ladder.js").Candidate} Candidate */

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
 */

/** @type {Timers} */
const defaultTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

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

function closeDetail(event) {
  const code = event && Number.isInteger(event.code) ? event.code : 1006;
  const reason = event && typeof event.reason === "string" ? event.reason.slice(0, 120) : "";
  return reason ? `closed (${code}: ${reason})` : `closed (${code})`;
}

/**
 * Create a client.
 *
 * Args (one object):
 *   WebSocket: the constructor for candidates without their own `create` (window.WebSocket).
 *   onEvent(event): every parsed server frame, in order, from the current connection only.
 *   onConnection({state, transport, detail, retryInMs, attempt, resumed, replayed}): connection
 *     changes; state is "connecting" | "open" | "closed" | "error". Never carries the token.
 *   timers: {setTimeout, clearTimeout}; random: () => [0, 1); newId: () => unique string.
 *   baseMs, capMs: the backoff schedule. probeMs: how long a candidate has to say `ready`.
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
  /** @type {{candidates: Candidate[], token: string, session: string, key: string, skippedBefore: string[]} | null} */
  let target = null;
  let socket = null;
  let candidate = 0; // index of the candidate being tried or used
  let established = false; // the current candidate has said ready on this target before
  let readySeen = false; // the current socket has said ready
  let retryTimer = null;
  let probeTimer = null;
  let heartbeatTimer = null;
  let heard = false; // a frame arrived since the last heartbeat tick
  let attempt = 0;
  let stopped = false;
  /** @type {string[]} */
  let skipped = []; // why earlier candidates were not used, for the status line
  // Where we are in the session: the server run (epoch) and the last sequence handed on.
  let cursor = initialCursor();

  const current = () => (target === null ? null : target.candidates[candidate]);
  /**
   * @param {ConnectionChange["state"]} state
   * @param {string} [detail]
   * @param {Partial<ConnectionChange>} [extra]
   */
  const report = (state, detail = "", extra = {}) =>
    onConnection({
      state,
      transport: current()?.transport ?? "websocket",
      detail,
      retryInMs: null,
      attempt,
      ...extra,
    });

  function detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  // Try the candidates from the top again, with only the ladder's own reasons for skipping.
  function restartLadder() {
    established = false;
    candidate = 0;
    skipped = [...(target?.skippedBefore ?? [])];
  }

  function clearTimers() {
    if (retryTimer !== null) timers.clearTimeout(retryTimer);
    if (probeTimer !== null) timers.clearTimeout(probeTimer);
    if (heartbeatTimer !== null) timers.clearTimeout(heartbeatTimer);
    retryTimer = probeTimer = heartbeatTimer = null;
  }

  // Heartbeat: a connection that says nothing for a whole period is pinged; one that stays
  // silent for another period is dead (a sleeping laptop, a proxy that lost the server, a
  // comm to a kernel that is gone): drop it and reconnect. Browsers do not expose WebSocket
  // pings, so this is a protocol ping (section 8); the server detects a dead client by its own.
  function beat(ws) {
    heartbeatTimer = timers.setTimeout(() => {
      heartbeatTimer = null;
      if (ws !== socket) return;
      if (!heard && pinged) {
        teardown(4000, "no answer to heartbeat");
        scheduleRetry(`no answer in ${Math.round((2 * heartbeatMs) / 1000)} s`);
        return;
      }
      pinged = !heard;
      if (pinged && ws.readyState === OPEN) ws.send(encode({ type: "ping", id: newId() }));
      heard = false;
      beat(ws);
    }, heartbeatMs);
  }
  let pinged = false;

  function teardown(code = 1000, reason = "replaced") {
    clearTimers();
    if (socket) {
      const old = socket;
      socket = null;
      detach(old);
      try {
        old.close(code, reason);
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

  // The current candidate did not work: try the next one now, or start over after a pause.
  function nextCandidate(detail) {
    const tried = current();
    teardown();
    established = false;
    if (tried) skipped.push(`${tried.transport}: ${detail}`);
    if (target !== null && candidate + 1 < target.candidates.length) {
      candidate += 1;
      open();
      return;
    }
    restartLadder();
    scheduleRetry(`no transport answered (${detail})`);
  }

  function handleReady(ws, event) {
    readySeen = true;
    if (probeTimer !== null) timers.clearTimeout(probeTimer);
    probeTimer = null;
    heard = true;
    pinged = false;
    if (heartbeatTimer !== null) timers.clearTimeout(heartbeatTimer);
    if (heartbeatMs > 0) beat(ws);
    attempt = 0; // the server accepted us: the next failure starts the schedule again
    established = true;
    const resumed = event.resumed === true;
    cursor = cursorOnReady(cursor, event);
    const why = skipped.length ? ` (${skipped.join("; ")})` : "";
    const tried = current();
    const chosen = `${tried?.reason || tried?.transport}${why}`;
    if (resumed) {
      report("open", `${chosen}; resumed, ${event.replayed ?? 0} events replayed`, {
        resumed: true,
        replayed: event.replayed ?? 0,
      });
      return;
    }
    // Catch up (first connect, a reconnect that could not resume, or a view shown mid-turn):
    // the reply resets the transcript and names the sequence it is exact at.
    const reloaded = event.resumed === false ? "; could not resume, reloaded the transcript" : "";
    report("open", `${chosen}${reloaded}`, { resumed: event.resumed ?? null, replayed: 0 });
    ws.send(encode(control("get_history", newId())));
  }

  function handleMessage(ws, event) {
    if (ws !== socket || typeof event.data !== "string") return;
    heard = true;
    const parsed = parse(event.data);
    if (parsed === null) return;
    if (parsed.type === "ready") {
      onEvent(parsed);
      if (socket === ws) handleReady(ws, parsed);
      return;
    }
    cursor = cursorOnEvent(cursor, parsed);
    onEvent(parsed);
  }

  function handleClose(ws, event) {
    if (ws !== socket) return;
    socket = null;
    detach(ws);
    if (probeTimer !== null) timers.clearTimeout(probeTimer);
    if (heartbeatTimer !== null) timers.clearTimeout(heartbeatTimer);
    probeTimer = heartbeatTimer = null;
    if (stopped) return;
    if (event && FATAL_CLOSE_CODES.has(event.code)) {
      report("error", closeDetail(event));
      return;
    }
    if (!readySeen && !established) {
      nextCandidate(closeDetail(event));
      return;
    }
    // The transport that worked before does not answer now: walk the ladder again.
    if (!readySeen) restartLadder();
    scheduleRetry(closeDetail(event));
  }

  function open() {
    if (stopped || target === null) return;
    if (target.candidates.length === 0) {
      const why = target.skippedBefore.join("; ") || "none was offered";
      report("error", `no way to reach the server (${why})`);
      return;
    }
    const cand = target.candidates[candidate];
    report("connecting", established ? "" : `trying ${cand.transport}`);
    const resume = resumeFrom(cursor);
    const url = socketUrl(cand.url, target.session, resume);
    const protocols = [DIALECT_SUBPROTOCOL];
    const token = target.token;
    let ws;
    try {
      ws = cand.create ? cand.create(url, protocols) : new WebSocket(url, protocols);
    } catch {
      if (established) scheduleRetry("could not open the connection (bad URL)");
      else nextCandidate("could not open the connection (bad URL)");
      return;
    }
    socket = ws;
    readySeen = false;
    // The server answers nothing until it has the token (protocol section 2). A comm link needs
    // none: it rides the kernel's channel, which Jupyter has already authenticated.
    ws.onopen = () => {
      if (!cand.create && ws === socket) ws.send(encode({ type: "auth", token }));
    };
    ws.onmessage = (event) => handleMessage(ws, event);
    ws.onclose = (event) => handleClose(ws, event);
    ws.onerror = () => {}; // a close event always follows; it decides what happens next
    // A socket that opens but never says ready (a proxy that accepted the upgrade and lost the
    // server, a busy kernel that does not take the comm link) must not hang the view.
    probeTimer = timers.setTimeout(() => {
      probeTimer = null;
      if (ws !== socket || readySeen) return;
      const detail = `no answer in ${Math.round(probeMs / 1000)} s`;
      if (!established) {
        nextCandidate(detail);
        return;
      }
      teardown();
      restartLadder();
      scheduleRetry(detail);
    }, probeMs);
  }

  /**
   * Connect to `session` through `candidates` (or the one WebSocket `url`), dropping any other.
   * @param {{url?: string, token: string, session: string, candidates?: Candidate[], skipped?: string[]}} target
   * @returns {boolean} false when it is the same target again and a socket is there
   */
  function connect({ url, token, session, candidates, skipped: skippedBefore = [] }) {
    stopped = false;
    const list = candidates ?? [{ transport: "websocket", url: url ?? "", reason: "websocket" }];
    const key = JSON.stringify(list.map((c) => [c.transport, c.url]));
    const same = target !== null && target.key === key && target.token === token && target.session === session;
    // The kernel answers every view's hello to all views: the same target again is a no-op
    // while a socket exists; while waiting to retry it means "the server is there: go now".
    if (same && socket !== null) return false;
    teardown();
    if (target === null || target.session !== session || target.token !== token) {
      // Another session, or another server (a new token): nothing to resume from.
      cursor = initialCursor();
    }
    target = { candidates: list, token, session, key, skippedBefore };
    candidate = 0;
    established = false;
    skipped = [...skippedBefore];
    attempt = 0;
    open();
    return true;
  }

  function send(message) {
    if (socket === null || socket.readyState !== OPEN || !readySeen) return false;
    socket.send(encode(message));
    return true;
  }

  function close() {
    stopped = true;
    teardown();
    target = null;
    report("closed");
  }

  return {
    connect,
    send,
    close,
    isOpen: () => socket !== null && socket.readyState === OPEN && readySeen,
    position: () => ({ ...cursor }),
  };
}
