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

/**
 * @typedef {import("./incremental.js").StreamState} StreamState
 * @typedef {import("./incremental.js").Growing} Growing
 * @typedef {import("./incremental.js").Grow} Grow
 */

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
 * The tokens of the first root-level block of `tokens` (a table or a list), open to close.
 * @param {any[]} tokens
 * @returns {any[]}
 */
export function firstBlock(tokens) {
  return tokens.slice(0, tokens.findIndex((token) => token.level === 0 && token.nesting === -1) + 1);
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

/**
 * The growing list the tail starts with: which of its items are complete, and whether it is
 * loose. Starts a list's state when the tail's list is new.
 * @param {StreamState} state
 * @param {any[]} rest  the tail's tokens, starting with the list's
 * @param {string} tail
 * @param {number[]} starts
 * @param {(offset: number) => number} at  a tail offset's place in the source
 * @param {(text: string) => any[]} parse  markdown-it's parse of a text on its own
 * @returns {Grow}
 */
export function growingList(state, rest, tail, starts, at, parse) {
  const line = rest[0].map[0];
  if (state.growing?.kind !== "list") {
    const fresh = { kind: /** @type {const} */ ("list"), head: "", end: at(starts[line]), node: null };
    state.growing = { ...fresh, rows: 0, tokens: 0, temporary: [], loose: false, rendered: null };
  }
  const list = state.growing;
  const block = firstBlock(rest);
  const items = rootItems(block);
  const skip = list.rows > 0 ? 1 : 0;
  const loose = skip ? !block[items[0] + 1].hidden : paragraphLoose(block);
  // Items before the last one that starts on a complete line are complete.
  let keep = 0;
  for (let i = items.length - 1; i > skip; i -= 1) {
    if (block[items[i]].map[0] + 1 < starts.length) {
      keep = i - skip;
      break;
    }
  }
  if (keep === 0) return { tokens: block, keep, end: list.end, loose, keptLoose: list.loose, head: list.head };
  const lineOf = (/** @type {number} */ item) => tail.slice(starts[item], starts[item + 1] - 1);
  const next = block[items[skip + keep]].map[0];
  let keptLoose = list.loose;
  if (loose === false) keptLoose = false;
  else if (!list.loose) {
    // Loose as a whole: do the items kept now make it so, or only those after them?
    const first = block[items[skip]].map[0];
    const probe = list.rows > 0 ? list.head.replace(/\n+$/, "\n") : probeText(lineOf(first), false);
    const kept = tail.slice(starts[first], starts[next + 1]);
    const probed = probe === null ? [] : parse(probe + kept);
    const block2 = probed[0] && opensRootList(probed[0]) ? probed : [];
    keptLoose = probeLoose(block2, rootItems(block2), 1);
  }
  const head = keptLoose === null ? null : probeText(lineOf(block[items[skip + keep - 1]].map[0]), keptLoose);
  return {
    tokens: block,
    keep,
    end: at(starts[next]),
    loose,
    keptLoose: head === null ? null : keptLoose,
    head: head ?? "",
  };
}

/**
 * Show `list`'s items from `fragment` (`grow.tokens` rendered: the items after the probe, once
 * items are shown): the first `grow.keep` for good, the others until the next frame. A list not
 * shown yet is appended to `element`.
 * @param {HTMLElement} element
 * @param {Growing} list
 * @param {Grow} grow
 * @param {DocumentFragment} fragment
 */
export function growList(element, list, grow, fragment) {
  for (const node of list.temporary) node.remove();
  const fresh = /** @type {HTMLElement} */ (fragment.firstChild);
  const nodes = itemNodes(fresh);
  const items = rootItems(grow.tokens);
  const skip = list.rows > 0 ? 1 : 0;
  if (skip) nodes.shift();
  if (list.node === null) {
    list.node = fresh;
    element.append(fragment);
  } else if (!skip) {
    // Nothing kept yet: the list itself may have changed (an ordered list's first number).
    list.node.replaceWith(fresh);
    list.node = fresh;
  } else {
    list.node.append(...nodes.flat());
  }
  list.temporary = nodes.slice(grow.keep).flat();
  const kept = grow.tokens.slice(items[skip], items[skip + grow.keep]);
  if (list.rendered === null && paragraphLoose(kept) !== null) list.rendered = grow.loose;
}
