// The steps of an assistant message shown before its text: the model's reasoning and its tool
// calls, each a collapsible <details>. DOM only, like view.js. Tool names, arguments, results
// and reasoning come from the model or from tools, so all of it reaches the DOM as textContent,
// never as HTML, with invisible and reordering characters shown as markers (invisible.js).
// The <details> elements are updated in place (tool calls matched by id), so a block the
// reader opened stays open while the answer streams.

import { reveal } from "./invisible.js";
import { breakLongRuns } from "./wrap.js";

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
 * The status shown in a tool call's summary: `running…`, `done in 12 ms` or `error CODE`.
 * @param {import("./protocol.js").ToolRecord} tool
 * @returns {string}
 */
export function toolStatusText(tool) {
  if (tool.status === "running") return "running…";
  if (tool.status === "error") return `error ${tool.error?.code || "tool_error"}`;
  return Number.isInteger(tool.durationMs) ? `done in ${tool.durationMs} ms` : "done";
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

function paintTool(details, tool) {
  const document = details.ownerDocument;
  const status = ["running", "complete", "error"].includes(tool.status) ? tool.status : "complete";
  details.setAttribute("data-tool-status", status);
  const summary = details.firstElementChild;
  summary.querySelector(".llmsock-tool-name").textContent = reveal(tool.name || "(unnamed tool)");
  summary.querySelector(".llmsock-tool-state").textContent = toolStatusText(tool);
  const body = details.lastElementChild;
  const parts = [
    h(document, "div", "llmsock-tool-label", "Arguments"),
    h(document, "pre", "llmsock-tool-args", argumentsDisplay(tool.arguments)),
  ];
  if (status === "complete") {
    parts.push(
      h(document, "div", "llmsock-tool-label", "Result"),
      h(document, "pre", "llmsock-tool-result", resultText(tool.result)),
    );
  } else if (status === "error") {
    const error = tool.error || { code: "tool_error", message: "" };
    parts.push(h(document, "div", "llmsock-tool-error", `Error: ${error.code}: ${error.message}`));
  }
  body.replaceChildren(...parts);
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
 * Returns: {paintReasoning(text), paintTools(tools)}; each may be called on every change.
 * @param {HTMLElement} container
 * @returns {{paintReasoning: (text: string) => void, paintTools: (tools: import("./protocol.js").ToolRecord[]) => void}}
 */
export function createSteps(container) {
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
      if (painted.get(node) !== tool) {
        paintTool(node, tool);
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
