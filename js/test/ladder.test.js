import assert from "node:assert/strict";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import { buildLadder, DEFAULT_PROXY_TEMPLATE, pageIsLocal, proxyUrl, readPageConfig } from "../src/ladder.js";
import { pageLocation } from "./helpers.js";

const CONNECT = { url: "ws://127.0.0.1:7000/ws", port: 7000, transport: "auto", proxyUrl: null };
const createComm = () => ({});

function build(href, { pageConfig = { baseUrl: "/" }, ...connect } = {}) {
  return buildLadder({ connect: { ...CONNECT, ...connect }, location: pageLocation(href), pageConfig, createComm });
}

const names = (ladder) => ladder.candidates.map((c) => c.transport);

test("proxy URL from the page config's baseUrl: '/' and a hub user's '/user/ann/'", () => {
  const root = build("http://localhost:8888/lab/tree/a.ipynb");
  assert.deepEqual(root.candidates[0], {
    transport: "proxy",
    url: "ws://localhost:8888/proxy/7000/ws",
    reason: "proxy (jupyter-server-proxy)",
  });
  const hub = build("http://hub.example.org/user/ann/lab", { pageConfig: { baseUrl: "/user/ann/" } });
  assert.equal(hub.candidates[0].url, "ws://hub.example.org/user/ann/proxy/7000/ws");
  // A base URL without its trailing slash is the same place.
  const bare = build("http://hub.example.org/user/ann/lab", { pageConfig: { baseUrl: "/user/ann" } });
  assert.equal(bare.candidates[0].url, "ws://hub.example.org/user/ann/proxy/7000/ws");
});

test("an https page gets a wss: proxy URL", () => {
  const ladder = build("https://hub.example.org/user/ann/lab", { pageConfig: { baseUrl: "/user/ann/" } });
  assert.equal(ladder.candidates[0].url, "wss://hub.example.org/user/ann/proxy/7000/ws");
  assert.equal(
    proxyUrl(DEFAULT_PROXY_TEMPLATE, { port: 1, baseUrl: "/", location: pageLocation("https://h:8443/lab") }),
    "wss://h:8443/proxy/1/ws",
  );
});

test("an LLMSOCK_PROXY_URL-style template fills {port}, {base_url} and {host}", () => {
  const relative = build("https://hub.example.org/user/ann/lab", {
    pageConfig: { baseUrl: "/user/ann/" },
    proxyUrl: "{base_url}llmsock/{port}/socket",
  });
  assert.deepEqual(relative.candidates[0], {
    transport: "proxy",
    url: "wss://hub.example.org/user/ann/llmsock/7000/socket",
    reason: "proxy (LLMSOCK_PROXY_URL)",
  });
  const absolute = build("http://hub.example.org/lab", { proxyUrl: "wss://gw.example.org/{port}/ws" });
  assert.equal(absolute.candidates[0].url, "wss://gw.example.org/7000/ws");
  const host = build("http://hub.example.org:8000/lab", { proxyUrl: "http://{host}{base_url}p/{port}" });
  assert.equal(host.candidates[0].url, "ws://hub.example.org:8000/p/7000");
  // A template works even on a page without a Jupyter config.
  const noConfig = build("http://hub.example.org/lab", { pageConfig: null, proxyUrl: "/x/{port}/ws" });
  assert.equal(noConfig.candidates[0].url, "ws://hub.example.org/x/7000/ws");
});

test("a page from another machine skips direct, with the reason", () => {
  const ladder = build("https://hub.example.org/user/ann/lab", { pageConfig: { baseUrl: "/user/ann/" } });
  assert.deepEqual(names(ladder), ["proxy", "comm"]);
  assert.deepEqual(ladder.skipped, ["direct: the page is served from hub.example.org, not this machine"]);
  assert.equal(pageIsLocal(pageLocation("http://10.0.0.5:8888/lab")), false);
  assert.equal(pageIsLocal(pageLocation("http://localhost.example.org/lab")), false);
});

