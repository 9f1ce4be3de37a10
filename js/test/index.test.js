import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import widget, { createWidget } from "../src/index.js";
import { fakeFrames, fakeModel, fakeTimers, fakeWebSocketClass, frames } from "./helpers.js";

const TOKEN = "tok-ABCdef123_secret";
/** The kernel's answer to a view's hello (a server on port 7000, session "sess-1"). */
const CONNECT = { kind: "connect", url: "ws://127.0.0.1:7000/ws", port: 7000, token: TOKEN, session: "sess-1" };

function setup({ url = "http://localhost:8888/lab", head = "" } = {}) {
  const dom = new JSDOM(`<!doctype html><html><head>${head}</head><body></body></html>`, { url });
  const { window } = dom;
  const { FakeWebSocket, instances } = fakeWebSocketClass();
  window.WebSocket = FakeWebSocket;
  const model = fakeModel();
  const timers = fakeTimers();
  const paint = fakeFrames();
  const { render } = createWidget({
    timing: {
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      now: timers.now,
      requestFrame: paint.requestFrame,
      cancelFrame: paint.cancelFrame,
    },
  });
  const mount = ({ attach = true } = {}) => {
    const el = window.document.createElement("div");
    if (attach) window.document.body.append(el);
    const cleanup = render({ model, el });
    return { el, cleanup };
  };
  const nextFrame = () => paint.flush();
  return { window, model, instances, mount, nextFrame, timers };
}

test("the module's default export is an anywidget {render}", () => {
  assert.equal(typeof widget.render, "function");
});

