// Invisible and text-reordering characters made visible. A right-to-left override before
// "gnp.exe" shows it as "exe.png"; zero-width characters hide text from the reader; ANSI escape
// sequences restyle terminals. Every string the widget shows goes through `reveal`, which
// replaces each such code point with a visible marker naming it, e.g. ⟨U+202E⟩. The ranges are
// the shared fixture tests/fixtures/text/invisible.json (the JS tests check they agree).

/** Inclusive [first, last] code point ranges shown as markers (TAB and LF are kept). */
export const INVISIBLE_RANGES = [
  [0x0000, 0x0008],
  [0x000b, 0x001f],
  [0x007f, 0x009f],
  [0x061c, 0x061c],
  [0x180e, 0x180e],
  [0x200b, 0x200f],
  [0x202a, 0x202e],
  [0x2060, 0x2064],
  [0x2066, 0x2069],
  [0xfeff, 0xfeff],
];

const ZWJ = "\u200d";
/** @param {number} cp */
const hex = (cp) => cp.toString(16).toUpperCase().padStart(4, "0");
const CLASS = INVISIBLE_RANGES.map(([a, b]) => (a === b ? `\\u{${hex(a)}}` : `\\u{${hex(a)}}-\\u{${hex(b)}}`)).join("");
const INVISIBLE = new RegExp(`\\r\\n|[${CLASS}]`, "gu");
// A ZWJ between two pictographs (the first maybe with VS16 or a skin tone) builds one emoji.
const EMOJI_ZWJ = /(?<=\p{Extended_Pictographic}[\u{FE0F}\u{1F3FB}-\u{1F3FF}]?)\u200D(?=\p{Extended_Pictographic})/uy;

/**
 * The visible marker for code point `cp`, e.g. ⟨U+202E⟩.
 * @param {number} cp
 * @returns {string}
 */
export function markerFor(cp) {
  return `\u27e8U+${hex(cp)}\u27e9`;
}

/**
 * The replacement for one match of INVISIBLE (a String.replace callback).
 * @param {string} match
 * @param {number} offset
 * @param {string} text
 * @returns {string}
 */
function replace(match, offset, text) {
  if (match === "\r\n") return "\n";
  if (match === ZWJ) {
    EMOJI_ZWJ.lastIndex = offset;
    if (EMOJI_ZWJ.test(text)) return ZWJ;
  }
  return markerFor(/** @type {number} */ (match.codePointAt(0)));
}

/**
 * `text` with every invisible or reordering character replaced by a visible marker.
 * @param {unknown} text  anything; null and undefined show as ""
 * @returns {string}
 */
export function reveal(text) {
  const value = String(text ?? "");
  INVISIBLE.lastIndex = 0;
  return INVISIBLE.test(value) ? value.replace(INVISIBLE, replace) : value;
}
