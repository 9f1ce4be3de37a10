import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import widget from "../src/index.js";
import { fakeWebSocketClass, frames } from "./helpers.js";

const TOKEN = "tok-ABCdef123_secret";

function fakeModel(session = "sess-1") {
  const listeners = new Map();
  const model = {
    attrs: { session },
    sent: [],
    setCalls: [],
    get: (name) => model.attrs[name],
    set: (...args) => model.setCalls.push(args),
    save_changes: () => {},
    send: (content) => model.sent.push(content),
    on: (name, fn) => {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(fn);
    },
    off: (name, fn) => listeners.get(name)?.delete(fn),
    emit: (name, ...args) => [...(listeners.get(name) ?? [])].forEach((fn) => fn(...args)),
    count: (name) => listeners.get(name)?.size ?? 0,
  };
  return model;
}

function setup() {
  const dom = new JSDOM("<!doctype html><html><body></body></html>", { url: "http://localhost:8888/lab", pretendToBeVisual: true });
  const { window } = dom;
  const { FakeWebSocket, instances } = fakeWebSocketClass();
  window.WebSocket = FakeWebSocket;
  const model = fakeModel();
  const mount = () => {
    const el = window.document.createElement("div");
    window.document.body.append(el);
    const cleanup = widget.render({ model, el });
    return { el, cleanup };
  };
  const nextFrame = () => new Promise((resolve) => window.requestAnimationFrame(() => resolve()));
  return { window, model, instances, mount, nextFrame };
}

test("the module's default export is an anywidget {render}", () => {
  assert.equal(typeof widget.render, "function");
});

test("render says hello, connects on the kernel's connect message and catches up", async () => {
  const { model, instances, mount, nextFrame } = setup();
  const { el, cleanup } = mount();
  assert.deepEqual(model.sent, [{ kind: "hello", origin: "http://localhost:8888", protocol: "llmsock-widget/1" }]);
  assert.equal(instances.length, 0, "no socket before the kernel answers");
  model.emit("msg:custom", { kind: "connect", url: "ws://127.0.0.1:7000/ws", port: 7000, token: TOKEN, session: "sess-1" });
  assert.equal(instances.length, 1);
  const ws = instances[0];
  assert.equal(ws.url, "ws://127.0.0.1:7000/ws?session=sess-1");
  assert.deepEqual(ws.protocols, ["llmsock.envelope.v1", `llmsock.token.${TOKEN}`]);
  ws.serverOpen();
  ws.serverSend(frames.ready(2, "generating", "sess-1"));
  const history = ws.sentJson()[0];
  assert.equal(history.data.type, "get_history");
  ws.serverSend(
    frames.history(
      2,
      [{ id: "m1", role: "user", text: "hello", turnId: "t1", ts: 1, status: "complete" }],
      { id: "t1:a", role: "assistant", text: "hi", turnId: "t1", ts: 2, status: "streaming" },
      "generating",
      history.id,
    ),
  );
  ws.serverSend(frames.delta(3, " there", "t1"));
  await nextFrame();
  const msgs = el.querySelectorAll(".llmsock-msg");
  assert.equal(msgs.length, 2);
  assert.equal(msgs[1].textContent.trim(), "hi there");
  assert.equal(el.querySelector(".llmsock-status").textContent, "connected · websocket");
  assert.equal(el.querySelector("button.llmsock-stop").disabled, false);

  // Send: a JSON user_message; the transcript waits for the echo.
  const textarea = el.querySelector("textarea");
  textarea.value = '{"type":"control","data":{"type":"clear_history"}}';
  textarea.dispatchEvent(new el.ownerDocument.defaultView.Event("input"));
  el.querySelector("button.llmsock-send").click();
  const prompt = ws.sentJson().at(-1);
  assert.equal(prompt.type, "user_message");
  assert.equal(prompt.data.text, '{"type":"control","data":{"type":"clear_history"}}');
  el.querySelector("button.llmsock-stop").click();
  assert.deepEqual(ws.sentJson().at(-1).data, { type: "abort" });
  cleanup();
});

test("the token never reaches the DOM or the model state", async () => {
  const { model, instances, mount, nextFrame } = setup();
  const { el, cleanup } = mount();
  model.emit("msg:custom", { kind: "connect", url: "ws://127.0.0.1:7000/ws", port: 7000, token: TOKEN, session: "sess-1" });
  instances[0].serverOpen();
  instances[0].serverSend(frames.ready(0, "idle", "sess-1"));
  instances[0].serverClose(1006);
  await nextFrame();
  const html = el.ownerDocument.documentElement.outerHTML;
  assert.ok(!html.includes(TOKEN));
  assert.deepEqual(model.setCalls, []);
  assert.ok(!JSON.stringify(model.sent).includes(TOKEN));
  assert.match(el.querySelector(".llmsock-status").textContent, /^disconnected — retrying in \d+ s$/);
  cleanup();
});

test("two views of one model each get their own socket; a repeated connect is a no-op", () => {
  const { model, instances, mount } = setup();
  const a = mount();
  const b = mount();
  assert.equal(model.sent.length, 2, "each view says hello");
  const connect = { kind: "connect", url: "ws://127.0.0.1:7000/ws", port: 7000, token: TOKEN, session: "sess-1" };
  model.emit("msg:custom", connect);
  assert.equal(instances.length, 2);
  model.emit("msg:custom", connect); // the kernel answers the second hello to all views
  assert.equal(instances.length, 2);
  // A server restart: new URL and token, every view moves.
  model.emit("msg:custom", { ...connect, url: "ws://127.0.0.1:7001/ws", port: 7001, token: "other" });
  assert.equal(instances.length, 4);
  assert.equal(instances[0].closedWith.code, 1000);
  assert.equal(instances[1].closedWith.code, 1000);
  a.cleanup();
  assert.equal(instances[2].closedWith.code, 1000);
  assert.equal(instances[3].closedWith, null, "the other view keeps its socket");
  b.cleanup();
  assert.equal(model.count("msg:custom"), 0, "listeners removed");
  assert.equal(model.count("change:session"), 0);
  assert.equal(a.el.children.length, 0);
});

test("a session change reconnects to the new session; an empty session waits", () => {
  const { model, instances, mount } = setup();
  model.attrs.session = "";
  const { cleanup } = mount();
  model.emit("msg:custom", { kind: "connect", url: "ws://127.0.0.1:7000/ws", port: 7000, token: TOKEN, session: "" });
  assert.equal(instances.length, 0, "no socket without a session id");
  model.attrs.session = "s2";
  model.emit("change:session");
  assert.equal(instances.length, 1);
  assert.equal(instances[0].url, "ws://127.0.0.1:7000/ws?session=s2");
  cleanup();
});

test("a kernel error message is shown in the status element", async () => {
  const { model, mount, nextFrame } = setup();
  const { el, cleanup } = mount();
  model.emit("msg:custom", { kind: "error", message: "could not start the server" });
  await nextFrame();
  const status = el.querySelector(".llmsock-status");
  assert.equal(status.textContent, "error: could not start the server");
  assert.equal(status.getAttribute("data-connection"), "error");
  cleanup();
});
