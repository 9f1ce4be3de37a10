// llmsock-notebook: lets the llmsock chat widget, which runs inside a notebook's output area,
// keep its state in the open notebook's metadata under the key "llmsock", and put the code of
// its answers into cells. The kernel cannot edit the document the front end holds open; a
// front-end plugin can, through the notebook model.
//
// The widget talks to this plugin with DOM events dispatched on its own element (they bubble
// up to `document`, where we listen). We acknowledge an event by calling preventDefault(), which
// the widget sees as dispatchEvent(...) returning false:
//
//   "llmsock:snapshot"         detail {version: 1, session, snapshot}
//       store `snapshot` (a plain object) as metadata.llmsock.sessions[session];
//       a null snapshot removes that session (and the "llmsock" key once no session is left).
//   "llmsock:restore-request"  detail {version: 1, sessions: null, notebook: null}
//       fill in detail.sessions (a copy of metadata.llmsock.sessions, {} if none) and
//       detail.notebook (the notebook's path), synchronously, inside the listener.
//
// Two more put an answer's code block into the notebook (the widget's code-actions.js):
//
//   "llmsock:capabilities"     detail {version: 1, insertCode: false}
//       set detail.insertCode = true when the element is in a loaded notebook (the widget then
//       shows its insert buttons; elsewhere it offers Copy only).
//   "llmsock:insert-code"      detail {version: 1, code, where, ok: false, message: ""}
//       where "above" / "below": a new code cell with `code` above / below the cell that holds
//       the element (the chat); "replace": `code` becomes the source of the active cell, or,
//       when the chat's own cell is the active one (a click in the chat makes it so), of the
//       cell that was active before it; "run-below": as "below", then run the new cell.
//       Sets detail.ok, or detail.message saying why not; acknowledged either way.
//
// And one shows the chat in JupyterLab's (or Notebook 7's) right side panel (the widget's
// header.js):
//
//   "llmsock:capabilities"     also sets detail.openPanel = true for a view in a notebook cell.
//   "llmsock:open-panel"       detail {version: 1, ok: false, message: ""}
//       show another view of the chat cell's output (the same widget: the same session and
//       code) in the right side panel, or bring forward the one already open for that cell.
//       It closes with its cell or notebook. A view in the side panel is treated as if it were
//       in its chat cell: its snapshots go to that notebook and its code is inserted around
//       that cell.
//
// Stored shape: metadata.llmsock = {version: 1, sessions: {<session id>: <snapshot>, ...}}.
// Nothing else in the metadata (in particular metadata.widgets) is ever touched, and a save
// rewrites only the session it was asked to: every other entry of `sessions`, even one whose
// key is not a session id ("bad id!"), is written back as the notebook model holds it. Only
// entries that are a session id mapped to an object are offered to the widget, and "__proto__"
// is never a session id here: the notebook model copies metadata key by key with assignment,
// which turns such a key into a prototype (and, copied again, into bogus entries).

import { INotebookTracker, NotebookActions } from "@jupyterlab/notebook";
import { LabIcon } from "@jupyterlab/ui-components";

const KEY = "llmsock";
const VERSION = 1;
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Whether `id` is a session id this extension stores and restores (the kernel's rule). */
function isSessionId(id) {
  return typeof id === "string" && SESSION_ID.test(id) && id !== "__proto__";
}

/** A plain JSON-style object (not null, not an array). */
function isPlainObject(value) {
  return Object.prototype.toString.call(value) === "[object Object]";
}

/** A deep copy through JSON, so nothing of the caller's object is shared; undefined on failure. */
function jsonCopy(value) {
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return undefined; // cycles, BigInt, ...
  }
}

/** Deep equality of two JSON values (object key order does not matter). */
function jsonEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && jsonEqual(a[key], b[key]))
  );
}

/** Every stored entry of `model`'s sessions (a fresh copy), or {} when there are none or they are malformed. */
function storedSessions(model) {
  const stored = model.getMetadata(KEY);
  if (!isPlainObject(stored) || stored.version !== VERSION || !isPlainObject(stored.sessions)) return {};
  return jsonCopy(stored.sessions) ?? {};
}

/** The stored sessions the widget may restore: a session id mapped to a snapshot object. */
function restorableSessions(model) {
  const entries = Object.entries(storedSessions(model));
  return Object.fromEntries(entries.filter(([id, snapshot]) => isSessionId(id) && isPlainObject(snapshot)));
}

