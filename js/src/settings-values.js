// The chat's model settings as values: reading them from the widget's traits, checking what a
// user typed, the options a prompt carries, and what a view takes from its session's snapshot.
// Pure; the panel that edits them is settings.js. Each rule is the wire's (docs/protocol.md,
// section 7.1): a prompt only ever carries values the server takes.

export const TIMEOUT_MAX = 3600;
export const RETRIES_MAX = 10;
export const TEMPERATURE_MAX = 2;
export const MAX_TOKENS_MAX = 1_000_000;
export const SYSTEM_MAX = 32_768;
export const MODEL_NAME_MAX = 200;

/**
 * The settings a view sends with each prompt; null means "the model's setting".
 * @typedef {object} ModelSettings
 * @property {boolean | string[] | null} tools  true: every registered tool, false: none, a list: those
 * @property {number | null} timeout  seconds of silence the model waits for its provider
 * @property {number | null} retries  retries of a failed request
 * @property {string | null} [system]  the system prompt
 * @property {number | null} [temperature]  0 to 2
 * @property {number | null} [maxTokens]  the most tokens an answer may have
 * @property {string | null} [model]  a model set up in the kernel (null: the kernel's default)
 */

/** @typedef {{ok: true, value: number | null} | {ok: false, error: string}} Parsed */

/** @type {ModelSettings} */
export const DEFAULT_SETTINGS = Object.freeze({
  tools: null,
  timeout: null,
  retries: null,
  system: null,
  temperature: null,
  maxTokens: null,
  model: null,
});

/** The trait that holds each setting (the Python spelling). */
export const TRAIT_OF = Object.freeze({
  tools: "tools",
  timeout: "timeout",
  retries: "retries",
  system: "system",
  temperature: "temperature",
  maxTokens: "max_tokens",
  model: "model",
});

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
 * A `temperature` trait value as the view uses it: a number from 0 to TEMPERATURE_MAX, or null.
 * @param {unknown} value
 * @returns {number | null}
 */
export function normalizeTemperature(value) {
  return typeof value === "number" && value >= 0 && value <= TEMPERATURE_MAX ? value : null;
}

/**
 * A `max_tokens` trait value as the view uses it: an integer from 1 to MAX_TOKENS_MAX, or null.
 * @param {unknown} value
 * @returns {number | null}
 */
export function normalizeMaxTokens(value) {
  return Number.isInteger(value) &&
    /** @type {number} */ (value) >= 1 &&
    /** @type {number} */ (value) <= MAX_TOKENS_MAX
    ? /** @type {number} */ (value)
    : null;
}

/**
 * A `system` trait value as the view uses it: a non-empty string of at most SYSTEM_MAX, or null.
 * @param {unknown} value
 * @returns {string | null}
 */
export function normalizeSystem(value) {
  return typeof value === "string" && value.trim() !== "" && value.length <= SYSTEM_MAX ? value : null;
}

/**
 * A `model` trait value as the view uses it: a name of 1 to MODEL_NAME_MAX characters, or null.
 * @param {unknown} value
 * @returns {string | null}
 */
export function normalizeModel(value) {
  return typeof value === "string" && value.length >= 1 && value.length <= MODEL_NAME_MAX ? value : null;
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
    system: normalizeSystem(get("system")),
    temperature: normalizeTemperature(get("temperature")),
    maxTokens: normalizeMaxTokens(get("max_tokens")),
    model: normalizeModel(get("model")),
  };
}

/**
 * The options a prompt carries for these settings: only those that are set.
 * @param {ModelSettings} settings
 * @returns {Record<string, boolean | string[] | number | string>}
 */
export function promptOptions(settings) {
  /** @type {Record<string, boolean | string[] | number | string>} */
  const options = {};
  const tools = normalizeTools(settings.tools);
  const timeout = normalizeTimeout(settings.timeout);
  const retries = normalizeRetries(settings.retries);
  if (tools !== null) options.tools = tools;
  if (timeout !== null) options.timeout = timeout;
  if (retries !== null) options.retries = retries;
  const system = normalizeSystem(settings.system);
  const temperature = normalizeTemperature(settings.temperature);
  const maxTokens = normalizeMaxTokens(settings.maxTokens);
  const model = normalizeModel(settings.model);
  if (system !== null) options.system = system;
  if (temperature !== null) options.temperature = temperature;
  if (maxTokens !== null) options.maxTokens = maxTokens;
  if (model !== null) options.model = model;
  return options;
}

/**
 * The settings a session kept (its snapshot's, from get_history) that a view whose own are
 * unset takes on: each set there and unset here. Unknown or invalid values are ignored.
 * @param {ModelSettings} mine
 * @param {unknown} kept  the history's `settings` object
 * @returns {Partial<ModelSettings>}
 */
export function adoptable(mine, kept) {
  if (kept === null || typeof kept !== "object" || Array.isArray(kept)) return {};
  const saved = /** @type {Record<string, unknown>} */ (kept);
  const values = {
    system: normalizeSystem(saved.system),
    temperature: normalizeTemperature(saved.temperature),
    maxTokens: normalizeMaxTokens(saved.maxTokens),
    model: normalizeModel(saved.model),
  };
  /** @type {Partial<ModelSettings>} */
  const out = {};
  for (const [name, value] of Object.entries(values)) {
    if (value !== null && (mine[/** @type {keyof ModelSettings} */ (name)] ?? null) === null) {
      /** @type {any} */ (out)[name] = value;
    }
  }
  return out;
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
 * Parse what the user typed as a temperature: "" is the model's setting.
 * @param {string} text
 * @returns {Parsed}
 */
export function parseTemperature(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return { ok: true, value: null };
  const value = DECIMAL.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (value >= 0 && value <= TEMPERATURE_MAX) return { ok: true, value };
  return { ok: false, error: `a number from 0 to ${TEMPERATURE_MAX}` };
}

/**
 * Parse what the user typed as the most tokens of an answer: "" is the model's setting.
 * @param {string} text
 * @returns {Parsed}
 */
export function parseMaxTokens(text) {
  const trimmed = String(text).trim().replaceAll(",", "").replaceAll("_", "");
  if (trimmed === "") return { ok: true, value: null };
  const value = WHOLE.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (value >= 1 && value <= MAX_TOKENS_MAX) return { ok: true, value };
  return { ok: false, error: `a whole number from 1 to ${MAX_TOKENS_MAX.toLocaleString("en-US")}` };
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
  if ((settings.system ?? null) !== null) parts.push("system prompt");
  if ((settings.temperature ?? null) !== null) parts.push(`temperature ${settings.temperature}`);
  if ((settings.maxTokens ?? null) !== null) parts.push(`max ${settings.maxTokens} tokens`);
  return parts.length ? `settings · ${parts.join(" · ")}` : "settings";
}
