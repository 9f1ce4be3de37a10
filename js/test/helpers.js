// Shared test doubles: a fake WebSocket class, fake timers, frame builders, the wire fixtures.
// (Imported by the *.test.js files; it has no tests of its own.)

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { JSDOM } from "jsdom";
import { createWidget } from "../src/index.js";
import { createMarkdownRenderer } from "../src/markdown.js";
import { createView } from "../src/view.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The shared wire fixtures (also decoded by pytest). */
export function loadServerEvents() {
  return JSON.parse(readFileSync(join(here, "..", "..", "tests", "fixtures", "wire", "server_events.json"), "utf8"));
}

/** Make a fake WebSocket class that records every instance; drive it with the helpers. */
export function fakeWebSocketClass() {
  const instances = [];
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      instances.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(data);
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // --- test side ---
    serverOpen() {
      this.readyState = 1;
      this.onopen?.({});
    }
    serverSend(frame) {
      this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
    }
    serverClose(code = 1006, reason = "", wasClean = false) {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean });
    }
    sentJson() {
      return this.sent.map((s) => JSON.parse(s));
    }
  }
  return { FakeWebSocket, instances };
}

/** Fake timers: nothing runs until advance(ms). */
export function fakeTimers() {
  let now = 0;
  let nextId = 1;
  const pending = new Map();
  return {
    setTimeout(fn, ms) {
      const id = nextId++;
      pending.set(id, { fn, at: now + ms });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    /** The fake clock's time in ms: moves only with advance(). */
    now() {
      return now;
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at);
        if (due.length === 0) break;
        const [id, t] = due[0];
        pending.delete(id);
        now = t.at;
        t.fn();
      }
      now = until;
    },
    pendingDelays() {
      return [...pending.values()].map((t) => t.at - now);
    },
    get size() {
      return pending.size;
    },
  };
}

/** Fake animation frames: nothing paints until flush() runs the frames requested so far. */
export function fakeFrames() {
  let nextId = 1;
  const pending = new Map();
  return {
    requestFrame(fn) {
      const id = nextId++;
      pending.set(id, fn);
      return id;
    },
    cancelFrame(id) {
      pending.delete(id);
    },
    flush() {
      const due = [...pending.values()];
      pending.clear();
      for (const fn of due) fn();
    },
    get size() {
      return pending.size;
    },
  };
}

/** An envelope frame object for a session event or reply. */
export function envelope(kind, event, meta = {}) {
  return { name: `interaction.${kind}`, data: { kind, event, meta: { sessionId: "s1", timestamp: 1, ...meta } } };
}

export const frames = {
  ready: (sequence = 0, status = "idle", sessionId = "s1") =>
    envelope(
      "session",
      { type: "ready", sessionId, sequence, status, created: false, protocol: "llmsock/1" },
      { sessionId },
    ),
  /** A ready with the resume fields: epoch, and resumed/replayed when the client asked to resume. */
  readyResume: ({ sequence = 0, status = "idle", sessionId = "s1", epoch = "E1", resumed, replayed } = {}) =>
    envelope(
      "session",
      { type: "ready", sessionId, sequence, status, created: false, protocol: "llmsock/1", epoch, resumed, replayed },
      { sessionId },
    ),
  user: (seq, text, turnId = "t1", messageId = `m-${turnId}`) =>
    envelope("user", { type: "message", text, messageId }, { sequence: seq, turnId }),
  status: (seq, status) => envelope("status", { type: "status", status }, { sequence: seq }),
  start: (seq, turnId = "t1") =>
    envelope("model", { type: "start", model: "builtin", messageId: `m-${turnId}` }, { sequence: seq, turnId }),
  delta: (seq, text, turnId = "t1") => envelope("model", { type: "delta", text }, { sequence: seq, turnId }),
  reasoning: (seq, reasoning, turnId = "t1") =>
    envelope("model", { type: "delta", reasoning }, { sequence: seq, turnId }),
  toolCall: (seq, id, name, args, turnId = "t1") =>
    envelope("model", { type: "delta", toolCall: { id, name, arguments: args } }, { sequence: seq, turnId }),
  toolOk: (seq, id, name, result, durationMs = 2, turnId = "t1") =>
    envelope(
      "model",
      { type: "delta", toolResult: { id, name, ok: true, result, error: null, durationMs } },
      { sequence: seq, turnId },
    ),
  toolError: (seq, id, name, code, message, durationMs = 1, turnId = "t1") =>
    envelope(
      "model",
      { type: "delta", toolResult: { id, name, ok: false, result: null, error: { code, message }, durationMs } },
      { sequence: seq, turnId },
    ),
  usage: (seq, turnId = "t1") =>
    envelope("model", { type: "usage", inputTokens: 3, outputTokens: 4 }, { sequence: seq, turnId }),
  end: (seq, finishReason, text, turnId = "t1") =>
    envelope("model", { type: "end", finishReason, text }, { sequence: seq, turnId }),
  modelError: (seq, text, turnId = "t1") =>
    envelope(
      "model",
      { type: "error", code: "model_error", message: "boom", recoverable: true, text },
      { sequence: seq, turnId },
    ),
  diagnostic: (seq, level = "info", code = "queued", message = "prompt queued behind 1 turn(s)") =>
    envelope("diagnostic", { type: "diagnostic", level, code, message }, { sequence: seq }),
  cleared: (seq) => envelope("session", { type: "cleared" }, { sequence: seq }),
  /** A whole turn at once: ready, the prompt "q", and an answer of `text` in one delta. */
  answered: (text) => [
    frames.ready(0),
    frames.user(1, "q"),
    frames.start(2),
    frames.delta(3, text),
    frames.end(4, "stop", text),
  ],
  errorReply: (code = "queue_full", message = "too many prompts", requestId = null) =>
    envelope("error", { type: "error", code, message, recoverable: true, requestId }),
  history: (sequence, messages, current = null, status = "idle", requestId = "h1") =>
    envelope("control", {
      type: "result",
      action: "get_history",
      ok: true,
      message: "",
      data: { messages, current, sequence, status },
      requestId,
    }),
};

