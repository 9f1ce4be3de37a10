// Break opportunities inside long unbroken runs of text. A browser lays out a run of 256 KiB
// without spaces very slowly when it may break it anywhere (CSS `overflow-wrap: anywhere`
// froze the tab for minutes), so the widget inserts a <wbr> every RUN characters of any run
// longer than that instead, after sanitizing: the text, and what a copy gives, are unchanged.

/** The longest run of non-space characters left without a break opportunity. */
export const RUN = 64;

const LONG_RUN = new RegExp(`\\S{${RUN + 1}}`, "u");
const CHUNK = new RegExp(`\\S{${RUN}}(?=\\S)`, "gu");
const SHOW_TEXT = 4; // NodeFilter.SHOW_TEXT

/**
 * `text` cut into RUN-long pieces with a <wbr> between them.
 * @param {Document} document
 * @param {string} text
 * @returns {(string | HTMLElement)[]}
 */
function pieces(document, text) {
  /** @type {(string | HTMLElement)[]} */
  const parts = [];
  let start = 0;
  CHUNK.lastIndex = 0;
  while (CHUNK.exec(text) !== null) {
    parts.push(text.slice(start, CHUNK.lastIndex), document.createElement("wbr"));
    start = CHUNK.lastIndex;
  }
  parts.push(text.slice(start));
  return parts;
}

/**
 * Insert a <wbr> every RUN characters into each long unbroken run of text under `root`.
 * @param {Element} root
 * @returns {void}
 */
export function breakLongRuns(root) {
  const document = root.ownerDocument;
  const walker = document.createTreeWalker(root, SHOW_TEXT);
  /** @type {Text[]} */
  const long = [];
  for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
    const text = /** @type {Text} */ (node); // the walker shows text nodes only
    if (text.data.length > RUN && LONG_RUN.test(text.data)) long.push(text);
  }
  for (const node of long) node.replaceWith(...pieces(document, node.data));
}
