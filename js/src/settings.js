// The chat's model settings: the system prompt, temperature, the most tokens an answer may
// have, the model (chosen in the header, header.js), which tools to offer, the model's timeout
// and its retries. They are the widget's synced traits (`system`, `temperature`, `max_tokens`,
// `model`, `tools`, `timeout`, `retries`; llmsock_widget/notebook/widget.py), sent as options
// with every prompt (docs/protocol.md, section 7.1), so the session keeps the last prompt's in
// its snapshot; they are edited in a small inline panel under the composer (a <details>, like
// the connection's "details").
//
// This module builds the panel; the pure half (reading trait values, parsing what the user
// typed, building a prompt's options) is settings-values.js. A setting that is not set (null)
// is not sent: the model's own setting applies. Invalid input is shown next to its field and
// never reaches the traits, so a prompt only ever carries valid values.

import {
  normalizeSystem,
  parseMaxTokens,
  parseRetries,
  parseTemperature,
  parseTimeout,
  SYSTEM_MAX,
  summaryText,
} from "./settings-values.js";

// The values half, for the modules that import settings from here.
export * from "./settings-values.js";

/** @typedef {import("./settings-values.js").ModelSettings} ModelSettings */
/** @typedef {import("./settings-values.js").Parsed} Parsed */

/** @type {(value: number) => string} */
const seconds = (value) => `${value} s`;
/** @type {(value: number) => string} */
const retriesSaid = (value) => (value === 1 ? "1 retry" : `${value} retries`);
/** @type {(value: number) => string} */
const plain = (value) => String(value);
/** @type {(value: number) => string} */
const tokensSaid = (value) => `${value} tokens`;

// --- the panel -------------------------------------------------------------------------------

let panels = 0; // ids for labels and error lines, unique in the page
const TOOL_CHOICES = [
  ["default", "model default"],
  ["on", "on: every tool"],
  ["off", "off"],
];

/**
 * @param {string} choice  a value of the tools <select>
 * @param {boolean | string[] | null} current
 * @returns {boolean | string[] | null}
 */
function toolsOfChoice(choice, current) {
  if (choice === "on") return true;
  if (choice === "off") return false;
  if (choice === "list") return Array.isArray(current) ? current : null;
  return null;
}

/**
 * @param {boolean | string[] | null} tools
 * @returns {string}
 */
function choiceOfTools(tools) {
  if (tools === null) return "default";
  if (typeof tools === "boolean") return tools ? "on" : "off";
  return "list";
}

/**
 * @param {boolean | string[] | null} a
 * @param {boolean | string[] | null} b
 */
function sameTools(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((name, i) => name === b[i]);
  return a === b;
}

/**
 * Build the settings panel: a <details> whose summary says what is set.
 *
 * `onChange(change)` gets the settings the user changed, each valid (`{timeout: 30}`,
 * `{tools: null}`); `set(settings)` shows settings that changed elsewhere (the traits),
 * leaving alone a field whose text already means that value (the user is typing "1.5").
 * @param {Document} document
 * @param {{initial: ModelSettings, onChange: (change: Partial<ModelSettings>) => void}} options
 * @returns {{element: HTMLDetailsElement, set: (settings: ModelSettings) => void, destroy: () => void}}
 */