test("loopback hosts and VS Code webviews allow direct", () => {
  for (const href of [
    "http://localhost:8888/lab",
    "http://127.0.0.1:8888/lab",
    "http://[::1]:8888/lab",
    "http://127.1.2.3/",
  ]) {
    assert.equal(pageIsLocal(pageLocation(href)), true, href);
    const ladder = build(href);
    assert.deepEqual(names(ladder), ["proxy", "direct", "comm"], href);
    assert.deepEqual(ladder.candidates[1], {
      transport: "direct",
      url: "ws://127.0.0.1:7000/ws",
      reason: "direct (the page is on this machine)",
    });
    assert.deepEqual(ladder.skipped, []);
  }
  const webview = {
    protocol: "vscode-webview:",
    hostname: "0a1b2c3d",
    host: "0a1b2c3d",
    href: "vscode-webview://0a1b2c3d/index.html",
  };
  assert.equal(pageIsLocal(webview), true);
  const ladder = buildLadder({ connect: CONNECT, location: webview, pageConfig: null, createComm });
  assert.deepEqual(names(ladder), ["direct", "comm"]);
  assert.equal(ladder.candidates[0].reason, "direct (VS Code webview)");
  assert.deepEqual(ladder.skipped, ["proxy: not a Jupyter page (no base URL)"]);
});

test("without a page config (and no template) the proxy is skipped with a reason", () => {
  const ladder = build("http://localhost:8888/", { pageConfig: null });
  assert.deepEqual(names(ladder), ["direct", "comm"]);
  assert.deepEqual(ladder.skipped, ["proxy: not a Jupyter page (no base URL)"]);
  const remote = build("https://colab.example.com/", { pageConfig: null });
  assert.deepEqual(names(remote), ["comm"]);
  assert.equal(remote.skipped.length, 2);
});

test("a forced transport leaves exactly that rung", () => {
  const href = "http://localhost:8888/lab";
  for (const transport of ["proxy", "direct", "comm"]) {
    const ladder = build(href, { transport });
    assert.deepEqual(names(ladder), [transport], transport);
    assert.deepEqual(ladder.skipped, [], transport);
  }
  assert.equal(build(href, { transport: "comm" }).candidates[0].reason, "comm (forced)");
  // Forced even where auto would skip it: direct from a remote page, proxy without a config.
  assert.deepEqual(names(build("https://hub.example.org/lab", { transport: "direct" })), ["direct"]);
  const proxy = build("https://hub.example.org/lab", { transport: "proxy", pageConfig: null });
  assert.deepEqual(
    proxy.candidates.map((c) => c.url),
    ["wss://hub.example.org/proxy/7000/ws"],
  );
  // An unknown value means auto.
  assert.deepEqual(names(build(href, { transport: "carrier-pigeon" })), ["proxy", "direct", "comm"]);
});

test("comm is always there and always last, with the comm factory", () => {
  for (const href of ["http://localhost:8888/lab", "https://hub.example.org/user/ann/lab"]) {
    for (const pageConfig of [null, { baseUrl: "/" }]) {
      const ladder = build(href, { pageConfig });
      const last = ladder.candidates.at(-1);
      assert.equal(last.transport, "comm");
      assert.equal(last.url, "comm:");
      assert.equal(last.create, createComm);
      assert.equal(ladder.candidates.filter((c) => c.create).length, 1, "only comm has its own factory");
    }
  }
});

test("readPageConfig reads the jupyter-config-data script, and null otherwise", () => {
  const page = (body) => new JSDOM(`<!doctype html><html><body>${body}</body></html>`).window.document;
  assert.deepEqual(
    readPageConfig(page('<script id="jupyter-config-data" type="application/json">{"baseUrl": "/user/ann/"}</script>')),
    { baseUrl: "/user/ann/" },
  );
  assert.equal(readPageConfig(page("")), null);
  assert.equal(readPageConfig(page('<script id="jupyter-config-data" type="application/json">{oops</script>')), null);
  assert.equal(readPageConfig(page('<script id="jupyter-config-data" type="application/json">null</script>')), null);
  assert.equal(readPageConfig(undefined), null);
});

test("the ladder never carries a token", () => {
  const ladder = build("http://localhost:8888/lab", { token: "tok-secret" });
  assert.ok(!JSON.stringify(ladder).includes("tok-secret"));
});

test("every rung gets the kernel's connectTimeoutMs as its probe time; none without a usable one", () => {
  const href = "http://localhost:8888/lab";
  const timed = build(href, { connectTimeoutMs: 12000 });
  assert.deepEqual(
    timed.candidates.map((c) => [c.transport, c.probeMs]),
    [
      ["proxy", 12000],
      ["direct", 12000],
      ["comm", 12000],
    ],
  );
  assert.equal(timed.candidates.at(-1).create, createComm, "the comm keeps its factory");
  for (const connectTimeoutMs of [undefined, null, 0, -5, "12000", Number.NaN, Number.POSITIVE_INFINITY]) {
    const plain = build(href, { connectTimeoutMs });
    assert.ok(
      plain.candidates.every((c) => !("probeMs" in c)),
      `${String(connectTimeoutMs)}: the client's default applies`,
    );
  }
});
