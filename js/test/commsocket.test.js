import assert from "node:assert/strict";
import { test } from "node:test";

import { commSocketFactory, createCommSocket } from "../src/commsocket.js";
import { fakeModel } from "./helpers.js";

function setup(url = "comm:?session=my%20session&resume=E1%3A5") {
  const model = fakeModel();
  const socket = createCommSocket(model, "L1", url);
  const log = [];
  socket.onopen = () => log.push(["open"]);
  socket.onmessage = (event) => log.push(["message", event.data]);
  socket.onclose = (event) => log.push(["close", event.code, event.reason, event.wasClean]);
  const kernel = (content) => model.emit("msg:custom", { link: "L1", ...content });
  return { model, socket, log, kernel };
}

test("a new comm socket sends a link message with the session and resume from the URL", () => {
  const { model, socket } = setup();
  assert.deepEqual(model.sent, [{ kind: "link", link: "L1", session: "my session", resume: "E1:5" }]);
  assert.equal(socket.readyState, 0);
  assert.equal(model.count("msg:custom"), 1);
  const plain = setup("comm:?session=s2");
  assert.deepEqual(plain.model.sent, [{ kind: "link", link: "L1", session: "s2", resume: null }]);
});

test("the factory gives every socket its own link id and ignores the protocols (no token)", () => {
  const model = fakeModel();
  let n = 0;
  const make = commSocketFactory(model, () => `link-${++n}`);
  const a = make("comm:?session=s", ["llmsock.envelope.v1", "llmsock.token.SECRET"]);
  const b = make("comm:?session=s", ["llmsock.envelope.v1", "llmsock.token.SECRET"]);
  assert.equal(a.link, "link-1");
  assert.equal(b.link, "link-2");
  assert.deepEqual(
    model.sent.map((m) => m.link),
    ["link-1", "link-2"],
  );
  assert.ok(!JSON.stringify(model.sent).includes("SECRET"), "the token never goes over the comm");
});

test("'linked' opens the socket", () => {
  const { socket, log, kernel } = setup();
  kernel({ kind: "linked", session: "my session" });
  assert.equal(socket.readyState, 1);
  assert.deepEqual(log, [["open"]]);
  kernel({ kind: "linked", session: "my session" }); // a repeat does not open twice
  assert.deepEqual(log, [["open"]]);
});

test("frames are delivered in order, one onmessage each", () => {
  const { log, kernel } = setup();
  kernel({ kind: "linked" });
  kernel({ kind: "frames", frames: ["a", "b"] });
  kernel({ kind: "frames", frames: ["c", 42, "d"] }); // a non-text frame is skipped
  kernel({ kind: "frames", frames: "not a list" });
  assert.deepEqual(log, [["open"], ["message", "a"], ["message", "b"], ["message", "c"], ["message", "d"]]);
});

test("messages for another link (or not for links at all) are ignored", () => {
  const { model, socket, log } = setup();
  model.emit("msg:custom", { kind: "linked", link: "L2" });
  model.emit("msg:custom", { kind: "frames", link: "L2", frames: ["x"] });
  model.emit("msg:custom", { kind: "unlinked", link: "L2", code: 1000 });
  model.emit("msg:custom", { kind: "connect", url: "ws://x", token: "t" });
  model.emit("msg:custom", null);
  assert.equal(socket.readyState, 0);
  assert.deepEqual(log, []);
});

test("send before linked throws; after, it sends {kind: 'send'} with the frame as text", () => {
  const { model, socket, kernel } = setup();
  assert.throws(() => socket.send('{"type":"ping"}'));
  assert.equal(model.sent.length, 1, "only the link message");
  kernel({ kind: "linked" });
  socket.send('{"type":"control"}');
  assert.deepEqual(model.sent.at(-1), { kind: "send", link: "L1", frame: '{"type":"control"}' });
});

test("close sends unlink, fires onclose once and stops listening", () => {
  const { model, socket, log, kernel } = setup();
  kernel({ kind: "linked" });
  socket.close(1000, "replaced");
  assert.deepEqual(model.sent.at(-1), { kind: "unlink", link: "L1" });
  assert.equal(socket.readyState, 3);
  assert.deepEqual(log.at(-1), ["close", 1000, "replaced", true]);
  socket.close();
  kernel({ kind: "unlinked", code: 1001 });
  kernel({ kind: "frames", frames: ["late"] });
  assert.equal(log.filter((e) => e[0] === "close").length, 1);
  assert.equal(model.sent.filter((m) => m.kind === "unlink").length, 1);
  assert.ok(!log.some((e) => e[1] === "late"));
  assert.deepEqual(model.offCalls, ["msg:custom"]);
  assert.equal(model.count("msg:custom"), 0);
  assert.throws(() => socket.send("x"));
});

test("'unlinked' from the kernel closes with its code and reason, without an unlink back", () => {
  const { model, socket, log, kernel } = setup();
  kernel({ kind: "linked" });
  kernel({ kind: "unlinked", code: 4400, reason: "invalid sessionId" });
  assert.equal(socket.readyState, 3);
  assert.deepEqual(log.at(-1), ["close", 4400, "invalid sessionId", false]);
  assert.ok(!model.sent.some((m) => m.kind === "unlink"));
  assert.equal(model.count("msg:custom"), 0);
  // No code: an abnormal close.
  const other = setup();
  other.kernel({ kind: "unlinked" });
  assert.deepEqual(other.log.at(-1), ["close", 1006, "", false]);
});

test("closing while handling a frame stops the rest of the batch", () => {
  const { socket, log, kernel } = setup();
  socket.onmessage = (event) => {
    log.push(["message", event.data]);
    if (event.data === "b") socket.close(1000, "replaced");
  };
  kernel({ kind: "linked" });
  kernel({ kind: "frames", frames: ["a", "b", "c"] });
  assert.deepEqual(
    log.filter((e) => e[0] === "message"),
    [
      ["message", "a"],
      ["message", "b"],
    ],
  );
});
