// The steps of an assistant message shown before its text: the model's reasoning and its tool
// calls, each a collapsible <details>. DOM only, like view.js. Tool names, arguments, results
// and reasoning come from the model or from tools, so all of it reaches the DOM as textContent,
// never as HTML, with invisible and reordering characters shown as markers (invisible.js); only
// run_code's code is HTML, from the sanitizing Markdown renderer (approval.js). A call that
// waits for the user's approval opens its card, which asks (approval.js); once decided, the
// card says how it went.
// The <details> elements are updated in place (tool calls matched by id), so a block the
// reader opened stays open while the answer streams.

import { approvalText } from "./approval.js";
import { reveal } from "./invisible.js";
import { breakLongRuns } from "./wrap.js";

/** @typedef {ReturnType<typeof import("./approval.js").createApprovals>} Approvals */

// U+2699 (gear) is in the common text fonts; an emoji wrench shows as a box where no emoji font is installed.
const WRENCH = "\u2699";

/**
 * Pretty JSON text of a value; a string is shown as it is (the result of a text tool).
 * @param {unknown} value
 * @returns {string}
 */
export function resultText(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value === undefined ? null : value, null, 2) ?? "null";
  } catch {
    return String(value);
  }
}

/**
 * Pretty JSON text of a tool call's arguments text; text that is not JSON is kept as is.
 * @param {unknown} text
 * @returns {string}
 */
