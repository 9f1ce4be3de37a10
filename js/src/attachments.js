// `@name` mentions as text: where a mention is being typed, which names a prompt mentions, and
// the attachments a prompt carries (docs/protocol.md, section 7.1: `options.attachments`, at
// most 8 of `{name, text}`, each text at most 8,000 characters). Pure: no DOM, no clock.
//
// A mention is `@` and a Python identifier, not glued to a word before it (so `me@example.org`
// and `@@x` are not mentions). Mentions inside code (a fenced block or an inline `span`) are
// code, not mentions: a decorator such as `@dataclass` in a pasted snippet stays text.

/** The most attachments one prompt carries. */
export const MAX_ATTACHMENTS = 8;
/** The most characters of one attachment's text. */
export const MAX_ATTACHMENT_CHARS = 8000;
/** The most distinct names one prompt asks the kernel about. */
export const MAX_ASKED = MAX_ATTACHMENTS * 2;
/** What ends a text cut to MAX_ATTACHMENT_CHARS (the model and the chip both show it). */
export const CUT_NOTE = "\n… (cut at 8,000 characters)";

const NAME = String.raw`[\p{L}_][\p{L}\p{N}_]{0,127}`; // the server takes names of at most 128 characters
// The `@` of a mention follows the start, a space or punctuation, never a word, an @ or a dot.
const BEFORE = String.raw`(?<![\p{L}\p{N}_@.])`;
const TYPING = new RegExp(`${BEFORE}@(${NAME})$`, "u");
const MENTIONS = new RegExp(`${BEFORE}@(${NAME})`, "gu");
const REST_OF_NAME = /^[\p{L}\p{N}_]*/u;
const CODE = /```[\s\S]*?(?:```|$)|`[^`\n]*`/g;

/**
 * The mention being typed at `caret`: where its `@` is, where its name ends, and the name so far.
 * Null when the caret is not right after `@` and at least one letter of a name.
 * @param {string} text
 * @param {number} caret
 * @returns {{start: number, end: number, prefix: string} | null}
 */
export function mentionAt(text, caret) {
  const match = TYPING.exec(text.slice(0, caret));
  if (match === null) return null;
  const after = REST_OF_NAME.exec(text.slice(caret));
  return { start: caret - match[0].length, end: caret + (after ? after[0].length : 0), prefix: match[1] };
}

/**
 * The distinct names `text` mentions, in the order they first appear (code left out).
 * @param {string} text
 * @returns {string[]}
 */
export function mentionedNames(text) {
  const prose = text.replace(CODE, " ");
  return [...new Set(Array.from(prose.matchAll(MENTIONS), (match) => match[1]))];
}

/**
 * `text`, cut with CUT_NOTE when it is over MAX_ATTACHMENT_CHARS; and whether it was cut.
 * @param {string} text
 * @returns {{text: string, cut: boolean}}
 */
export function fitAttachment(text) {
  if (text.length <= MAX_ATTACHMENT_CHARS) return { text, cut: false };
  return { text: text.slice(0, MAX_ATTACHMENT_CHARS - CUT_NOTE.length) + CUT_NOTE, cut: true };
}

/**
 * The attachments of a message as the wire carries them (a user message's `options`), or [].
 * Entries that are not `{name, text}` strings are dropped; at most MAX_ATTACHMENTS are kept.
 * @param {unknown} raw
 * @returns {{name: string, text: string}[]}
 */
export function attachmentsOf(raw) {
  if (!Array.isArray(raw)) return [];
  const kept = [];
  for (const item of raw) {
    if (item === null || typeof item !== "object") continue;
    const { name, text } = /** @type {{name?: unknown, text?: unknown}} */ (item);
    if (typeof name === "string" && name && typeof text === "string") kept.push({ name, text });
    if (kept.length === MAX_ATTACHMENTS) break;
  }
  return kept;
}

/**
 * A prompt's options with its attachments (none: the options unchanged).
 * @param {Record<string, unknown>} options
 * @param {{name: string, text: string}[]} [attachments]
 * @returns {Record<string, unknown>}
 */
export function withAttachments(options, attachments = []) {
  return attachments.length > 0 ? { ...options, attachments } : options;
}

/**
 * A reply to `describe` as the kernel sends it (docs/widget-comm.md, section 3).
 * @typedef {{ok: boolean, text?: string, message?: string} | null} Description
 */

/**
 * The attachments of a prompt: each distinct name it mentions that the kernel knows, described.
 *
 * `describe(name)` asks the kernel; it resolves null when the kernel did not answer in time.
 * Returns the attachments (at most MAX_ATTACHMENTS, each text fitted) and the notes to show the
 * user: texts that were cut, names past the limit, names the kernel did not answer about. A name
 * the kernel does not know is ordinary text (`@everyone`) and needs no note.
 * @param {string} text
 * @param {(name: string) => Promise<Description>} describe
 * @returns {Promise<{attachments: {name: string, text: string}[], notes: string[]}>}
 */
export async function buildAttachments(text, describe) {
  const names = mentionedNames(text);
  const asked = names.slice(0, MAX_ASKED);
  const replies = await Promise.all(asked.map((name) => describe(name)));
  /** @type {{name: string, text: string}[]} */
  const attachments = [];
  /** @type {string[]} */
  const cut = [];
  const over = names.slice(MAX_ASKED);
  /** @type {string[]} */
  const silent = [];
  asked.forEach((name, i) => {
    const reply = replies[i];
    if (reply === null) silent.push(name);
    if (reply === null || reply.ok !== true || typeof reply.text !== "string") return;
    if (attachments.length === MAX_ATTACHMENTS) {
      over.push(name);
      return;
    }
    const fitted = fitAttachment(reply.text);
    if (fitted.cut) cut.push(name);
    attachments.push({ name, text: fitted.text });
  });
  const notes = [];
  const at = (/** @type {string[]} */ list) => list.map((name) => `@${name}`).join(", ");
  if (cut.length > 0) notes.push(`${at(cut)}: cut to ${MAX_ATTACHMENT_CHARS.toLocaleString("en-US")} characters.`);
  if (over.length > 0) notes.push(`At most ${MAX_ATTACHMENTS} mentions are attached; ${at(over)} went as text.`);
  if (silent.length > 0) notes.push(`The kernel did not answer about ${at(silent)} (busy?); sent as text.`);
  return { attachments, notes };
}
