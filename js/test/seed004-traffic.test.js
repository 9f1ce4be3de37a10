// The traffic of seed 004's real client (Cantika23/aibase's WSClient, run unmodified under Bun
// against llmsock; tests/fixtures/wire/aibase/, also replayed by pytest), read as that client reads
// it: what it needs from the server to finish each prompt and show the history.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const CAPTURE = JSON.parse(
  readFileSync(join(here, "..", "..", "tests", "fixtures", "wire", "aibase", "session.json"), "utf8"),
);
const traffic = CAPTURE.traffic;
const sentBy = (tab, type) => traffic.filter((t) => t.tab === tab && t.dir === "client" && t.frame.type === type);
const received = (tab) => traffic.filter((t) => t.tab === tab && t.dir === "server").map((t) => t.frame);

test("the capture is of the real client, with no token in it", () => {
  assert.equal(CAPTURE.commit, "40e0c54");
  assert.ok(traffic.length > 100);
  for (const { frame } of traffic) {
    if (frame.type === "auth") assert.match(frame.token, /^<[a-z-]+>$/);
  }
});

test("every prompt the client sent ends with exactly one llm_complete, before any error for it", () => {
  const tabs = new Set(traffic.map((t) => t.tab));
  let prompts = 0;
  for (const tab of tabs) {
    const frames = received(tab);
    for (const { frame } of sentBy(tab, "user_message")) {
      // A tab's connection may have closed first (the capture's restart and wrong-token rows).
      const answers = frames.filter((f) => f.id === frame.id && ["llm_complete", "error"].includes(f.type));
      if (answers.length === 0) continue;
      prompts += 1;
      const completes = answers.filter((f) => f.type === "llm_complete");
      assert.equal(completes.length, 1, `prompt ${frame.id}: ${JSON.stringify(answers.map((f) => f.type))}`);
      assert.equal(answers[0].type, "llm_complete", `prompt ${frame.id} ends with llm_complete first`);
      const error = answers.find((f) => f.type === "error");
      if (error) assert.equal(completes[0].data.finishReason, "error");
    }
  }
  assert.ok(prompts >= 5, `only ${prompts} answered prompts in the capture`);
});

test("get_history answers carry the plain history the client's page shows", () => {
  const replies = traffic
    .filter((t) => t.dir === "server" && t.frame.type === "control_response" && t.frame.data?.type === "get_history")
    .map((t) => t.frame.data);
  assert.ok(replies.length > 0);
  for (const reply of replies) {
    assert.equal(reply.status, "history");
    assert.ok(Array.isArray(reply.history));
    for (const entry of reply.history) {
      assert.deepEqual(Object.keys(entry).sort(), ["content", "role"]);
      assert.ok(["user", "assistant"].includes(entry.role));
    }
  }
  assert.ok(
    replies.some((reply) => reply.history.length > 0),
    "some reply shows an earlier turn",
  );
});

test("the welcome names the conversation the client asked for", () => {
  for (const { frame } of traffic.filter((t) => t.dir === "server" && t.frame.id === "ready")) {
    assert.equal(frame.data.status, "connected");
    assert.equal(frame.data.convId, frame.data.sessionId);
  }
});
