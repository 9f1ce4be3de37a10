// The token and DOM helpers incremental.js needs to grow a Markdown table row by row: a row on
// a complete line stays a row whatever follows, so its <tr> is kept, and only the rows after it
// are parsed again (after the table's header and delimiter lines).

/** @typedef {import("./incremental.js").Growing} Growing */

/**
 * The tokens of a table's first `rows` body rows.
 * @param {any[]} tokens  the table's tokens, table_open to table_close
 * @param {number} rows
 * @returns {number}
 */
export function rowTokens(tokens, rows) {
  let count = 0;
  let seen = 0;
  let inBody = false;
  for (const token of tokens) {
    if (seen === rows) break;
    if (token.type === "tbody_open") inBody = true;
    else if (inBody) {
      count += 1 + (token.children?.length ?? 0);
      if (token.type === "tr_close") seen += 1;
    }
  }
  return count;
}

/**
 * The body rows in a table's tokens.
 * @param {any[]} tokens
 * @returns {number}
 */
export function bodyRows(tokens) {
  return tokens.filter((token) => token.type === "tr_open").length - 1;
}

/**
 * Each row of a table body with the line break after it.
 * @param {HTMLTableSectionElement} body
 * @returns {ChildNode[][]}
 */
function rowNodes(body) {
  return [...body.rows].map((row) => (row.nextSibling ? [row, row.nextSibling] : [row]));
}

/**
 * Show `table`'s rows from `fragment` (a table with the rows not shown yet, rendered): the first
 * `keep` for good, the others until the next frame. A table not shown yet is appended to `element`.
 * @param {HTMLElement} element
 * @param {Growing} table
 * @param {DocumentFragment} fragment
 * @param {number} keep
 */
export function growTable(element, table, fragment, keep) {
  for (const node of table.temporary) node.remove();
  const fresh = /** @type {HTMLTableElement} */ (fragment.firstChild);
  const body = fresh.tBodies[0];
  const rows = body ? rowNodes(body) : [];
  const shown = /** @type {HTMLTableElement | null} */ (table.node);
  if (shown === null) {
    table.node = fresh;
    element.append(fragment);
  } else if (body && shown.tBodies.length === 0) {
    shown.append(body, ...(body.nextSibling ? [body.nextSibling] : []));
  } else if (body) {
    shown.tBodies[0].append(...rows.flat());
  }
  if (keep === 0 && body && table.rows === 0) {
    table.temporary = body.nextSibling ? [body, body.nextSibling] : [body];
  } else {
    table.temporary = rows.slice(keep).flat();
  }
}
