// Where the view is in a session's event sequence, for resuming after a reconnect (protocol
// section 4.1): the server run it came from (epoch) and the last session sequence handed on.
// Pure and immutable, like the reducer: every function returns a new cursor (or the same one
// when nothing changed). The Python client keeps the same bookkeeping in client/core.py
// (Cursor); connection-state.js holds one of these and asks it what to send.
//
// The position is known only once the transcript is in: a ready that is not a resume forgets
// it until the get_history reply names the sequence the transcript is exact at, since resuming
// from an earlier event's sequence would skip what that reply brings.

/**
 * @typedef {object} Cursor
 * @property {string | null} epoch  the server run the position belongs to
 * @property {number | null} seq  the last session sequence handed on, or null if unknown
 */

/**
 * The cursor of a view that has seen nothing yet (or moved to another session or server).
 * @returns {Cursor}
 */
export function initialCursor() {
  return { epoch: null, seq: null };
}

/**
 * The `resume` query value for the next connection ("<epoch>:<seq>"), or null to start afresh.
 * @param {Cursor} cursor
 * @returns {string | null}
 */
export function resumeFrom(cursor) {
  return cursor.epoch !== null && cursor.seq !== null ? `${cursor.epoch}:${cursor.seq}` : null;
}

/**
 * Take a connection's ready: a resumed one keeps the position, any other waits for the history.
 * @param {Cursor} cursor
 * @param {{epoch?: string, resumed?: boolean | null}} ready  the parsed ready event
 * @returns {Cursor}
 */
export function onReady(cursor, ready) {
  const epoch = ready.epoch || null;
  return { epoch, seq: ready.resumed === true ? cursor.seq : null };
}

/**
 * Take any other parsed frame: a history reply sets the position, a later session event moves it.
 * @param {Cursor} cursor
 * @param {{type: string, seq?: number | null, sequence?: number | null}} event
 * @returns {Cursor}
 */
export function onEvent(cursor, event) {
  if (event.type === "history" && typeof event.sequence === "number") {
    return advance(cursor, event.sequence);
  }
  // Only once the transcript is in: before the history reply, a position would skip what the
  // reply brings.
  if (cursor.seq !== null && typeof event.seq === "number") return advance(cursor, event.seq);
  return cursor;
}

/**
 * @param {Cursor} cursor
 * @param {number} seq
 * @returns {Cursor}
 */
function advance(cursor, seq) {
  if (cursor.seq !== null && seq <= cursor.seq) return cursor;
  return { ...cursor, seq };
}