test("render says hello, connects on the kernel's connect message and catches up", async () => {
  const { model, instances, mount, nextFrame } = setup();
  const { el, cleanup } = mount();
  assert.deepEqual(model.sent, [
    {
      kind: "hello",
      origin: "http://localhost:8888",
      protocol: "llmsock-widget/1",
      plugin: false,
      notebook: null,
      snapshots: {},
    },
  ]);
  assert.equal(instances.length, 0, "no socket before the kernel answers");
  model.emit("msg:custom", CONNECT);
  assert.equal(instances.length, 1);
  const ws = instances[0];
  // A localhost page without a Jupyter page config: no proxy, direct first.
  assert.equal(ws.url, "ws://127.0.0.1:7000/ws?session=sess-1");
  assert.deepEqual(ws.protocols, ["llmsock.envelope.v1"]);
  ws.serverOpen();
  assert.deepEqual(ws.sentJson(), [{ type: "auth", token: TOKEN }], "only the token before ready");
  ws.serverSend(frames.ready(2, "generating", "sess-1"));
  const history = ws.sentJson()[1];
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
  assert.equal(el.querySelector(".llmsock-status").textContent, "connected · direct");
  assert.equal(el.querySelector(".llmsock-status").getAttribute("data-transport"), "direct");
  assert.equal(
    el.querySelector('[data-role="connection-detail"]').textContent,
    "direct (the page is on this machine) (proxy: not a Jupyter page (no base URL))",
  );
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
  model.emit("msg:custom", CONNECT);
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
  model.emit("msg:custom", CONNECT);
  assert.equal(instances.length, 2);
  model.emit("msg:custom", CONNECT); // the kernel answers the second hello to all views
  assert.equal(instances.length, 2);
  // A server restart: new URL and token, every view moves.
  model.emit("msg:custom", { ...CONNECT, url: "ws://127.0.0.1:7001/ws", port: 7001, token: "other" });
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
  model.emit("msg:custom", { ...CONNECT, session: "" });
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

/** A stand-in for the notebook plugin: answers restore requests and records offered snapshots. */
function fakePlugin(document, sessions, notebook = "work/chat.ipynb") {
  const offered = [];
  document.addEventListener("llmsock:restore-request", (event) => {
    event.detail.sessions = sessions;
    event.detail.notebook = notebook;
    event.preventDefault();
  });
  document.addEventListener("llmsock:snapshot", (event) => {
    offered.push(event.detail);
    event.preventDefault();
  });
  return offered;
}

test("with the notebook plugin the hello says so and carries only this view's snapshot", async () => {
  const { window, model, mount, nextFrame } = setup();
  const offered = fakePlugin(window.document, {
    "sess-1": { version: 1, messages: [{ role: "user", text: "kept" }] },
    "sess-other": { version: 1, messages: [] },
  });
  const { el, cleanup } = mount();
  assert.deepEqual(model.sent, [
    {
      kind: "hello",
      origin: "http://localhost:8888",
      protocol: "llmsock-widget/1",
      plugin: true,
      notebook: "work/chat.ipynb",
      snapshots: { "sess-1": { version: 1, messages: [{ role: "user", text: "kept" }] } },
    },
  ]);
  // The kernel's snapshots go to the plugin as DOM events, from this view's element.
  model.emit("msg:custom", { kind: "snapshot", session: "sess-1", snapshot: { version: 1, messages: [] } });
  model.emit("msg:custom", { kind: "snapshot", session: "sess-1" }); // removal
  model.emit("msg:custom", { kind: "snapshot", session: 7, snapshot: {} }); // malformed: dropped
  assert.deepEqual(offered, [
    { version: 1, session: "sess-1", snapshot: { version: 1, messages: [] } },
    { version: 1, session: "sess-1", snapshot: null },
  ]);
  // Where the kernel keeps the chat is shown.
  model.emit("msg:custom", { ...CONNECT, store: "notebook metadata (work/chat.ipynb)" });
  await nextFrame();
  assert.equal(
    el.querySelector('[data-role="store"]').textContent,
    "chat saved in: notebook metadata (work/chat.ipynb)",
  );
  cleanup();
});

test("without the plugin the hello says plugin:false with no snapshots, and snapshots are not relayed", () => {
  const { window, model, mount } = setup();
  const seen = [];
  // Someone listens for snapshots but nobody answers the restore request: no plugin.
  window.document.addEventListener("llmsock:snapshot", (event) => seen.push(event.detail));
  const { cleanup } = mount();
  assert.equal(model.sent.length, 1);
  assert.equal(model.sent[0].plugin, false);
  assert.equal(model.sent[0].notebook, null);
  assert.deepEqual(model.sent[0].snapshots, {});
  model.emit("msg:custom", { kind: "snapshot", session: "sess-1", snapshot: { version: 1 } });
  assert.deepEqual(seen, []);
  cleanup();
});

test("a restore listener that does not answer (no preventDefault) is not a plugin", () => {
  const { window, model, mount } = setup();
  window.document.addEventListener("llmsock:restore-request", (event) => {
    event.detail.sessions = { "sess-1": { version: 1 } };
  });
  const { cleanup } = mount();
  assert.equal(model.sent[0].plugin, false);
  assert.deepEqual(model.sent[0].snapshots, {});
  cleanup();
});

test("the view waits until its element is in the page before the hello", () => {
  const { window, model, mount, timers } = setup();
  fakePlugin(window.document, { "sess-1": { version: 1, messages: [] } });
  const { el, cleanup } = mount({ attach: false });
  assert.deepEqual(model.sent, [], "no hello from a detached element");
  timers.advance(60);
  assert.deepEqual(model.sent, [], "still waiting");
  window.document.body.append(el);
  timers.advance(25);
  assert.equal(model.sent.length, 1, "hello once attached");
  assert.equal(model.sent[0].kind, "hello");
  assert.equal(model.sent[0].plugin, true, "the restore request reached the plugin through the page");
  assert.deepEqual(Object.keys(model.sent[0].snapshots), ["sess-1"]);
  timers.advance(5000);
  assert.equal(model.sent.length, 1, "only one hello");
  cleanup();
});

test("a view that is never put in the page says hello without the notebook after 3 s", () => {
  const { window, model, mount, timers } = setup();
  fakePlugin(window.document, { "sess-1": { version: 1, messages: [] } });
  const { cleanup } = mount({ attach: false });
  timers.advance(2975);
  assert.deepEqual(model.sent, [], "still waiting just before the limit");
  timers.advance(50);
  assert.equal(model.sent.length, 1, "hello after the wait");
  assert.equal(model.sent[0].plugin, false, "a detached element reaches no plugin");
  assert.deepEqual(model.sent[0].snapshots, {});
  assert.equal(timers.size, 0, "no more polling");
  cleanup();
});

test("closing a view before it is in the page stops the wait and sends no hello", () => {
  const { model, mount, timers } = setup();
  const { cleanup } = mount({ attach: false });
  assert.equal(timers.size, 1, "polling for the page");
  cleanup();
  assert.equal(timers.size, 0, "the poll is cancelled");
  timers.advance(5000);
  assert.deepEqual(model.sent, []);
});

test("a hub page goes through the proxy, then falls back to the comm when it fails", async () => {
  const { model, instances, mount, nextFrame } = setup({
    url: "https://hub.example.org/user/ann/lab/tree/a.ipynb",
    head: '<script id="jupyter-config-data" type="application/json">{"baseUrl": "/user/ann/"}</script>',
  });
  const { el, cleanup } = mount();
  model.emit("msg:custom", { ...CONNECT, transport: "auto", proxyUrl: null });
  assert.equal(instances.length, 1);
  assert.equal(instances[0].url, "wss://hub.example.org/user/ann/proxy/7000/ws?session=sess-1");
  assert.deepEqual(instances[0].protocols, ["llmsock.envelope.v1"]);
  instances[0].serverClose(1006);
  assert.equal(instances.length, 1, "no direct rung from a remote page");

  const link = model.sent.at(-1);
  assert.equal(link.kind, "link");
  assert.equal(link.session, "sess-1");
  assert.equal(link.resume, null);
  model.emit("msg:custom", { kind: "linked", link: link.link, session: "sess-1" });
  model.emit("msg:custom", {
    kind: "frames",
    link: link.link,
    frames: [JSON.stringify(frames.ready(0, "idle", "sess-1"))],
  });
  const history = model.sent.at(-1);
  assert.equal(history.kind, "send");
  assert.equal(history.link, link.link);
  assert.equal(JSON.parse(history.frame).data.type, "get_history");
  await nextFrame();
  assert.equal(el.querySelector(".llmsock-status").textContent, "connected · comm");
  const detail = el.querySelector('[data-role="connection-detail"]').textContent;
  assert.match(detail, /^(fallback: )?comm \(the widget's channel\)/);
  assert.match(detail, /direct: the page is served from hub\.example\.org, not this machine/);
  assert.match(detail, /proxy: closed \(1006\)/);

  // A prompt goes over the comm too.
  const textarea = el.querySelector("textarea");
  textarea.value = "hello";
  textarea.dispatchEvent(new el.ownerDocument.defaultView.Event("input"));
  model.emit("msg:custom", {
    kind: "frames",
    link: link.link,
    frames: [JSON.stringify(frames.history(0, [], null, "idle", JSON.parse(history.frame).id))],
  });
  el.querySelector("button.llmsock-send").click();
  assert.equal(JSON.parse(model.sent.at(-1).frame).data.text, "hello");

  assert.ok(!JSON.stringify(model.sent).includes(TOKEN), "the token never goes over the comm");
  assert.ok(!el.ownerDocument.documentElement.outerHTML.includes(TOKEN));
  cleanup();
  assert.deepEqual(model.sent.at(-1), { kind: "unlink", link: link.link });
  assert.equal(model.count("msg:custom"), 0, "the comm socket stopped listening too");
});

test("a forced comm transport never opens a WebSocket", () => {
  const { model, instances, mount } = setup();
  const { cleanup } = mount();
  model.emit("msg:custom", { ...CONNECT, transport: "comm" });
  assert.equal(instances.length, 0);
  assert.equal(model.sent.at(-1).kind, "link");
  cleanup();
});

/** Open a view's socket to the point where a prompt can be sent; return its socket. */
async function connected({ model, instances, mount, nextFrame }) {
  const { el, cleanup } = mount();
  model.emit("msg:custom", CONNECT);
  const ws = instances[0];
  ws.serverOpen();
  ws.serverSend(frames.ready(0, "idle", "sess-1"));
  ws.serverSend(frames.history(0, [], null, "idle", ws.sentJson().at(-1).id));
  await nextFrame();
  const send = (text) => {
    const textarea = el.querySelector("textarea");
    textarea.value = text;
    textarea.dispatchEvent(new el.ownerDocument.defaultView.Event("input"));
    el.querySelector("button.llmsock-send").click();
    return ws.sentJson().at(-1);
  };
  return { el, ws, send, cleanup };
}

test("every prompt carries the settings traits that are set, as data.options", async () => {
  const harness = setup();
  const { model } = harness;
  const { send, cleanup } = await connected(harness);
  assert.deepEqual(send("plain").data, { text: "plain" }, "no options while nothing is set");
  Object.assign(model.attrs, { tools: true, timeout: 30, retries: 0 });
  assert.deepEqual(send("with all").data, { text: "with all", options: { tools: true, timeout: 30, retries: 0 } });
  Object.assign(model.attrs, { tools: ["calculate"], timeout: null, retries: null });
  assert.deepEqual(send("a list").data, { text: "a list", options: { tools: ["calculate"] } });
  Object.assign(model.attrs, { tools: false });
  assert.deepEqual(send("off").data, { text: "off", options: { tools: false } });
  cleanup();
});

test("the settings panel sets the traits and saves them; trait changes show in the panel", async () => {
  const harness = setup();
  const { model, window } = harness;
  let saved = 0;
  model.save_changes = () => {
    saved += 1;
  };
  model.attrs.timeout = 12;
  const { el, send, cleanup } = await connected(harness);
  const panel = el.querySelector('[data-role="settings"]');
  const timeout = panel.querySelector('input[name="timeout"]');
  assert.equal(timeout.value, "12", "the panel starts from the traits");
  assert.equal(panel.querySelector("summary").textContent, "settings · timeout 12 s");

  const select = panel.querySelector("select");
  select.value = "off";
  select.dispatchEvent(new window.Event("change", { bubbles: true }));
  timeout.value = "1";
  timeout.dispatchEvent(new window.Event("input", { bubbles: true }));
  timeout.value = "nope";
  timeout.dispatchEvent(new window.Event("input", { bubbles: true }));
  assert.deepEqual(model.setCalls, [
    ["tools", false],
    ["timeout", 1],
  ]);
  assert.equal(saved, 2, "each change is saved, so Python sees it");

  // Python sets a trait: the panel follows.
  model.attrs.retries = 4;
  model.emit("change:retries");
  assert.equal(panel.querySelector('input[name="retries"]').value, "4");
  Object.assign(model.attrs, { tools: false, timeout: 1 });
  assert.deepEqual(send("go").data.options, { tools: false, timeout: 1, retries: 4 });
  cleanup();
  for (const name of ["tools", "timeout", "retries"]) assert.equal(model.count(`change:${name}`), 0, name);
});
