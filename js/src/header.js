// Who the chat is: a header over the transcript with the session's name, the model that
// answers, and the tokens the session's answers used (where the model reports them); and, in a
// chat with no messages yet, an empty state that says the same in words and offers example
// prompts. An example fills the message box (it is not sent: the user may edit it first).
//
// The model is the one this chat chose (its `model` setting), else the one the last answer
// named (model.start), else the kernel's default (the connect message). When the kernel has
// more than one model set up (`%llmsock model ...`), the model is a picker: choosing one sets
// the chat's `model` setting, which every prompt carries (choosing the kernel's default sets
// it back to none, so the chat follows `%llmsock model`).
//
// Where the llmsock-notebook plugin answers (JupyterLab 4, Notebook 7), the header also has
// "Open in side panel": the plugin shows another view of the same widget (the same session,
// the same code) in the right side panel, where a long chat has the window's height. The
// plugin is reached as for code blocks (plugin.js): DOM events that bubble from the view,
// acknowledged with preventDefault(); "llmsock:capabilities" says whether it can
// (`openPanel`), "llmsock:open-panel" asks it to.
//
// "Explain the last error" (where the view can ask the kernel, kernel-requests.js) asks the
// kernel to send its last traceback to this chat as a prompt; the answer streams into the
// transcript like any other. It sits here, with the chat's other actions, not in the composer's
// row: it does not use the message box's text, and the header shows in the side panel too. When
// the kernel refuses (no cell has failed yet), the line next to it says why.

import { CAPABILITIES_EVENT } from "./code-actions.js";
import { askPlugin } from "./plugin.js";

/** Asks the plugin to show this chat in the side panel. */
export const OPEN_PANEL_EVENT = "llmsock:open-panel";

/** Example prompts of the empty state: one for prose, one for code, one for formatting. */
export const EXAMPLES = Object.freeze([
  "Explain what a Python generator is, with a short example.",
  "Write a function that groups a pandas DataFrame by one column and sums another.",
  "/markdown",
]);

/**
 * The tokens all answers of `messages` used, or null when no answer reported any.
 * @param {import("./reducer.js").Message[]} messages
 * @returns {{input: number, output: number, answers: number} | null}
 */
export function sessionUsage(messages) {
  let input = 0;
  let output = 0;
  let answers = 0;
  for (const message of messages) {
    const usage = message.role === "assistant" ? message.usage : null;
    if (!usage) continue;
    input += usage.inputTokens ?? 0;
    output += usage.outputTokens ?? 0;
    answers += 1;
  }
  return answers > 0 ? { input, output, answers } : null;
}

/**
 * The header's usage text and its longer title.
 * @param {{input: number, output: number, answers: number} | null} usage
 * @returns {{text: string, title: string}}
 */
export function usageSummary(usage) {
  if (usage === null) return { text: "", title: "" };
  const total = (usage.input + usage.output).toLocaleString("en-US");
  const answers = `${usage.answers} answer${usage.answers === 1 ? "" : "s"}`;
  return {
    text: `${total} tokens`,
    title: `${usage.input.toLocaleString("en-US")} in, ${usage.output.toLocaleString("en-US")} out, over ${answers}`,
  };
}

/**
 * The model the header names: the last answer's, else the kernel's, else "".
 * @param {import("./reducer.js").Message[]} messages
 * @param {string} kernelModel
 * @returns {string}
 */
export function currentModel(messages, kernelModel) {
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const model = /** @type {any} */ (messages[i]).model;
    if (messages[i].role === "assistant" && typeof model === "string" && model) return model;
  }
  return kernelModel;
}

/**
 * Whether the plugin can show the view holding `el` in the side panel.
 * @param {Element} el
 * @returns {boolean}
 */
export function probePanel(el) {
  const detail = { version: 1, insertCode: false, openPanel: false };
  return askPlugin(el, CAPABILITIES_EVENT, detail) && detail.openPanel === true;
}

/**
 * Ask the plugin to open the view holding `el` in the side panel.
 * @param {Element} el
 * @returns {{ok: boolean, message: string}}
 */
export function requestPanel(el) {
  const detail = { version: 1, ok: false, message: "" };
  if (!askPlugin(el, OPEN_PANEL_EVENT, detail)) return { ok: false, message: "no notebook answered" };
  return { ok: detail.ok === true, message: typeof detail.message === "string" ? detail.message : "" };
}

/**
 * The header and the empty state of one view.
 *
 * Args (one object): document; host, the view's element (the plugin's events go from it);
 * onExample(text) puts an example into the message box; say(text) reads a result out;
 * onModel(name | null) sets the chat's model setting; onExplain(), when given, asks the kernel
 * to explain the last error and resolves {ok, message} (the button is hidden without it).
 * Returns {header, empty, paint({session, model, messages, synced})}: `header` goes above the
 * transcript; `empty` is shown (by the view) when `paint` says the chat is empty.
 *
 * @param {object} options
 * @param {Document} options.document
 * @param {HTMLElement} options.host
 * @param {(text: string) => void} options.onExample
 * @param {(text: string) => void} options.say
 * @param {(name: string | null) => void} options.onModel
 * @param {(() => Promise<{ok: boolean, message: string}>) | null} [options.onExplain]
 */
