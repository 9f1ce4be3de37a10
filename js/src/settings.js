// The chat's model settings: which tools to offer, the model's timeout and its retries. They
// are the widget's synced traits (`tools`, `timeout`, `retries`; llmsock_widget/notebook/
// widget.py), sent as options with every prompt (docs/protocol.md, section 7.1), and edited
// in a small inline panel under the composer (a <details>, like the connection's "details").
//
// The first half is pure (reading trait values, parsing what the user typed, building a
// prompt's options); the second builds the panel. A setting that is not set (null) is not
// sent: the model's own setting applies. Invalid input is shown next to its field and never
// reaches the traits, so a prompt only ever carries valid values.

export const TIMEOUT_MAX = 3600;
export const RETRIES_MAX = 10;

/**
 * The settings a view sends with each prompt; null means "the model's setting".
 * @typedef {object} ModelSettings
 * @property {boolean | string[] | null} tools  true: every registered tool, false: none, a list: those
 * @property {number | null} timeout  seconds of silence the model waits for its provider
 * @property {number | null} retries  retries of a failed request
 */

/** @typedef {{ok: true, value: number | null} | {ok: false, error: string}} Parsed */

/** @type {ModelSettings} */
export const DEFAULT_SETTINGS = Object.freeze({ tools: null, timeout: null, retries: null });

/**
 * A `tools` trait value as the view uses it (anything else, as from an old kernel, is null).
 * @param {unknown} value
 * @returns {boolean | string[] | null}
 */
export function normalizeTools(value) {
  if (typeof value === "boolean") return value;
  if (Array.isArray(value) && value.every((name) => typeof name === "string")) return [...value];
  return null;
}

/**
 * A `timeout` trait value as the view uses it: a number above 0, at most TIMEOUT_MAX, or null.
 * @param {unknown} value
 * @returns {number | null}
 */
export function normalizeTimeout(value) {
  return typeof value === "number" && value > 0 && value <= TIMEOUT_MAX ? value : null;
}

/**
 * A `retries` trait value as the view uses it: an integer from 0 to RETRIES_MAX, or null.
 * @param {unknown} value
 * @returns {number | null}
 */
export function normalizeRetries(value) {
  return Number.isInteger(value) && /** @type {number} */ (value) >= 0 && /** @type {number} */ (value) <= RETRIES_MAX
    ? /** @type {number} */ (value)
    : null;
}

/**
 * The settings held by a widget model's traits.
 * @param {(name: string) => unknown} get  the model's `get`
 * @returns {ModelSettings}
 */
export function readSettings(get) {
  return {
    tools: normalizeTools(get("tools")),
    timeout: normalizeTimeout(get("timeout")),
    retries: normalizeRetries(get("retries")),
  };
}

/**
 * The options a prompt carries for these settings: only those that are set.
 * @param {ModelSettings} settings
 * @returns {{tools?: boolean | string[], timeout?: number, retries?: number}}
 */
export function promptOptions(settings) {
  /** @type {{tools?: boolean | string[], timeout?: number, retries?: number}} */
  const options = {};
  const tools = normalizeTools(settings.tools);
  const timeout = normalizeTimeout(settings.timeout);
  const retries = normalizeRetries(settings.retries);
  if (tools !== null) options.tools = tools;
  if (timeout !== null) options.timeout = timeout;
  if (retries !== null) options.retries = retries;
  return options;
}

const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;
const WHOLE = /^\d+$/;

/**
 * Parse what the user typed as a timeout: "" is the model's setting.
 * @param {string} text
 * @returns {Parsed}
 */
export function parseTimeout(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return { ok: true, value: null };
  const value = DECIMAL.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (value > 0 && value <= TIMEOUT_MAX) return { ok: true, value };
  return { ok: false, error: `a number of seconds above 0, at most ${TIMEOUT_MAX}` };
}

/**
 * Parse what the user typed as a number of retries: "" is the model's setting.
 * @param {string} text
 * @returns {Parsed}
 */
export function parseRetries(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return { ok: true, value: null };
  const value = WHOLE.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (value >= 0 && value <= RETRIES_MAX) return { ok: true, value };
  return { ok: false, error: `a whole number from 0 to ${RETRIES_MAX}` };
}

/**
 * The word for a tools setting: "default", "on", "off" or "only a, b".
 * @param {boolean | string[] | null} tools
 * @returns {string}
 */
export function toolsText(tools) {
  if (tools === null) return "default";
  if (tools === true) return "on";
  if (tools === false || tools.length === 0) return "off";
  return `only ${tools.join(", ")}`;
}

/**
 * The panel's summary: "settings", then the settings that are set.
 * @param {ModelSettings} settings
 * @returns {string}
 */
export function summaryText(settings) {
  const parts = [];
  if (settings.tools !== null) parts.push(`tools ${toolsText(settings.tools)}`);
  if (settings.timeout !== null) parts.push(`timeout ${settings.timeout} s`);
  if (settings.retries !== null) parts.push(`retries ${settings.retries}`);
  return parts.length ? `settings · ${parts.join(" · ")}` : "settings";
}

/** @type {(value: number) => string} */
const seconds = (value) => `${value} s`;
/** @type {(value: number) => string} */
const retriesSaid = (value) => (value === 1 ? "1 retry" : `${value} retries`);

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
   * @param {HTMLInputElement | HTMLSelectElement} control
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
  field("tools", "Tools", tools);
  const timeoutError = field("timeout", "Timeout (s)", timeout);
  const retriesError = field("retries", "Retries", retries);
  body.append(h("div", { class: "llmsock-settings-note" }, "Empty: the model's setting. Sent with each prompt."));

  /**
   * The number fields: where each is, how its text is read and how its value is said.
   * @type {{input: HTMLInputElement, error: HTMLDivElement, name: "timeout" | "retries",
   *   parse: (text: string) => Parsed, said: (value: number) => string}[]}
   */
  const inputs = [
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
   * @param {HTMLInputElement} input
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
    for (const { input, error, name, parse } of inputs) {
      const value = known[name];
      if (value === previous[name]) continue;
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
      const current = known[key];
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
  paintTools();
  for (const { input, name } of inputs) {
    const value = known[name];
    input.value = value === null ? "" : String(value);
  }
  paintSummary();

  function destroy() {
    tools.removeEventListener("change", onTools);
    body.removeEventListener("input", onInput);
    body.removeEventListener("keydown", onKeydown);
    element.remove();
  }

  return { element, set, destroy };
}
