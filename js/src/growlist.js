// The token and text helpers incremental.js needs to grow a Markdown list item by item.
//
// A root-level list is one block however long it gets, but its items, once the next item has
// started on a complete line, no longer change, with one exception: whether the list is tight or
// loose (a blank line between items, or between two blocks of an item, makes every item's
// paragraphs <p>) is a property of the whole list. The tail of a growing list is therefore parsed
// after a one-line "probe" item: `- x` (the marker of the last item shown), followed by a blank
// line when the items shown make the list loose. The probe's own paragraph then says whether the
// whole list is loose (markdown-it hides a tight list's paragraphs), and the probe's <li> is
// dropped from what is rendered.

/** The start of a list item's first line: indentation, the marker, and the spaces after it. */
const ITEM_START = /^ {0,3}(?:[-+*]|\d{1,9}[.)])(?: {1,4}(?=\S))?/;

/**
 * Whether `token` opens a root-level list.
 * @param {any} token
 * @returns {boolean}
 */
export function opensRootList(token) {
  return token?.level === 0 && (token.type === "bullet_list_open" || token.type === "ordered_list_open");
}

/**
 * The indices of the list's own items in `block` (a list's tokens, open to close).
 * @param {any[]} block
 * @returns {number[]}
 */
export function rootItems(block) {
  const items = [];
  for (let i = 0; i < block.length; i += 1) {
    if (block[i].type === "list_item_open" && block[i].level === 1) items.push(i);
  }
  return items;
}

/**
 * The tokens (as markdown.js counts them) of items `from` to `from + count` of `block`.
 * @param {any[]} block
 * @param {number[]} items  rootItems(block)
 * @param {number} from
 * @param {number} count
 * @returns {number}
 */
export function itemTokens(block, items, from, count) {
  const end = from + count < items.length ? items[from + count] : block.length - 1;
  let total = 0;
  for (let i = items[from] ?? end; i < end; i += 1) total += 1 + (block[i].children?.length ?? 0);
  return total;
}

/**
 * The probe item's text for a list whose last item shown starts with `line`, or null when that
 * line does not start an item the probe can copy.
 * @param {string} line
 * @param {boolean} loose
 * @returns {string | null}
 */
export function probeText(line, loose) {
  const start = ITEM_START.exec(line)?.[0];
  if (start === undefined) return null;
  return `${start.endsWith(" ") ? start : `${start} `}x\n${loose ? "\n" : ""}`;
}

/**
 * Whether the list in `block` is loose, read from its first paragraph directly in an item
 * (markdown-it hides those of a tight list); null when its items hold no paragraph.
 * @param {any[]} block
 * @returns {boolean | null}
 */
export function paragraphLoose(block) {
  const paragraph = block.find((token) => token.type === "paragraph_open" && token.level === 2);
  return paragraph ? !paragraph.hidden : null;
}

/**
 * Whether the list parsed after a probe is loose; null when the probe did not parse as the
 * list's first item on its own line, followed by the next item at `line`.
 * @param {any[]} block
 * @param {number[]} items
 * @param {number} line  the line the first item after the probe starts on
 * @returns {boolean | null}
 */
export function probeLoose(block, items, line) {
  const paragraph = block[items[0] + 1];
  if (items.length < 2 || block[items[1]].map[0] !== line || paragraph?.type !== "paragraph_open") return null;
  return !paragraph.hidden;
}

/**
 * The items of a rendered list element, each with the line break after it.
 * @param {Element} list
 * @returns {ChildNode[][]}
 */
export function itemNodes(list) {
  return [...list.children].map((item) => (item.nextSibling ? [item, item.nextSibling] : [item]));
}
