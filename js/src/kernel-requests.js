// The view's questions to the kernel, over the widget's comm (docs/widget-comm.md, section 3):
// the names for `@` completion, the summary of one name, and "explain the last error". They go
// over the comm whatever transport carries the chat (WebSocket, proxy or the comm itself): the
// kernel answers from its own namespace, never through the server.
//
// Each request carries an id this view made; the kernel sends its answer to every view of the
// widget with that id, so a view takes only the answers to its own requests. A request the
// kernel does not answer in time resolves anyway (a kernel without subshells answers only once
// the running cell is done): completion shows nothing, a mention goes as text, and Explain says
// the kernel is busy.

/** Milliseconds a completion or a description may take. */
export const REQUEST_TIMEOUT_MS = 5000;
/** Milliseconds the kernel has to take an "explain" (reading the traceback's locals may take a while). */
export const EXPLAIN_TIMEOUT_MS = 10000;
/** What Explain says when the kernel did not answer in time. */
export const EXPLAIN_BUSY =
  "The kernel has not answered yet: it may be busy with a cell. The answer appears here once it does.";

/**
 * @typedef {{name: string, kind: string}} Completion
 * @typedef {{ok: boolean, text?: string, message?: string} | null} Description
 * @typedef {{
 *   complete: (prefix: string) => Promise<Completion[]>,
 *   describe: (name: string) => Promise<Description>,
 *   explain: () => Promise<{ok: boolean, message: string}>,
 *   destroy: () => void,
 * }} KernelRequests
 */

/**
 * Ask the kernel over `model`'s comm; answers are matched to requests by id.
 * @param {object} options
 * @param {{send: (content: object) => void, on: (name: string, fn: (content: any) => void) => void,
 *   off: (name: string, fn: (content: any) => void) => void}} options.model  the anywidget model
 * @param {() => string} options.newId
 * @param {{setTimeout: (fn: () => void, ms: number) => unknown, clearTimeout: (handle: any) => void}} options.timing
 * @returns {KernelRequests}
 */
export function createKernelRequests({ model, newId, timing }) {
  /** @type {Map<string, {type: string, resolve: (value: any) => void, timer: unknown}>} */
  const pending = new Map();

  /**
   * @param {string} id
   * @param {any} value
   */
  function finish(id, value) {
    const waiting = pending.get(id);
    if (waiting === undefined) return;
    pending.delete(id);
    timing.clearTimeout(waiting.timer);
    waiting.resolve(value);
  }

  /** @param {any} content */
  const onMessage = (content) => {
    if (content === null || typeof content !== "object" || typeof content.id !== "string") return;
    if (pending.get(content.id)?.type === content.type) finish(content.id, content);
  };

  /**
   * Send `message` with a new id; resolve with the kernel's answer of type `type`, or null.
   * @param {Record<string, unknown>} message
   * @param {string} type
   * @param {number} ms
   * @returns {Promise<any>}
   */
  function request(message, type, ms) {
    const id = newId();
    return new Promise((resolve) => {
      const timer = timing.setTimeout(() => finish(id, null), ms);
      pending.set(id, { type, resolve, timer });
      model.send({ ...message, id });
    });
  }

  model.on("msg:custom", onMessage);

  return {
    async complete(prefix) {
      const reply = await request({ type: "complete", prefix }, "completions", REQUEST_TIMEOUT_MS);
      if (!Array.isArray(reply?.names)) return [];
      return reply.names
        .filter((entry) => typeof entry?.name === "string" && entry.name !== "")
        .map((entry) => ({ name: entry.name, kind: typeof entry.kind === "string" ? entry.kind : "" }));
    },
    async describe(name) {
      const reply = await request({ type: "describe", name }, "description", REQUEST_TIMEOUT_MS);
      if (reply === null) return null;
      if (reply.ok === true && typeof reply.text === "string") return { ok: true, text: reply.text };
      return { ok: false, message: typeof reply.message === "string" ? reply.message : "" };
    },
    async explain() {
      const reply = await request({ type: "explain" }, "explained", EXPLAIN_TIMEOUT_MS);
      if (reply === null) return { ok: false, message: EXPLAIN_BUSY };
      return { ok: reply.ok === true, message: typeof reply.message === "string" ? reply.message : "" };
    },
    destroy() {
      model.off("msg:custom", onMessage);
      for (const id of [...pending.keys()]) finish(id, null);
    },
  };
}