/** Whether `stored` is metadata.llmsock of another version of this format. */
function foreignVersion(stored) {
  return isPlainObject(stored) && typeof stored.version === "number" && stored.version !== VERSION;
}

/** @type {Map<Node, {panel: any, cell: any, widget: any}>} side-panel views -> where they come from */
const clones = new Map();

/** The side-panel view holding `target`, or undefined. */
function cloneContaining(target) {
  for (const [node, clone] of clones) if (node.contains(target)) return clone;
  return undefined;
}

/** The loaded notebook panel whose DOM holds `target` (or whose chat a side panel shows), or null. */
function panelContaining(tracker, target) {
  if (!(target instanceof Node)) return null;
  const panel =
    cloneContaining(target)?.panel ?? tracker.find((candidate) => candidate.node.contains(target));
  // Before the file is loaded the model is empty: reading or writing it then would be wrong.
  return panel && panel.context.isReady ? panel : null;
}

function onSnapshot(tracker, event) {
  const detail = event.detail;
  if (!isPlainObject(detail) || detail.version !== VERSION) return;
  if (!isSessionId(detail.session)) return;
  if (detail.snapshot !== null && !isPlainObject(detail.snapshot)) return;
  const snapshot = detail.snapshot === null ? null : jsonCopy(detail.snapshot);
  if (snapshot === undefined) return;
  const panel = panelContaining(tracker, event.target);
  if (!panel) return;
  const model = panel.context.model;

  const stored = model.getMetadata(KEY);
  if (foreignVersion(stored)) return; // another version of this format: leave it, do not acknowledge
  // Every other entry is copied as the model holds it; Object.entries/fromEntries define own
  // properties, so no key of the stored table can change a prototype here.
  const entries = Object.entries(storedSessions(model)).filter(([id]) => id !== detail.session);
  if (snapshot !== null) entries.push([detail.session, snapshot]);
  if (entries.length === 0) {
    if (stored !== undefined) model.deleteMetadata(KEY);
  } else {
    const value = { version: VERSION, sessions: Object.fromEntries(entries) };
    // An unchanged value is not written again: that would mark the notebook dirty for nothing.
    if (!jsonEqual(stored, value)) model.setMetadata(KEY, value);
  }
  event.preventDefault();
}

function onRestoreRequest(tracker, event) {
  const detail = event.detail;
  if (!isPlainObject(detail) || detail.version !== VERSION) return;
  const panel = panelContaining(tracker, event.target);
  if (!panel) return;
  if (foreignVersion(panel.context.model.getMetadata(KEY))) {
    // Another version of this format: the chats cannot be read here, and snapshots would be
    // refused. Not acknowledging makes the widget keep its chats in files instead.
    return;
  }
  detail.sessions = restorableSessions(panel.context.model);
  detail.notebook = panel.context.path;
  event.preventDefault();
}

const PLACES = new Set(["above", "below", "replace", "run-below"]);

/** @type {WeakMap<object, {current: any, previous: any}>} a notebook -> its last two active cells */
const activeCells = new WeakMap();

/** Remember the cell that was active before the current one, per notebook. */
function watchActiveCell(panel) {
  const notebook = panel.content;
  activeCells.set(notebook, { current: notebook.activeCell, previous: null });
  notebook.activeCellChanged.connect((_, cell) => {
    const seen = activeCells.get(notebook);
    if (seen && cell !== seen.current) activeCells.set(notebook, { current: cell, previous: seen.current });
  });
}

/** The index of the cell whose DOM holds `target` (or whose chat a side panel shows), or -1. */
function cellIndexOf(notebook, target) {
  const clone = cloneContaining(target);
  if (clone) return notebook.widgets.indexOf(clone.cell);
  return notebook.widgets.findIndex((cell) => cell.node.contains(target));
}

/** The cell "replace" writes to: the active one, or the one before it when the chat's is active. */
function cellToReplace(notebook, chatCell) {
  const active = notebook.activeCell;
  const cell = active && active !== chatCell ? active : activeCells.get(notebook)?.previous;
  return cell && cell !== chatCell && !cell.isDisposed && notebook.widgets.includes(cell) ? cell : null;
}

function onCapabilities(tracker, event) {
  const detail = event.detail;
  if (!isPlainObject(detail) || detail.version !== VERSION) return;
  if (!panelContaining(tracker, event.target)) return;
  detail.insertCode = true;
  detail.openPanel = cloneContaining(event.target) === undefined;
  event.preventDefault();
}

