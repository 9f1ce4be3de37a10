// anywidget entry point: wires model <-> client <-> reducer <-> view for one view. Every
// render() has its own connection and state, so the same model can be displayed twice.
//
// Contract with the kernel (docs/widget-comm.md; the kernel's side: llmsock_widget/notebook/widget.py):
//   view -> kernel  {kind: "hello", origin, protocol, plugin, notebook, snapshots}
//   kernel -> view  {kind: "connect", url, port, token, session, transport, proxyUrl,
//                    connectTimeoutMs, store, model, models,
//                    restored} (again after a server restart), {kind: "error", message},
//                   {kind: "snapshot", session, snapshot}
//   and the comm transport's link messages (commsocket.js).
// Synced traits: `session`, and the model settings `system`, `temperature`, `max_tokens`,
// `model`, `tools`, `timeout`, `retries` (settings.js), which every prompt carries as options
// and the view's settings panel (and the header's model picker) edits.
// The token stays in this closure and the client's: never in the DOM, in model state, in
// storage or in a URL. All timing (timeouts, the clock, animation frames) goes through one
// injectable WidgetTiming, so tests drive a view with a fake clock (createWidget({timing})).
//
// Contract with the notebook (the llmsock-notebook plugin, js/labextension/): DOM events that
// bubble from this view's element. "llmsock:restore-request" asks for the snapshots kept in
// the notebook's metadata (the plugin fills event.detail and calls preventDefault);
// "llmsock:snapshot" hands one to the plugin to write there. Without the plugin nobody answers
// and the kernel keeps sessions next to the notebook instead (docs/persistence.md).
// code-actions.js adds two more, "llmsock:capabilities" and "llmsock:insert-code", for an
// answer's code blocks (docs/persistence.md, section 4.1).

import { withAttachments } from "./attachments.js";
import { createClient } from "./client.js";
import { commSocketFactory } from "./commsocket.js";
import { createKernelRequests } from "./kernel-requests.js";
import { buildLadder, readPageConfig } from "./ladder.js";
import { createMarkdownRenderer } from "./markdown.js";
import { askPlugin } from "./plugin.js";
import { approval, control, createIdGenerator, userMessage, WIDGET_PROTOCOL } from "./protocol.js";
import { initialState, reduce } from "./reducer.js";
import { adoptable, promptOptions, readSettings, TRAIT_OF } from "./settings.js";
import { createView } from "./view.js";

const SNAPSHOT_EVENT = "llmsock:snapshot";
const RESTORE_EVENT = "llmsock:restore-request";
const ATTACH_WAIT_MS = 3000; // how long to wait for the output area to put the view in the page
const ATTACH_POLL_MS = 25;
const SETTINGS_TRAITS = Object.values(TRAIT_OF);

/**
 * Ask the notebook plugin for the sessions in the notebook's metadata.
 * @param {Element} el  the view's element (the request bubbles from it)
 * @returns {{plugin: boolean, sessions: Record<string, unknown>, notebook: string | null}}
 */
export function requestSnapshots(el) {
  const detail = { version: 1, sessions: null, notebook: null };
  const answered = askPlugin(el, RESTORE_EVENT, detail);
  const sessions = answered && detail.sessions !== null && typeof detail.sessions === "object" ? detail.sessions : {};
  return { plugin: answered, sessions, notebook: typeof detail.notebook === "string" ? detail.notebook : null };
}

/**
 * Hand a snapshot (or null: remove) to the notebook plugin; return whether it took it.
 * @param {Element} el  the view's element (the event bubbles from it)
 * @param {string} session
 * @param {unknown} snapshot
 * @returns {boolean}
 */
export function offerSnapshot(el, session, snapshot) {
  return askPlugin(el, SNAPSHOT_EVENT, { version: 1, session, snapshot });
}

/**
 * The timing a view uses, injectable so tests drive it without real waits.
 * @typedef {object} WidgetTiming
 * @property {(fn: () => void, ms: number) => unknown} setTimeout
 * @property {(handle: any) => void} clearTimeout
 * @property {() => number} now  milliseconds, monotonic enough for a timeout
 * @property {(fn: () => void) => unknown} requestFrame  requestAnimationFrame
 * @property {(handle: any) => void} cancelFrame  cancelAnimationFrame
 * @property {() => number} [epochNow]  ms since the epoch: a countdown against the server's timestamps
 */

/**
 * The page's own timing for a view in window `win`.
 * @param {Window} win
 * @returns {WidgetTiming}
 */
function windowTiming(win) {
  return {
    setTimeout: (fn, ms) => win.setTimeout(fn, ms),
    clearTimeout: (handle) => win.clearTimeout(handle),
    now: () => win.performance?.now() ?? Date.now(),
    requestFrame: (fn) => win.requestAnimationFrame(fn),
    cancelFrame: (handle) => win.cancelAnimationFrame(handle),
    epochNow: () => Date.now(),
  };
}

/**
 * Call `then` once `el` is in the page (events dispatched before would reach no plugin), or
 * after ATTACH_WAIT_MS if it never is (a detached output: go on without the notebook).
 * @param {Element} el
 * @param {WidgetTiming} timing
 * @param {() => void} then
 * @returns {() => void} stop waiting (then is not called)
 */
