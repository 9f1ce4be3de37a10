// A whole view (index.js) with `@name` mentions, chips and Explain: the kernel played over the
// fake model's comm, the server over a fake WebSocket.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connectedWidget, frames } from "./helpers.js";

const SUMMARY = "df: DataFrame, 3 rows x 2 columns\n<b>city</b>  temp";

/** Resolve after the promises already queued have run. */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

async function connectedView() {
  const { window, model, el, ws, paint, cleanup } = connectedWidget();
  const box = /** @type {HTMLTextAreaElement} */ (el.querySelector("textarea"));
  const asked = (type) => model.sent.filter((m) => m.type === type);
  return { window, model, el, ws, box, paint, cleanup, asked };
}

test("@ completion, the attachments sent with the prompt, and the chip of the echoed message", async () => {
  const { window, model, el, ws, box, paint, cleanup, asked } = await connectedView();
  box.value = "compare @d";
  box.setSelectionRange(10, 10);
  box.dispatchEvent(new window.Event("input", { bubbles: true }));
  const [complete] = asked("complete");
  assert.equal(complete.prefix, "d");
  model.emit("msg:custom", { type: "completions", id: complete.id, names: [{ name: "df", kind: "DataFrame" }] });
  await settled();
  const listbox = el.querySelector('[role="listbox"]');
  assert.equal(listbox?.hidden, false);
  assert.equal(listbox?.textContent, "dfDataFrame");
  const before = ws.sent.length;
  box.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
  assert.equal(box.value, "compare @df ");
  assert.equal(ws.sent.length, before, "Enter picked the name and sent nothing");

  el.querySelector("button.llmsock-send")?.click();
  const [describe] = asked("describe");
  assert.equal(describe.name, "df");
  model.emit("msg:custom", { type: "description", id: describe.id, name: "df", ok: true, text: SUMMARY });
  await settled();
  const prompt = ws.sentJson().at(-1);
  assert.equal(prompt.type, "user_message");
  assert.deepEqual(prompt.data, { text: "compare @df ", options: { attachments: [{ name: "df", text: SUMMARY }] } });
  assert.equal(box.value, "");

  // The server echoes the prompt with its options: a chip under it opens the text sent.
  const echo = frames.user(1, "compare @df ");
  echo.data.event.options = prompt.data.options;
  ws.serverSend(echo);
  paint.flush();
  const chip = /** @type {HTMLButtonElement} */ (
    el.querySelector('.llmsock-msg[data-role="user"] [data-action="chip"]')
  );
  assert.equal(chip.textContent, "@df");
  chip.click();
  const text = el.querySelector('[data-role="chip-text"]');
  assert.equal(text?.textContent, SUMMARY);
  assert.equal(text?.querySelector("b"), null);
  cleanup();
  assert.equal(model.count("msg:custom"), 0);
});

test("Explain the last error asks the kernel over the comm and shows its refusal", async () => {
  const { model, el, cleanup, asked } = await connectedView();
  const button = /** @type {HTMLButtonElement} */ (el.querySelector('[data-action="explain"]'));
  assert.equal(button.hidden, false);
  button.click();
  const [explain] = asked("explain");
  model.emit("msg:custom", { type: "explained", id: explain.id, ok: false, message: "no error to explain yet" });
  await settled();
  assert.equal(el.querySelector('[data-role="explain-note"]')?.textContent, "no error to explain yet");
  cleanup();
});