export function createHeader({ document, host, onExample, say, onModel, onExplain = null }) {
  /**
   * @param {string} tag
   * @param {Record<string, string>} [attrs]
   * @param {string} [text]
   */
  function h(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const header = h("div", { class: "llmsock-header", "data-role": "header" });
  const title = h("span", { class: "llmsock-title", "data-role": "session-name" });
  const model = h("span", { class: "llmsock-model", "data-role": "model" });
  const pickerId = `llmsock-model-${Math.random().toString(36).slice(2, 10)}`;
  const picker = h("span", { class: "llmsock-model-picker" });
  const pickerLabel = h("label", { for: pickerId }, "model");
  const select = /** @type {HTMLSelectElement} */ (h("select", { id: pickerId, "data-role": "model-picker" }));
  picker.append(pickerLabel, select);
  picker.hidden = true;
  let kernelDefault = "";
  select.addEventListener("change", () => {
    onModel(select.value === kernelDefault ? null : select.value);
    say(`Model: ${select.value}`);
  });
  const usage = h("span", { class: "llmsock-session-usage", "data-role": "session-usage" });
  const panel = /** @type {HTMLButtonElement} */ (
    h("button", { type: "button", class: "llmsock-open-panel", "data-action": "open-panel" }, "Open in side panel")
  );
  panel.hidden = true;
  panel.addEventListener("click", () => {
    const { ok, message } = requestPanel(panel);
    say(ok ? "The chat is open in the side panel" : `Not opened: ${message || "the notebook refused"}`);
  });
  const explain = /** @type {HTMLButtonElement} */ (
    h("button", { type: "button", class: "llmsock-explain", "data-action": "explain" }, "Explain the last error")
  );
  const explainNote = h("span", { class: "llmsock-explain-note", role: "status", "data-role": "explain-note" });
  explain.hidden = onExplain === null;
  explainNote.hidden = true;
  explain.addEventListener("click", async () => {
    if (onExplain === null) return;
    explain.disabled = true;
    explainNote.textContent = "";
    explainNote.hidden = true;
    try {
      const { ok, message } = await onExplain();
      if (ok) say("Explaining the last error");
      else {
        explainNote.textContent = message || "The kernel did not send the error.";
        explainNote.hidden = false;
      }
    } finally {
      explain.disabled = false;
    }
  });
  header.append(title, model, picker, usage, explain, explainNote, panel);
  /** @type {boolean | null} whether the plugin can open a side panel (null: not asked in the page yet) */
  let canOpen = null;

  const empty = h("div", { class: "llmsock-empty", "data-role": "empty-state" });
  const intro = h("p", { class: "llmsock-empty-intro" });
  const examples = h("div", { class: "llmsock-examples", role: "group", "aria-label": "Example prompts" });
  for (const text of EXAMPLES) {
    const button = h("button", { type: "button", class: "llmsock-example", "data-action": "example" }, text);
    button.addEventListener("click", () => onExample(text));
    examples.append(button);
  }
  empty.append(intro, h("p", { class: "llmsock-empty-hint" }, "Try one (it goes into the message box):"), examples);

  let shown = "";

  /**
   * @param {{session: string, model: string, models?: string[], chosen?: string | null,
   *   messages: import("./reducer.js").Message[]}} now
   * @returns {boolean} whether the chat is empty (the view shows `empty` then)
   */
  function paint(now) {
    if (canOpen === null && host.isConnected) {
      canOpen = probePanel(host);
      panel.hidden = !canOpen;
    }
    const name = now.chosen || currentModel(now.messages, now.model);
    const models = now.models ?? [];
    const summary = usageSummary(sessionUsage(now.messages));
    const key = JSON.stringify([now.session, name, summary, models, now.model]);
    if (key !== shown) {
      shown = key;
      kernelDefault = now.model;
      title.textContent = now.session ? `Chat · ${now.session}` : "Chat";
      // A picker where there is a choice; the name alone otherwise.
      const choices = models.includes(name) || !name ? models : [...models, name];
      picker.hidden = choices.length < 2;
      model.hidden = !picker.hidden;
      model.textContent = name ? `model: ${name}` : "";
      select.replaceChildren(...choices.map((choice) => h("option", { value: choice }, choice)));
      select.value = name;
      usage.textContent = summary.text;
      usage.title = summary.title;
      intro.textContent = `A new chat: session “${now.session || "default"}”, answered by ${name ? `the model “${name}”` : "the kernel's model"}. Nothing has been said yet.`;
    }
    return now.messages.length === 0;
  }

  return { header, empty, paint };
}
