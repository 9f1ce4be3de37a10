// A WebSocket look-alike over the widget's comm: the last rung of the transport ladder.
//
// The kernel attaches to the session on the view's behalf (llmsock_widget/server/commlink.py) and
// sends the session's frames in batches; this object hands them to the client one by one, as
// a socket would. Messages (docs/widget-comm.md, section 2):
//   view -> kernel  {kind: "link", link, session, resume}   attach (resume: "<epoch>:<seq>")
//                   {kind: "send", link, frame}             one client frame (text)
//                   {kind: "unlink", link}                  detach
//   kernel -> view  {kind: "linked", link, session}
//                   {kind: "frames", link, frames: [text]}  in order
//                   {kind: "unlinked", link, code, reason}
// The token is not needed here: the comm is already the kernel's own channel.

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/**
 * The part of the WebSocket interface the client uses, over a comm link.
 * @typedef {object} CommSocket
 * @property {number} readyState
 * @property {string} protocol
 * @property {string} link
 * @property {((event: object) => void) | null} onopen
 * @property {((event: {data: string}) => void) | null} onmessage
 * @property {((event: {code: number, reason: string, wasClean: boolean}) => void) | null} onclose
 * @property {((event: object) => void) | null} onerror
 * @property {(frame: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 */

/**
 * Make a factory `(url, protocols) => socket` for the client, bound to one anywidget model.
 * `url` is only read for its `session` and `resume` query parameters.
 * @param {any} model  the anywidget model
 * @param {() => string} newId
 * @returns {(url: string) => CommSocket}
 */
export function commSocketFactory(model, newId) {
  return (url) => createCommSocket(model, newId(), url);
}

function queryOf(url) {
  const query = url.includes("?") ? url.slice(url.indexOf("?") + 1) : "";
  return new URLSearchParams(query);
}

/**
 * Open a comm link `link` to the session named in `url`; it opens when the kernel says linked.
 * @param {any} model  the anywidget model
 * @param {string} link
 * @param {string} url
 * @returns {CommSocket}
 */
export function createCommSocket(model, link, url) {
  const query = queryOf(url);
  /** @type {CommSocket} */
  const socket = {
    readyState: CONNECTING,
    protocol: "llmsock.envelope.v1",
    link,
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    send(frame) {
      if (socket.readyState !== OPEN) throw new Error("send on a comm link that is not open");
      model.send({ kind: "send", link, frame: String(frame) });
    },
    close(code = 1000, reason = "") {
      if (socket.readyState === CLOSED) return;
      model.send({ kind: "unlink", link });
      finish(code, reason);
    },
  };

  function finish(code, reason) {
    if (socket.readyState === CLOSED) return;
    socket.readyState = CLOSED;
    model.off("msg:custom", onMessage);
    socket.onclose?.({ code, reason, wasClean: code === 1000 });
  }

  function onMessage(content) {
    if (content === null || typeof content !== "object" || content.link !== link) return;
    if (content.kind === "linked" && socket.readyState === CONNECTING) {
      socket.readyState = OPEN;
      socket.onopen?.({});
    } else if (content.kind === "frames" && Array.isArray(content.frames)) {
      for (const frame of content.frames) {
        if (socket.readyState === CLOSED) return; // the client closed it while handling a frame
        if (typeof frame === "string") socket.onmessage?.({ data: frame });
      }
    } else if (content.kind === "unlinked") {
      const code = Number.isInteger(content.code) ? content.code : 1006;
      finish(code, typeof content.reason === "string" ? content.reason : "");
    }
  }

  model.on("msg:custom", onMessage);
  model.send({ kind: "link", link, session: query.get("session") ?? "", resume: query.get("resume") });
  return socket;
}