export function argumentsDisplay(text) {
  if (typeof text !== "string") return resultText(text);
  if (text.trim() === "") return "";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/**
 * The status shown in a tool call's summary: `running…`, `done in 12 ms` or `error CODE`; a
 * call that needed approval says where that stands: `waiting for approval`, `approved ·
 * done in 12 ms`, `denied by you`, `not approved in time`, `stopped`.
 * @param {import("./protocol.js").ToolRecord} tool
 * @returns {string}
 */
export function toolStatusText(tool) {
  if (tool.approval && tool.approval !== "approved") return approvalText(tool.approval);
  let text = "";
  if (tool.status === "running") text = "running…";
  else if (tool.status === "error") text = `error ${tool.error?.code || "tool_error"}`;
  else text = Number.isInteger(tool.durationMs) ? `done in ${tool.durationMs} ms` : "done";
  return tool.approval === "approved" ? `approved · ${text}` : text;
}

/**
 * Make an element with a class and (revealed, wrappable) text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {Document} document
 * @param {K} tag
 * @param {string | null} className
 * @param {string | null} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(document, tag, className, text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) {
    node.textContent = reveal(text);
    breakLongRuns(node);
  }
  return node;
}

/**
 * The body's first part: what the call does (run_code's code highlighted, when there is an
 * approvals part to render it; otherwise the arguments as text).
 * @param {Document} document
 * @param {import("./protocol.js").ToolRecord} tool
 * @param {Approvals | null} approvals
 */
function whatItDoes(document, tool, approvals) {
  const code = approvals?.code(tool) ?? null;
  if (code !== null) return [h(document, "div", "llmsock-tool-label", "Code"), code];
  return [
    h(document, "div", "llmsock-tool-label", "Arguments"),
    h(document, "pre", "llmsock-tool-args", argumentsDisplay(tool.arguments)),
  ];
}

/**
 * Paint `tool` into its card; `previous` is the record painted before (none: a new card).
 * @param {HTMLDetailsElement} details
 * @param {import("./protocol.js").ToolRecord} tool
 * @param {import("./protocol.js").ToolRecord | undefined} previous
 * @param {Approvals | null} approvals
 */
function paintTool(details, tool, previous, approvals) {
  const document = details.ownerDocument;
  const status = ["running", "complete", "error"].includes(tool.status) ? tool.status : "complete";
  details.setAttribute("data-tool-status", status);
  if (tool.approval) details.setAttribute("data-approval", tool.approval);
  else details.removeAttribute("data-approval");
  const summary = /** @type {HTMLElement} */ (details.firstElementChild);
  /** @type {HTMLElement} */ (summary.querySelector(".llmsock-tool-name")).textContent = reveal(
    tool.name || "(unnamed tool)",
  );
  /** @type {HTMLElement} */ (summary.querySelector(".llmsock-tool-state")).textContent = toolStatusText(tool);
  const body = /** @type {HTMLElement} */ (details.lastElementChild);
  const parts = whatItDoes(document, tool, approvals);
  const pending = tool.approval === "pending" && status === "running";
  if (pending && approvals) {
    parts.push(approvals.ask(tool));
    // A call that starts waiting opens its card (the user may close it again).
    if (previous?.approval !== "pending") details.open = true;
  } else {
    approvals?.settled(tool.id);
  }
  const refused = tool.approval !== undefined && tool.approval !== "approved" && tool.approval !== "pending";
  if (refused) {
    const line = h(document, "div", "llmsock-approval-status", `Not run: ${approvalText(tool.approval)}.`);
    line.setAttribute("data-approval", String(tool.approval));
    parts.push(line);
  } else if (status === "complete") {
    parts.push(
      h(document, "div", "llmsock-tool-label", "Result"),
      h(document, "pre", "llmsock-tool-result", resultText(tool.result)),
    );
  } else if (status === "error") {
    const error = tool.error || { code: "tool_error", message: "" };
    parts.push(h(document, "div", "llmsock-tool-error", `Error: ${error.code}: ${error.message}`));
  }
  // A keyboard user who just answered keeps the focus on this card, not on a removed button.
  const focused = body.contains(document.activeElement);
  body.replaceChildren(...parts);
  if (focused && !body.contains(document.activeElement)) summary.focus();
}

function createTool(document, tool) {
  const details = h(document, "details", "llmsock-tool");
  details.setAttribute("data-tool-id", tool.id);
  const summary = h(document, "summary", "llmsock-tool-summary");
  const icon = h(document, "span", "llmsock-tool-icon", WRENCH);
  icon.setAttribute("aria-hidden", "true");
  summary.append(icon, h(document, "span", "llmsock-tool-name"), h(document, "span", "llmsock-tool-state"));
  details.append(summary, h(document, "div", "llmsock-tool-body"));
  return details;
}

/**
 * Make the painter of one message's steps inside `container` (an element of its own).
 *
 * `approvals` (approval.js, one per view) paints what a call that waits for approval asks,
 * and run_code's code; without it the cards show arguments only.
 * Returns: {paintReasoning(text), paintTools(tools)}; each may be called on every change.
 * @param {HTMLElement} container
 * @param {Approvals | null} [approvals]
 * @returns {{paintReasoning: (text: string) => void, paintTools: (tools: import("./protocol.js").ToolRecord[]) => void}}
 */
export function createSteps(container, approvals = null) {
  const document = container.ownerDocument;
  let reasoning = null; // the <details> of the reasoning, once there is some
  const painted = new WeakMap(); // tool <details> -> the tool record painted into it

  function paintReasoning(text) {
    if (!text) {
      reasoning?.remove();
      reasoning = null;
      return;
    }
    if (reasoning === null) {
      reasoning = h(document, "details", "llmsock-reasoning");
      reasoning.append(h(document, "summary", "llmsock-reasoning-summary", "Reasoning"));
      reasoning.append(h(document, "div", "llmsock-reasoning-text"));
      container.prepend(reasoning);
    }
    reasoning.lastElementChild.textContent = reveal(text);
    breakLongRuns(reasoning.lastElementChild);
  }

  function paintTools(tools) {
    // Existing tool blocks by id (a list per id, in case a history repeats an id).
    const existing = new Map();
    for (const node of [...container.children].filter((n) => n.classList.contains("llmsock-tool"))) {
      const id = node.getAttribute("data-tool-id");
      if (!existing.has(id)) existing.set(id, []);
      existing.get(id).push(node);
    }
    const wanted = (tools ?? []).map((tool) => {
      const node = existing.get(tool.id)?.shift() ?? createTool(document, tool);
      const previous = painted.get(node);
      if (previous !== tool) {
        paintTool(node, tool, previous, approvals);
        painted.set(node, tool);
      }
      return node;
    });
    for (const nodes of existing.values()) for (const node of nodes) node.remove();
    // Tools follow the reasoning, in order; move only the nodes that are out of place.
    let before = reasoning ? reasoning.nextElementSibling : container.firstElementChild;
    for (const node of wanted) {
      if (node !== before) container.insertBefore(node, before);
      before = node.nextElementSibling;
    }
  }

  return { paintReasoning, paintTools };
}
