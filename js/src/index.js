// anywidget entry point: wires model <-> client <-> reducer <-> view for one view. Every
// render() has its own connection and state, so the same model can be displayed twice.
//
// Contract with the kernel (llmsock_widget/widget.py):
//   view -> kernel  {kind: "hello", origin, protocol, plugin, notebook, snapshots}
//   kernel -> view  {kind: "connect", url, port, token, session, transport, proxyUrl, store,
//                    restored} (again after a server restart), {kind: "error", message},
//                   {kind: "snapshot", session, snapshot}
//   and the comm transport's link messages (commsocket.js).
// The token stays in this closure and the client's: never in the DOM, in model state, in
// storage or in a URL.
//
// Contract with the notebook (the llmsock-notebook plugin, js/labextension/): DOM events that
// bubble from this view's element. "llmsock:restore-request" asks for the snapshots kept in
// the notebook's metadata (the plugin fills event.detail and calls preventDefault);
// "llmsock:snapshot" hands one to the plugin to write there. Without the plugin nobody answers
// and the kernel keeps sessions next to the notebook instead (docs/persistence.md).

import { createClient } from "./client.js";
import { commSocketFactory } from "./commsocket.js";
import { buildLadder, readPageConfig } from "./ladder.js";
import { createMarkdownRenderer } from "./markdown.js";
import { WIDGET_PROTOCOL, control, createIdGenerator, userMessage } from "./protocol.js";
import { initialState, reduce } from "./reducer.js";
import { createView } from "./view.js";

const SNAPSHOT_EVENT = "llmsock:snapshot";
const RESTORE_EVENT = "llmsock:restore-request";
const ATTACH_WAIT_MS = 3000; // how long to wait for the output area to put the view in the page

/** Ask the notebook plugin for the sessions in the notebook's metadata: {plugin, sessions, notebook}. */
export function requestSnapshots(el) {
  const win = el.ownerDocument.defaultView;
  const detail = { version: 1, sessions: null, notebook: null };
  const event = new win.CustomEvent(RESTORE_EVENT, { bubbles: true, composed: true, cancelable: true, detail });
  const answered = !el.dispatchEvent(event);
  const sessions = answered && detail.sessions !== null && typeof detail.sessions === "object" ? detail.sessions : {};
  return { plugin: answered, sessions, notebook: typeof detail.notebook === "string" ? detail.notebook : null };
}

/** Hand a snapshot (or null: remove) to the notebook plugin; return whether it took it. */
export function offerSnapshot(el, session, snapshot) {
  const win = el.ownerDocument.defaultView;
  const detail = { version: 1, session, snapshot };
  const event = new win.CustomEvent(SNAPSHOT_EVENT, { bubbles: true, composed: true, cancelable: true, detail });
  return !el.dispatchEvent(event);
}

// Call `then` once `el` is in the page (events dispatched before would reach no plugin), or
// after ATTACH_WAIT_MS if it never is (a detached output: go on without the notebook).
function whenAttached(el, win, then) {
  const started = Date.now();
  const check = () => {
    if (el.isConnected || Date.now() - started > ATTACH_WAIT_MS) then();
    else win.setTimeout(check, 25);
  };
  check();
}

function render({ model, el }) {
  const win = el.ownerDocument.defaultView;
  const newId = createIdGenerator();
  let state = initialState();
  let disposed = false;
  let server = null; // the latest connect message
  let plugin = false;

  let view = null;
  const dispatch = (event) => {
    if (disposed) return;
    const next = reduce(state, event);
    if (next === state) return;
    state = next;
    view?.update(state);
  };

  const client = createClient({
    WebSocket: win.WebSocket,
    onEvent: dispatch,
    onConnection: (change) => dispatch({ type: "connection", ...change }),
    timers: {
      setTimeout: (fn, ms) => win.setTimeout(fn, ms),
      clearTimeout: (handle) => win.clearTimeout(handle),
    },
    newId,
  });
  const createComm = commSocketFactory(model, newId);
  const markdown = createMarkdownRenderer(win);
  view = createView(el, {
    renderMarkdown: markdown.render,
    // No optimistic echo: the prompt appears when the server's user-message event comes back,
    // so every view on the session shows the same transcript.
    onSend: (text) => client.send(userMessage(text, newId())),
    onStop: () => client.send(control("abort", newId())),
  });

  function connect() {
    if (server === null) return;
    // The synced trait is the source of truth; the connect message's session is the fallback
    // while the trait is still "".
    const session = model.get("session") || server.session || "";
    if (!session) {
      // Without ?session= the server would make a new session per view: wait for the id.
      dispatch({ type: "connection", state: "connecting", detail: "waiting for a session id" });
      return;
    }
    const { candidates, skipped } = buildLadder({
      connect: server,
      location: win.location,
      pageConfig: readPageConfig(el.ownerDocument),
      createComm,
    });
    client.connect({ candidates, skipped, token: server.token, session });
  }

  const onMessage = (content) => {
    if (content === null || typeof content !== "object") return;
    if (content.kind === "connect") {
      if (typeof content.url !== "string" || typeof content.token !== "string") return;
      server = {
        url: content.url,
        port: content.port,
        token: content.token,
        session: typeof content.session === "string" ? content.session : "",
        transport: typeof content.transport === "string" ? content.transport : "auto",
        proxyUrl: typeof content.proxyUrl === "string" ? content.proxyUrl : null,
      };
      if (typeof content.store === "string") {
        // Say so when the notebook's copy of this chat could not be restored (a newer format...).
        const outcome = content.restored?.[model.get("session") || server.session];
        const problem = typeof outcome === "string" && outcome.startsWith("not restored") ? ` · ${outcome}` : "";
        view.setStore(content.store + problem);
      }
      connect();
    } else if (content.kind === "error") {
      dispatch({ type: "kernel.error", message: String(content.message ?? "unknown error") });
    } else if (content.kind === "snapshot" && plugin && typeof content.session === "string") {
      const taken = offerSnapshot(el, content.session, content.snapshot ?? null);
      if (taken && content.session === (model.get("session") || server?.session)) {
        view.markSaved(content.snapshot);
      }
    }
  };
  const onSession = () => connect();

  model.on("msg:custom", onMessage);
  model.on("change:session", onSession);
  view.update(state);
  whenAttached(el, win, () => {
    if (disposed) return;
    const found = requestSnapshots(el);
    plugin = found.plugin;
    // Only this view's session: other sessions of the notebook come back with their own views.
    const session = model.get("session");
    const snapshots = session && found.sessions[session] ? { [session]: found.sessions[session] } : {};
    model.send({
      kind: "hello",
      origin: win.location.origin,
      protocol: WIDGET_PROTOCOL,
      plugin,
      notebook: found.notebook,
      snapshots,
    });
  });

  return () => {
    disposed = true;
    model.off("msg:custom", onMessage);
    model.off("change:session", onSession);
    client.close();
    view.destroy();
    server = null;
  };
}

export default { render };
