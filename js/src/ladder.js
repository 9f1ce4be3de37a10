// The transport ladder: which ways to reach the kernel's server a view tries, in order, and why
// it skips the others (docs/deployment.md). Pure: the page is passed in.
//
//   1. proxy  — same origin, through jupyter-server-proxy: `{base_url}proxy/{port}/ws`
//               (or the LLMSOCK_PROXY_URL template), ws: or wss: like the page;
//   2. direct — `ws://127.0.0.1:{port}/ws`, when the page itself comes from this machine
//               (a loopback host, or a VS Code webview, whose kernel is local);
//   3. comm   — the widget's own comm channel, always there.
// A forced transport (LLMSOCK_TRANSPORT) leaves only that rung. Each rung has the kernel's
// connect timeout (LLMSOCK_CONNECT_TIMEOUT, sent as `connectTimeoutMs`) to say ready; the client's
// own default (4 s) when the kernel sends none.

export const TRANSPORTS = ["proxy", "direct", "comm"];
export const DEFAULT_PROXY_TEMPLATE = "{base_url}proxy/{port}/ws";

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i;
const LOCAL_SCHEMES = new Set(["vscode-webview:", "vscode-file:"]);

/**
 * Where the page is: what the ladder reads of `window.location` (a URL works too).
 * @typedef {{protocol: string, hostname: string, host: string, href: string}} PageLocation
 */

/**
 * One way to reach the server, in the order tried.
 * @typedef {object} Candidate
 * @property {string} transport  "proxy" | "direct" | "comm" | "websocket"
 * @property {string} url
 * @property {string} [reason]  why this rung is offered, for the status line
 * @property {number} [probeMs]  how long this rung has to say ready (the client's default if absent)
 * @property {(url: string, protocols: string[]) => any} [create]  a socket factory instead of `WebSocket`
 */

/**
 * Read the Jupyter page config (`<script id="jupyter-config-data">`), or null.
 * @param {Document | null | undefined} document
 * @returns {Record<string, unknown> | null}
 */
export function readPageConfig(document) {
  const node = document?.getElementById?.("jupyter-config-data");
  if (!node) return null;
  try {
    const config = JSON.parse(node.textContent || "{}");
    return config !== null && typeof config === "object" ? config : null;
  } catch {
    return null;
  }
}

/**
 * Whether a page at `location` runs on the kernel's machine (so 127.0.0.1 is the kernel's).
 * @param {PageLocation} location
 * @returns {boolean}
 */
export function pageIsLocal(location) {
  return LOCAL_SCHEMES.has(location.protocol) || LOOPBACK_HOST.test(location.hostname);
}

/**
 * Fill a proxy URL template and make it an absolute ws:/wss: URL against the page.
 * @param {string} template  with {port}, {base_url} and {host} placeholders
 * @param {{port: number, baseUrl: string | null, location: PageLocation}} where
 * @returns {string}
 */
export function proxyUrl(template, { port, baseUrl, location }) {
  const base = baseUrl || "/";
  const filled = template
    .replaceAll("{port}", String(port))
    .replaceAll("{base_url}", base.endsWith("/") ? base : `${base}/`)
    .replaceAll("{host}", location.host);
  const url = new URL(filled, location.href);
  if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol === "http:") url.protocol = "ws:";
  return url.href;
}

/**
 * Return the kernel's time for a rung to answer, in milliseconds, or null when it sent none
 * (or not a positive number of milliseconds: a value the client cannot use).
 * @param {unknown} value  the connect message's `connectTimeoutMs`
 * @returns {number | null}
 */
export function connectTimeout(value) {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : null;
}

/**
 * Build the ladder for one connect message.
 *
 * Args: connect ({url, port, transport, proxyUrl, connectTimeoutMs} from the kernel), location (the page's),
 *   pageConfig (readPageConfig's result), createComm ((url, protocols) => socket).
 * Returns: {candidates: [{transport, url, reason, create?, probeMs?}], skipped: [text]}.
 *
 * @param {object} args
 * @param {{url: string, port: number, transport?: string, proxyUrl?: string | null,
 *     connectTimeoutMs?: unknown}} args.connect
 * @param {PageLocation} args.location
 * @param {{baseUrl?: unknown} | null} args.pageConfig
 * @param {(url: string, protocols: string[]) => any} args.createComm
 * @returns {{candidates: Candidate[], skipped: string[]}}
 */
export function buildLadder({ connect, location, pageConfig, createComm }) {
  const forced = TRANSPORTS.includes(connect.transport ?? "") ? connect.transport : "auto";
  /** @param {string} name */
  const wanted = (name) => forced === "auto" || forced === name;
  /** @type {Candidate[]} */
  const candidates = [];
  /** @type {string[]} */
  const skipped = [];

  if (wanted("proxy")) {
    const template = typeof connect.proxyUrl === "string" && connect.proxyUrl ? connect.proxyUrl : null;
    const baseUrl = typeof pageConfig?.baseUrl === "string" ? pageConfig.baseUrl : null;
    if (template === null && baseUrl === null && forced !== "proxy") {
      skipped.push("proxy: not a Jupyter page (no base URL)");
    } else if (!/^(https?|vscode-webview|vscode-file):$/.test(location.protocol) && template === null) {
      skipped.push(`proxy: the page is not served over HTTP (${location.protocol})`);
    } else {
      try {
        const url = proxyUrl(template ?? DEFAULT_PROXY_TEMPLATE, { port: connect.port, baseUrl, location });
        const how = template === null ? "jupyter-server-proxy" : "LLMSOCK_PROXY_URL";
        candidates.push({ transport: "proxy", url, reason: `proxy (${how})` });
      } catch {
        skipped.push("proxy: the URL template does not make a URL");
      }
    }
  }
  if (wanted("direct")) {
    if (pageIsLocal(location) || forced === "direct") {
      const where = LOCAL_SCHEMES.has(location.protocol) ? "VS Code webview" : "the page is on this machine";
      candidates.push({ transport: "direct", url: connect.url, reason: `direct (${where})` });
    } else {
      skipped.push(`direct: the page is served from ${location.hostname || location.protocol}, not this machine`);
    }
  }
  if (wanted("comm")) {
    candidates.push({
      transport: "comm",
      url: "comm:",
      reason: forced === "comm" ? "comm (forced)" : "comm (the widget's channel)",
      create: createComm,
    });
  }
  const probeMs = connectTimeout(connect.connectTimeoutMs);
  if (probeMs === null) return { candidates, skipped };
  return { candidates: candidates.map((candidate) => ({ ...candidate, probeMs })), skipped };
}