/**
 * A fake anywidget model: get/set/send/on/off, plus emit(name, ...args) to play the kernel and
 * count(name) to see how many listeners are left. `sent` records every model.send().
 */
export function fakeModel(session = "sess-1") {
  const listeners = new Map();
  const model = {
    attrs: { session },
    sent: [],
    setCalls: [],
    offCalls: [],
    get: (name) => model.attrs[name],
    set: (...args) => model.setCalls.push(args),
    save_changes: () => {},
    send: (content) => model.sent.push(content),
    on: (name, fn) => {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(fn);
    },
    off: (name, fn) => {
      model.offCalls.push(name);
      listeners.get(name)?.delete(fn);
    },
    emit: (name, ...args) => {
      for (const fn of [...(listeners.get(name) ?? [])]) fn(...args);
    },
    count: (name) => listeners.get(name)?.size ?? 0,
  };
  return model;
}

/** A location-like object for a page URL (what ladder.js reads: protocol, hostname, host, href). */
export function pageLocation(href) {
  return new URL(href);
}

/** A view on ``el`` painting answers with ``renderMarkdown``; the frames it asks for wait in ``queued`` until ``frame()``. */
export function viewWithFrames(el, renderMarkdown) {
  const queued = [];
  const view = createView(el, {
    renderMarkdown,
    onSend: () => true,
    onStop: () => {},
    requestFrame: (fn) => queued.push(fn),
    cancelFrame: () => {},
  });
  const frame = () => {
    for (const fn of queued.splice(0)) fn();
  };
  return { view, frame, queued };
}

/**
 * A view in a fresh jsdom page, painting with the real Markdown renderer; `options` add to or
 * replace createView's. `show(state)` updates it and runs the frame it asks for.
 */
export function mountView(options = {}) {
  const { window } = new JSDOM("<!doctype html><html><body><div id=el></div></body></html>");
  const el = window.document.getElementById("el");
  const queued = [];
  const view = createView(el, {
    renderMarkdown: createMarkdownRenderer(window).render,
    onSend: () => true,
    onStop: () => {},
    requestFrame: (fn) => queued.push(fn),
    cancelFrame: () => {},
    ...options,
  });
  const show = (state) => {
    view.update(state);
    for (const fn of queued.splice(0)) fn();
  };
  return { window, el, view, show };
}

/**
 * A whole widget (index.js's render) in a fresh jsdom page, connected: the kernel's connect
 * message played over a fake model's comm, the server's ready and empty history over a fake
 * WebSocket. `status` is the session's status in those frames.
 */
export function connectedWidget({ status = "idle" } = {}) {
  const { window } = new JSDOM("<!doctype html><html><body></body></html>", { url: "http://localhost:8888/lab" });
  const { FakeWebSocket, instances } = fakeWebSocketClass();
  window.WebSocket = FakeWebSocket;
  const model = fakeModel();
  const timers = fakeTimers();
  const paint = fakeFrames();
  const { render } = createWidget({
    timing: { ...timers, requestFrame: paint.requestFrame, cancelFrame: paint.cancelFrame, epochNow: timers.now },
  });
  const el = window.document.createElement("div");
  window.document.body.append(el);
  const cleanup = render({ model, el });
  model.emit("msg:custom", CONNECT_MESSAGE);
  const ws = instances[0];
  ws.serverOpen();
  ws.serverSend(frames.ready(0, status, "sess-1"));
  ws.serverSend(frames.history(0, [], null, status, ws.sentJson().at(-1).id));
  paint.flush();
  return { window, model, el, ws, timers, paint, cleanup };
}

/** The kernel's answer to a view's hello: a server on port 7000, session "sess-1". */
export const CONNECT_MESSAGE = {
  kind: "connect",
  url: "ws://127.0.0.1:7000/ws",
  port: 7000,
  token: "t",
  session: "sess-1",
};