function whenAttached(el, timing, then) {
  const started = timing.now();
  /** @type {unknown} */
  let pending = null;
  const check = () => {
    pending = null;
    if (el.isConnected || timing.now() - started > ATTACH_WAIT_MS) then();
    else pending = timing.setTimeout(check, ATTACH_POLL_MS);
  };
  check();
  return () => {
    if (pending !== null) timing.clearTimeout(pending);
    pending = null;
  };
}

/**
 * Make the anywidget module's `{render}`; `timing` replaces parts of the page's clock (tests).
 * @param {{timing?: Partial<WidgetTiming>}} [options]
 * @returns {{render: (context: {model: any, el: HTMLElement}) => () => void}}
 */
export function createWidget({ timing = {} } = {}) {
  return {
    render: ({ model, el }) => {
      const win = /** @type {Window} */ (el.ownerDocument.defaultView);
      return render({ model, el }, { ...windowTiming(win), ...timing });
    },
  };
}

/**
 * Render one view of `model` in `el`; return its cleanup.
 * @param {{model: any, el: HTMLElement}} context
 * @param {WidgetTiming} timing
 * @returns {() => void}
 */
function render({ model, el }, timing) {
  const win = /** @type {Window & typeof globalThis} */ (el.ownerDocument.defaultView);
  const newId = createIdGenerator();
  /** @type {(name: string) => unknown} */
  const getTrait = (name) => model.get(name);
  let state = initialState();
  let disposed = false;
  let server = null; // the latest connect message
  let plugin = false;

  let view = null;
  let adopted = false; // the session's kept settings were looked at (once per view)
  const changeSettings = (change) => {
    for (const [name, value] of Object.entries(change)) model.set(TRAIT_OF[name] ?? name, value);
    model.save_changes();
  };
  const dispatch = (event) => {
    if (disposed) return;
    if (event.type === "history" && !adopted) {
      // After a kernel restart the widget's settings are unset: take the session's (its
      // snapshot keeps the last prompt's), so the chat goes on as it was.
      adopted = true;
      const change = adoptable(readSettings(getTrait), event.settings);
      if (Object.keys(change).length > 0) changeSettings(change);
    }
    const next = reduce(state, event);
    if (next === state) return;
    state = next;
    view?.update(state);
  };

  const client = createClient({
    WebSocket: win.WebSocket,
    onEvent: dispatch,
    onConnection: (change) => dispatch({ type: "connection", ...change }),
    timers: { setTimeout: timing.setTimeout, clearTimeout: timing.clearTimeout },
    newId,
  });
  const createComm = commSocketFactory(model, newId);
  // Names, summaries and Explain: asked over the comm whatever carries the chat (kernel-requests.js).
  const kernel = createKernelRequests({ model, newId, timing });
  const markdown = createMarkdownRenderer(win);
  view = createView(el, {
    renderMarkdown: markdown.render,
    requestFrame: timing.requestFrame,
    cancelFrame: timing.cancelFrame,
    // No optimistic echo: the prompt appears when the server's user-message event comes back,
    // so every view on the session shows the same transcript.
    onSend: (text, attachments) =>
      client.send(userMessage(text, newId(), withAttachments(promptOptions(readSettings(getTrait)), attachments))),
    kernel,
    onStop: () => client.send(control("abort", newId())),
    // Edit, Regenerate, Retry: a prompt that replaces an earlier one (protocol section 9.8).
    onResend: (text, replaces) =>
      client.send(userMessage(text, newId(), promptOptions(readSettings(getTrait)), replaces)),
    onClear: () => client.send(control("clear_history", newId())),
    // The answer to a tool call that waits for approval; a refusal comes back as a notice.
    onApprove: (callId, approved) => client.send(approval(callId, approved, newId())),
    timers: {
      setTimeout: timing.setTimeout,
      clearTimeout: timing.clearTimeout,
      now: timing.epochNow ?? (() => Date.now()),
    },
    settings: readSettings(getTrait),
    onSettings: changeSettings,
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
        connectTimeoutMs: content.connectTimeoutMs,
        model: typeof content.model === "string" ? content.model : "",
        models: Array.isArray(content.models) ? content.models.filter((name) => typeof name === "string") : [],
      };
      view.setIdentity({
        session: model.get("session") || server.session,
        model: server.model,
        models: server.models,
      });
      if (typeof content.store === "string") {
        // Say so when the notebook's copy of this chat could not be restored (a newer format...).
        const outcome = content.restored?.[model.get("session") || server.session];
        const problem = typeof outcome === "string" && outcome.startsWith("not restored") ? outcome : "";
        view.setStore(content.store, problem);
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
  const onSession = () => {
    view.setIdentity({
      session: model.get("session") || server?.session || "",
      model: server?.model ?? "",
      models: server?.models ?? [],
    });
    connect();
  };
  const onSettings = () => view.setSettings(readSettings(getTrait));

  model.on("msg:custom", onMessage);
  model.on("change:session", onSession);
  for (const name of SETTINGS_TRAITS) model.on(`change:${name}`, onSettings);
  view.update(state);
  const stopWaiting = whenAttached(el, timing, () => {
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
    stopWaiting();
    model.off("msg:custom", onMessage);
    model.off("change:session", onSession);
    for (const name of SETTINGS_TRAITS) model.off(`change:${name}`, onSettings);
    client.close();
    kernel.destroy();
    view.destroy();
    server = null;
  };
}

export default createWidget();