const chatIcon = new LabIcon({
  name: "llmsock-notebook:chat",
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H10l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>',
});
let panels = 0;

/** Show the chat cell holding `target` in the side panel; return why not, or "". */
function openPanel(app, panel, target) {
  const notebook = panel.content;
  const cell = notebook.widgets[cellIndexOf(notebook, target)];
  if (!cell || typeof cell.cloneOutputArea !== "function") return "the chat is not in a code cell of this notebook";
  const open = [...clones.values()].find((clone) => clone.cell === cell);
  if (open) {
    app.shell.activateById(open.widget.id);
    return "";
  }
  const widget = cell.cloneOutputArea();
  panels += 1;
  widget.id = `llmsock-chat-panel-${panels}`;
  widget.addClass("llmsock-panel");
  widget.title.icon = chatIcon;
  widget.title.label = "Chat";
  widget.title.caption = `llmsock chat of ${panel.context.path}`;
  widget.title.closable = true;
  clones.set(widget.node, { panel, cell, widget });
  widget.disposed.connect(() => clones.delete(widget.node));
  const close = () => widget.dispose();
  cell.disposed.connect(close);
  panel.disposed.connect(close);
  app.shell.add(widget, "right", { rank: 1000 });
  app.shell.activateById(widget.id);
  return "";
}

function onOpenPanel(app, tracker, event) {
  const detail = event.detail;
  if (!isPlainObject(detail) || detail.version !== VERSION) return;
  const panel = panelContaining(tracker, event.target);
  if (!panel) return;
  const why = openPanel(app, panel, event.target);
  detail.ok = why === "";
  detail.message = why;
  event.preventDefault();
}

/** Do what an insert request asks in `panel`; return why not, or "" when it is done. */
function insertCode(panel, target, code, where) {
  const notebook = panel.content;
  const model = notebook.model;
  const chat = cellIndexOf(notebook, target);
  if (!model || chat === -1) return "the chat is not in a cell of this notebook";
  if (where === "replace") {
    const cell = cellToReplace(notebook, notebook.widgets[chat]);
    if (!cell) return "no cell to replace: click the cell first";
    if (cell.model.type !== "code") return "the active cell is not a code cell";
    cell.model.sharedModel.setSource(code);
    return "";
  }
  const index = where === "above" ? chat : chat + 1;
  model.sharedModel.insertCell(index, { cell_type: "code", source: code, metadata: { trusted: true } });
  if (where === "run-below") {
    const cell = notebook.widgets[index];
    // Runs that one cell; the active cell stays the chat's.
    void NotebookActions.runCells(notebook, [cell], panel.sessionContext);
  }
  return "";
}

function onInsertCode(tracker, event) {
  const detail = event.detail;
  if (!isPlainObject(detail) || detail.version !== VERSION) return;
  if (typeof detail.code !== "string" || !PLACES.has(detail.where)) return;
  const panel = panelContaining(tracker, event.target);
  if (!panel) return;
  const why = insertCode(panel, event.target, detail.code, detail.where);
  detail.ok = why === "";
  detail.message = why;
  event.preventDefault();
}

/** @type {import("@jupyterlab/application").JupyterFrontEndPlugin<void>} */
const plugin = {
  id: "llmsock-notebook:plugin",
  description:
    "Keeps the llmsock chat widget's sessions in the notebook's metadata; puts its code into cells; shows it in the side panel.",
  autoStart: true,
  // Optional: pages without notebooks (Notebook 7's file browser) have no tracker.
  optional: [INotebookTracker],
  activate: (app, tracker) => {
    if (!tracker) return;
    document.addEventListener("llmsock:snapshot", (event) => onSnapshot(tracker, event));
    document.addEventListener("llmsock:restore-request", (event) => onRestoreRequest(tracker, event));
    tracker.forEach(watchActiveCell);
    tracker.widgetAdded.connect((_, panel) => watchActiveCell(panel));
    document.addEventListener("llmsock:capabilities", (event) => onCapabilities(tracker, event));
    document.addEventListener("llmsock:insert-code", (event) => onInsertCode(tracker, event));
    document.addEventListener("llmsock:open-panel", (event) => onOpenPanel(app, tracker, event));
  },
};

export default plugin;
