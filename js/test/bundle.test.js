// Smoke test of the built artifact: one self-contained ESM file that renders in a DOM.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { JSDOM } from "jsdom";

const bundle = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "llmsock_widget", "static", "widget.js");
const skip = existsSync(bundle) ? false : "run `npm run build` first";

test("the bundle has no imports left and renders the chat", { skip }, async () => {
  const source = readFileSync(bundle, "utf8");
  assert.ok(!/(?:^|[;}\n])\s*import\s*(?:[\w$]+\s*(?:,|from)|\{|\*|["'])/.test(source), "no import statements");
  assert.ok(!/\bimport\(/.test(source), "no dynamic imports");
  assert.ok(!/\brequire\(/.test(source), "no require calls");
  const { default: widget } = await import(pathToFileURL(bundle).href);
  const { window } = new JSDOM("<!doctype html><body></body>", {
    url: "http://localhost:8888/",
    pretendToBeVisual: true,
  });
  const el = window.document.createElement("div");
  window.document.body.append(el);
  const sent = [];
  const model = { get: () => "s", on() {}, off() {}, send: (m) => sent.push(m) };
  const cleanup = widget.render({ model, el });
  assert.ok(el.querySelector(".llmsock-chat [role=log]"));
  assert.equal(sent[0].kind, "hello");
  assert.equal(typeof cleanup, "function");
  cleanup();
  assert.equal(el.children.length, 0);
});
