// anywidget entry point: wires model <-> client <-> reducer <-> view for one view. Every
// render() has its own socket and state, so the same model can be displayed twice.
//
// Contract with the kernel (llmsock_widget/widget.py): the view sends
// {kind: "hello", origin, protocol: "llmsock-widget/1"}; the kernel answers every view with
// {kind: "connect", url, port, token, session} (again after a server restart) or
// {kind: "error", message}. The token stays in this closure and the client's: never in the
// DOM, in model state, in storage or in a URL.

import { createClient } from "./client.js";
import { createMarkdownRenderer } from "./markdown.js";
import { WIDGET_PROTOCOL, control, createIdGenerator, userMessage } from "./protocol.js";
import { initialState, reduce } from "./reducer.js";
import { createView } from "./view.js";

function render({ model, el }) {
  const win = el.ownerDocument.defaultView;
  const newId = createIdGenerator();
  let state = initialState();
  let disposed = false;
  let server = null; // {url, token, session} from the latest connect message

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
    client.connect({ url: server.url, token: server.token, session });
  }

  const onMessage = (content) => {
    if (content === null || typeof content !== "object") return;
    if (content.kind === "connect") {
      if (typeof content.url !== "string" || typeof content.token !== "string") return;
      server = {
        url: content.url,
        token: content.token,
        session: typeof content.session === "string" ? content.session : "",
      };
      connect();
    } else if (content.kind === "error") {
      dispatch({ type: "kernel.error", message: String(content.message ?? "unknown error") });
    }
  };
  const onSession = () => connect();

  model.on("msg:custom", onMessage);
  model.on("change:session", onSession);
  view.update(state);
  model.send({ kind: "hello", origin: win.location.origin, protocol: WIDGET_PROTOCOL });

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
