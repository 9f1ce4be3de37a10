// The llmsock-notebook plugin (js/labextension/) is reached with DOM events that bubble from a
// view's element to `document`, where the plugin listens. It answers by filling in the event's
// detail and acknowledges with preventDefault(); where no plugin listens (VS Code, Colab, a page
// without it) nobody does, and the view goes on without it.

/**
 * Dispatch `type` with `detail` from `el`; return whether the plugin acknowledged it.
 * @param {Element} el
 * @param {string} type
 * @param {object} detail  filled in by the plugin, synchronously
 * @returns {boolean}
 */
export function askPlugin(el, type, detail) {
  const win = /** @type {Window & typeof globalThis} */ (el.ownerDocument.defaultView);
  const event = new win.CustomEvent(type, { bubbles: true, composed: true, cancelable: true, detail });
  return !el.dispatchEvent(event);
}
