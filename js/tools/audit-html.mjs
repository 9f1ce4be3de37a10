// Parse HTML the way a browser does (jsdom: the WHATWG parsing algorithm, as chromium's innerHTML)
// and report anything that could act: an element outside the allow-list, an event handler, a URL
// that is not http(s)/mailto/#, a style other than text-align.  One JSON string per input line
// (the HTML), one JSON array of findings per output line.  Used by tests/unit/test_safehtml.py.
import { createInterface } from "node:readline";
import { JSDOM } from "jsdom";

const TAGS = new Set(
  "div p br hr h1 h2 h3 h4 h5 h6 em strong s code pre blockquote ul ol li a table thead tbody tr th td".split(" "),
);
const ATTRIBUTES = new Set(["href", "title", "start", "style", "rel", "class"]);
const SAFE_URL = /^(https?:|mailto:|#)/i;
const SAFE_STYLE = /^text-align:\s*(left|right|center);?$/;
const { document } = new JSDOM("<!doctype html><body></body>").window;

function audit(html) {
  const host = document.createElement("div");
  host.innerHTML = html; // what JupyterLab's HTML renderer does with a trusted output
  const findings = [];
  for (const element of host.querySelectorAll("*")) {
    const tag = element.localName;
    if (!TAGS.has(tag)) findings.push(`element <${tag}>`);
    for (const { name, value } of element.attributes) {
      if (!ATTRIBUTES.has(name)) findings.push(`attribute ${name} on <${tag}>`);
      else if (name === "href" && !SAFE_URL.test(value.trim())) findings.push(`href ${value}`);
      else if (name === "style" && !SAFE_STYLE.test(value)) findings.push(`style ${value}`);
      else if (name === "class" && tag !== "div") findings.push(`class on <${tag}>`);
    }
  }
  return findings;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  process.stdout.write(`${JSON.stringify(audit(JSON.parse(line)))}\n`);
}