export function createSettingsPanel(document, { initial, onChange }) {
  panels += 1;
  const prefix = `llmsock-settings-${panels}`;
  /** @type {ModelSettings} */
  let known = { ...initial };

  /**
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {Record<string, string>} [attrs]
   * @param {string} [text]
   * @returns {HTMLElementTagNameMap[K]}
   */
  const h = (tag, attrs = {}, text = "") => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  };

  const element = h("details", { class: "llmsock-settings", "data-role": "settings" });
  const summary = h("summary", { class: "llmsock-settings-summary" });
  // JupyterLab: no notebook shortcuts (a, b, d d) from keys typed in the panel.
  const body = h("div", { class: "llmsock-settings-body", "data-lm-suppress-shortcuts": "true" });
  element.append(summary, body);

  /**
   * Add a labelled field to the panel; return its error line.
   * @param {string} name
   * @param {string} label
   * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
   * @returns {HTMLDivElement}
   */
  const field = (name, label, control) => {
    const row = h("div", { class: "llmsock-field", "data-field": name });
    control.id = `${prefix}-${name}`;
    const error = h("div", { class: "llmsock-field-error", id: `${control.id}-error`, "aria-live": "polite" });
    control.setAttribute("aria-describedby", error.id);
    row.append(h("label", { for: control.id }, label), control, error);
    body.append(row);
    return error;
  };

  const tools = h("select", { class: "llmsock-tools", name: "tools" });
  const number = (name, mode) =>
    h("input", {
      type: "text",
      inputmode: mode,
      name,
      class: "llmsock-number",
      placeholder: "model default",
      autocomplete: "off",
      spellcheck: "false",
    });
  const timeout = number("timeout", "decimal");
  const retries = number("retries", "numeric");
  const temperature = number("temperature", "decimal");
  const maxTokens = number("maxTokens", "numeric");
  const system = h("textarea", {
    class: "llmsock-system",
    name: "system",
    rows: "2",
    placeholder: "none",
    spellcheck: "true",
  });
  const systemError = field("system", "System prompt", system);
  const temperatureError = field("temperature", "Temperature", temperature);
  const maxTokensError = field("maxTokens", "Max tokens", maxTokens);
  field("tools", "Tools", tools);
  const timeoutError = field("timeout", "Timeout (s)", timeout);
  const retriesError = field("retries", "Retries", retries);
  body.append(h("div", { class: "llmsock-settings-note" }, "Empty: the model's setting. Sent with each prompt."));

  /**
   * The number fields: where each is, how its text is read and how its value is said.
   * @type {{input: HTMLInputElement, error: HTMLDivElement,
   *   name: "timeout" | "retries" | "temperature" | "maxTokens",
   *   parse: (text: string) => Parsed, said: (value: number) => string}[]}
   */
  const inputs = [
    { input: temperature, error: temperatureError, name: "temperature", parse: parseTemperature, said: plain },
    { input: maxTokens, error: maxTokensError, name: "maxTokens", parse: parseMaxTokens, said: tokensSaid },
    { input: timeout, error: timeoutError, name: "timeout", parse: parseTimeout, said: seconds },
    { input: retries, error: retriesError, name: "retries", parse: parseRetries, said: retriesSaid },
  ];

  function paintTools() {
    const choices = [...TOOL_CHOICES];
    if (Array.isArray(known.tools)) choices.push(["list", `only: ${known.tools.join(", ") || "none"}`]);
    tools.replaceChildren(...choices.map(([value, text]) => h("option", { value }, text)));
    tools.value = choiceOfTools(known.tools);
  }

  /**
   * @param {HTMLInputElement | HTMLTextAreaElement} input
   * @param {HTMLDivElement} error
   * @param {string} message  "" when the field is valid
   */
  function showError(input, error, message) {
    error.textContent = message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function paintSummary() {
    summary.textContent = summaryText(known);
  }

  /** @param {ModelSettings} settings */
  function set(settings) {
    const previous = known;
    known = { ...settings };
    if (!sameTools(previous.tools, known.tools)) paintTools();
    if ((known.system ?? null) !== (previous.system ?? null) && normalizeSystem(system.value) !== known.system) {
      system.value = known.system ?? "";
      showError(system, systemError, "");
    }
    for (const { input, error, name, parse } of inputs) {
      const value = known[name] ?? null;
      if (value === (previous[name] ?? null)) continue;
      const shown = parse(input.value);
      if (shown.ok && shown.value === value) continue;
      input.value = value === null ? "" : String(value);
      showError(input, error, "");
    }
    paintSummary();
  }

  const onTools = () => {
    const value = toolsOfChoice(tools.value, known.tools);
    if (sameTools(value, known.tools)) return;
    known = { ...known, tools: value };
    paintSummary();
    onChange({ tools: value });
  };
  const onInput = (event) => {
    const entry = inputs.find((item) => item.input === event.target);
    if (!entry) return;
    const key = entry.name;
    const parsed = entry.parse(entry.input.value);
    if (!parsed.ok) {
      // Not sent: the traits keep their value, and the message says which one prompts use.
      const current = known[key] ?? null;
      const inEffect = current === null ? "the model's setting" : entry.said(current);
      showError(entry.input, entry.error, `Not sent: ${parsed.error}. Prompts use ${inEffect}.`);
      return;
    }
    showError(entry.input, entry.error, "");
    if (parsed.value === known[key]) return;
    known = { ...known, [key]: parsed.value };
    paintSummary();
    onChange({ [key]: parsed.value });
  };
  // The system prompt is taken when the box is left (not at every key: each change is a
  // message to the kernel); Send and Enter in the message box come after that.
  const onSystem = () => {
    const text = system.value;
    if (text.length > SYSTEM_MAX) {
      showError(system, systemError, `Not sent: at most ${SYSTEM_MAX.toLocaleString("en-US")} characters.`);
      return;
    }
    showError(system, systemError, "");
    const value = normalizeSystem(text);
    if (value === (known.system ?? null)) return;
    known = { ...known, system: value };
    paintSummary();
    onChange({ system: value });
  };
  const onKeydown = (event) => {
    // Classic notebook hosts listen in the bubble phase; keep typing inside the widget.
    if (!event.ctrlKey && !event.metaKey) event.stopPropagation();
    if (event.key === "Escape") {
      element.open = false;
      summary.focus();
    }
  };
  tools.addEventListener("change", onTools);
  body.addEventListener("input", onInput);
  body.addEventListener("keydown", onKeydown);
  system.addEventListener("change", onSystem);
  paintTools();
  system.value = known.system ?? "";
  for (const { input, name } of inputs) {
    const value = known[name] ?? null;
    input.value = value === null ? "" : String(value);
  }
  paintSummary();

  function destroy() {
    tools.removeEventListener("change", onTools);
    body.removeEventListener("input", onInput);
    body.removeEventListener("keydown", onKeydown);
    system.removeEventListener("change", onSystem);
    element.remove();
  }

  return { element, set, destroy };
}
