// Feed llmsock's llmcore-dialect frames (tests/fixtures/wire/llmcore/session.json, captured from the
// server) to llm-core's own client-side consumer, its interaction reducer (reduceInteractionEvent of
// src/interaction/reducer.ts at tag v1.21.5), and check the state it builds.  Prints one JSON report:
// each check with "works" or "fails"; exits 1 if any fails.
//
// Run by scripts/dev/llmcore_reducer.sh, which gives:
//   LLMCORE_REDUCER  the reducer module to import (a checkout's src/interaction/reducer.ts)
//   FIXTURE          the captured session (default: tests/fixtures/wire/llmcore/session.json)

type Json = Record<string, any>;
type Frame = { name: string; data: { event: Json } };

const reducerPath = process.env.LLMCORE_REDUCER;
const fixturePath = process.env.FIXTURE ?? "tests/fixtures/wire/llmcore/session.json";
if (!reducerPath) throw new Error("LLMCORE_REDUCER is not set");

const { reduceInteractionEvent, reduceInteractionEvents } = await import(reducerPath);
const fixture: Json = await Bun.file(fixturePath).json();

const report: Record<string, string> = {};
const check = (name: string, ok: boolean, detail?: unknown) => {
  report[name] = ok ? "works" : `fails: ${JSON.stringify(detail)}`;
};

// What a page written for llm-core does with each frame: take data.event, reduce it into the state.
const events = (frames: Frame[]) => frames.map((f) => f.data.event);
const initial = () => ({ messages: [], diagnostics: [], trace: [], events: [] as Json[] });
const textOf = (message: Json) =>
  typeof message.content === "string" ? message.content : (message.content?.text ?? "");

let state: Json = reduceInteractionEvent(initial(), fixture.ready.data.event);
for (const turn of fixture.turns as Json[]) {
  const before = state.messages.length;
  state = reduceInteractionEvents(state, events(turn.frames));
  const added = state.messages.slice(before);
  const last = turn.frames[turn.frames.length - 1].data.event.meta.sequence;
  const name = `turn ${turn.name}`;
  check(`${name}: one assistant message`, added.length === 1 && added[0].role === "assistant", added);
  check(`${name}: its text is the answer, once`, added.length === 1 && textOf(added[0]) === turn.expect.text, {
    got: added.map(textOf),
    want: turn.expect.text,
  });
  check(`${name}: lastSequence is the turn's last`, state.lastSequence === last, state.lastSequence);
  check(`${name}: no stream left open`, Object.keys(state.private?.streams ?? {}).length === 0, state.private?.streams);
  // A replay after a reconnect repeats events: the reducer must skip them all.
  const again = reduceInteractionEvents(state, events(turn.frames));
  check(`${name}: a repeated replay changes nothing`, again === state || JSON.stringify(again) === JSON.stringify(state));
  if (turn.name === "tool") {
    const parts: Json[] = added[0]?.content?.parts ?? [];
    const call = parts.find((p) => p.type === "tool-call");
    const result = parts.find((p) => p.type === "tool-result");
    check(`${name}: tool-call part`, call?.toolName === "calculate" && call?.input?.expression === "6*7", call);
    check(`${name}: tool-result part`, result?.toolCallId === call?.toolCallId && result?.output === 42, result);
  }
  if (turn.name === "reasoning") {
    const parts: Json[] = added[0]?.content?.parts ?? [];
    const reasoning = parts.find((p) => p.type === "reasoning");
    check(`${name}: reasoning part`, reasoning?.text === "Two and two make four.", reasoning);
  }
  if (turn.name === "error") {
    const error = state.private?.raw?.["model.primary:error"];
    check(`${name}: the error is kept`, error?.code === turn.expect.code, error);
  }
}

// Replies (sequence 0) are no session events: they never move the reducer's position.
const position = state.lastSequence;
const afterReplies = reduceInteractionEvents(state, events(fixture.replies));
check("replies: lastSequence unchanged", afterReplies.lastSequence === position, afterReplies.lastSequence);
const status = state.private?.raw?.["event-stream:llmsock.status"];
check("event-stream: the session's last status is kept", status?.data?.status === "idle", status);
const usage = state.private?.raw?.["model.primary:usage"];
check("usage: the last usage event is kept", typeof usage?.usage?.outputTokens === "number", usage);
check(
  "messages: every turn's answer, in order",
  state.messages.map(textOf).join("|") === (fixture.turns as Json[]).map((t) => t.expect.text).join("|"),
  state.messages.map(textOf),
);

const failed = Object.values(report).filter((r) => r !== "works").length;
console.log(JSON.stringify({ reducer: reducerPath, fixture: fixturePath, bun: Bun.version, report }, null, 1));
process.exit(failed ? 1 : 0);
