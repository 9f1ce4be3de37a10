import assert from "node:assert/strict";
import { test } from "node:test";

import { initialCursor, onEvent, onReady, resumeFrom } from "../src/cursor.js";
import { parse } from "../src/protocol.js";
import { frames } from "./helpers.js";

/** Feed parsed frames to a cursor, the ready ones through onReady. */
function feed(cursor, ...frameObjects) {
  for (const frame of frameObjects) {
    const event = parse(frame);
    cursor = event.type === "ready" ? onReady(cursor, event) : onEvent(cursor, event);
  }
  return cursor;
}

test("a fresh view asks to resume nothing", () => {
  assert.equal(resumeFrom(initialCursor()), null);
});

test("no resume before the transcript is in: a ready alone names no position", () => {
  const cursor = feed(initialCursor(), frames.readyResume({ sequence: 4, epoch: "E1" }), frames.delta(5, "x"));
  assert.deepEqual(cursor, { epoch: "E1", seq: null });
  assert.equal(resumeFrom(cursor), null);
});

test("the history reply sets the position and later session events move it", () => {
  const cursor = feed(
    initialCursor(),
    frames.readyResume({ sequence: 4, epoch: "E1" }),
    frames.history(4, []),
    frames.delta(5, "a"),
    frames.delta(6, "b"),
  );
  assert.equal(resumeFrom(cursor), "E1:6");
});

test("replies and replayed duplicates do not move the position back", () => {
  const start = feed(initialCursor(), frames.readyResume({ epoch: "E1" }), frames.history(9, []));
  const after = feed(start, frames.delta(7, "old"), frames.errorReply(), frames.history(3, []));
  assert.equal(after, start, "nothing changed: the same cursor");
  assert.equal(resumeFrom(after), "E1:9");
});

test("a resumed ready keeps the position; one that could not resume waits for the history again", () => {
  const at = feed(initialCursor(), frames.readyResume({ epoch: "E1" }), frames.history(5, []));
  const resumed = feed(at, frames.readyResume({ sequence: 8, epoch: "E1", resumed: true, replayed: 3 }));
  assert.equal(resumeFrom(resumed), "E1:5");
  const restarted = feed(at, frames.readyResume({ sequence: 0, epoch: "E2", resumed: false }));
  assert.deepEqual(restarted, { epoch: "E2", seq: null }, "a new server run: the old position is gone");
  assert.equal(resumeFrom(feed(restarted, frames.history(0, []))), "E2:0");
});

test("a server without an epoch is never resumed", () => {
  const cursor = feed(initialCursor(), frames.ready(3), frames.history(3, []), frames.delta(4, "x"));
  assert.equal(cursor.seq, 4);
  assert.equal(resumeFrom(cursor), null);
});
