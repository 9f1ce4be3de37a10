// Run seed 004's real client (Cantika23/aibase's WSClient, unmodified) against llmsock under Bun,
// as its page uses it, and print one JSON report: each client feature with "works" or "fails".
//
// Run by scripts/dev/aibase_client.sh, which gives:
//   AIBASE_SRC      the client's frontend/src directory (its lib/ws/ws-client.ts is imported as is;
//                   "react", which lib/conv-id.ts imports, must resolve from there)
//   LLMSOCK_SERVE   the command that runs `llmsock serve` (space separated), e.g. ".venv/bin/python -m llmsock_widget"
//   CAPTURE         optional: write every frame both ways here, as JSON (tests/fixtures/wire/aibase/)
//   AIBASE_COMMIT   optional: the client's commit, noted in the capture
// The driver starts the server itself (twice: the second time on the same port, with the same
// token and store, to test a reconnect across a restart).

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SRC = process.env.AIBASE_SRC;
const SERVE = (process.env.LLMSOCK_SERVE ?? "python -m llmsock_widget").split(" ");
const CAPTURE = process.env.CAPTURE;
if (!SRC) throw new Error("AIBASE_SRC is not set");

// -- what a browser gives the client: window and localStorage (one store shared by every tab) ----
const storage = new Map<string, string>();
Object.assign(globalThis, {
  window: globalThis,
  localStorage: {
    getItem: (k: string) => storage.get(k) ?? null,
    setItem: (k: string, v: string) => void storage.set(k, String(v)),
    removeItem: (k: string) => void storage.delete(k),
  },
});

// -- a WebSocket that records each frame both ways (the client sees the real one's behaviour) ----
// dir "close": the connection closed (frame: its code and reason), as the client saw it.
type Frame = { tab: string; dir: "client" | "server" | "close"; frame: unknown };
const traffic: Frame[] = [];
const RealWebSocket = globalThis.WebSocket;
class RecordingWebSocket extends RealWebSocket {
  tab: string;
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    this.tab = new URL(String(url)).searchParams.get("tab") ?? "?"; // the server ignores it
    this.addEventListener("message", (event: MessageEvent) => {
      traffic.push({ tab: this.tab, dir: "server", frame: JSON.parse(String(event.data)) });
    });
    this.addEventListener("close", (event: CloseEvent) => {
      traffic.push({ tab: this.tab, dir: "close", frame: { code: event.code, reason: event.reason } });
    });
  }
  send(data: string): void {
    traffic.push({ tab: this.tab, dir: "client", frame: JSON.parse(data) });
    super.send(data);
  }
}
globalThis.WebSocket = RecordingWebSocket as unknown as typeof WebSocket;
console.log = () => {}; // the client logs every frame; the report is what we print
console.error = () => {};

const { WSClient } = await import(join(SRC, "lib/ws/ws-client.ts"));

// -- the server ----------------------------------------------------------------------------------
const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
const storeDir = mkdtempSync(join(tmpdir(), "llmsock-aibase-"));

async function serve(port: number): Promise<{ proc: ReturnType<typeof Bun.spawn>; url: string }> {
  const args = [...SERVE, "serve", "--port", String(port), "--store", `file:${storeDir}`];
  args.push("--model", "builtin:200", "--token-env", "LLMSOCK_DEV_TOKEN");
  const proc = Bun.spawn(args, { env: { ...process.env, LLMSOCK_DEV_TOKEN: token }, stdout: "pipe" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the server did not start");
    text += new TextDecoder().decode(value);
  }
  const url = JSON.parse(text.split("\n")[0]).url.replace(/\/ws$/, "/api/ws");
  return { proc, url };
}

// -- a tab: the client plus what the page does with it (shadcn-chat-interface.tsx) ----------------
class Tab {
  client: InstanceType<typeof WSClient>;
  events: { name: string; data: any }[] = [];
  history: any[] | null = null;
  constructor(
    readonly name: string,
    url: string,
    authToken: string,
    options: Record<string, unknown> = {},
  ) {
    this.client = new WSClient({ url: `${url}?tab=${name}`, reconnectAttempts: 5, reconnectDelay: 300, heartbeatInterval: 30000, timeout: 10000, ...options });
    // The recipe (docs/protocol.md, "Compatibility"): queue the auth frame before every (re)connect,
    // since the client sends its queue before anything else; connect again after a server restart
    // (1001 is a clean close, after which the client does not reconnect by itself).
    const auth = { type: "auth", token: authToken };
    let queued = false;
    const queueAuth = () => {
      if (!queued) this.client.send(auth);
      queued = true;
    };
    this.client.on("connected", () => { queued = false; });
    this.client.on("disconnected", ({ code }: { code: number }) => {
      queueAuth();
      if (code === 1001) setTimeout(() => this.client.connect().catch(() => {}), 500);
    });
    queueAuth();
    for (const name of ["connected", "disconnected", "reconnecting", "error", "llm_chunk", "llm_complete",
      "communication_error", "status", "control", "tool_call", "tool_result", "message"]) {
      this.client.on(name, (data: any) => this.events.push({ name, data }));
    }
    this.client.on("connected", () => this.client.getHistory());
    this.client.on("control", (data: any) => {
      if (data.status === "history" || data.type === "history_response") this.history = data.history || [];
    });
  }
  async until<T>(what: () => T | undefined | null | false, ms = 15000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const value = what();
      if (value) return value;
      if (Date.now() > end) throw new Error(`${this.name}: timed out`);
      await Bun.sleep(20);
    }
  }
  seen(name: string, test: (data: any) => boolean = () => true): any {
    return this.events.find((e) => e.name === name && test(e.data))?.data;
  }
  mark(): number { return this.events.length; }
  since(start: number, name: string): any[] {
    return this.events.slice(start).filter((e) => e.name === name).map((e) => e.data);
  }
}

const results: { feature: string; result: "works" | "fails"; detail: string }[] = [];
async function check(feature: string, run: () => Promise<string>): Promise<void> {
  try {
    results.push({ feature, result: "works", detail: await run() });
  } catch (error) {
    results.push({ feature, result: "fails", detail: String((error as Error).message ?? error) });
  }
}
function expect(ok: unknown, detail: string): void {
  if (!ok) throw new Error(detail);
}

let { proc, url } = await serve(0);
const port = Number(new URL(url).port);
const a = new Tab("A", url, token);

await check("connect to /api/ws with no subprotocol, token as a queued first frame", async () => {
  await a.client.connect();
  const welcome = await a.until(() => a.seen("status", (d) => d.status === "connected"));
  expect(welcome.convId === localStorage.getItem("ws_conv_id"), `welcome convId ${welcome.convId}`);
  return `welcome: status ${welcome.status}, convId ${welcome.convId}, sessionId ${welcome.sessionId}`;
});

await check("history on connect (empty conversation)", async () => {
  const history = await a.until(() => a.history);
  expect(history.length === 0, JSON.stringify(history));
  return "control status 'history', history []";
});

await check("sendMessage: llm_chunk events, then llm_complete resolves the promise", async () => {
  const start = a.mark();
  const done = await a.client.sendMessage("hello there");
  const chunks = a.since(start, "llm_chunk").map((d) => d.chunk).join("");
  const complete = a.since(start, "llm_complete")[0];
  expect(complete && complete.fullText === chunks && chunks.length > 0, "chunks do not add up to fullText");
  expect(done.fullText === complete.fullText, "the promise's data is not llm_complete's");
  return `${a.since(start, "llm_chunk").length} chunks, fullText ${complete.fullText.length} chars`;
});

await check("status events (generating, then idle) while answering", async () => {
  const statuses = () => a.events.filter((e) => e.name === "status").map((e) => e.data.status);
  await a.until(() => statuses().includes("idle"));
  expect(statuses().indexOf("generating") < statuses().indexOf("idle"), statuses().join(","));
  return statuses().join(" -> ");
});

await check("get_status: status_info with connectedAt, messageCount, lastActivity", async () => {
  a.client.getStatus();
  const info = await a.until(() => a.seen("control", (d) => d.status === "status_info"));
  expect(typeof info.connectedAt === "number" && typeof info.messageCount === "number"
    && typeof info.lastActivity === "number", JSON.stringify(info));
  return `messageCount ${info.messageCount}, sessionStatus ${info.sessionStatus}`;
});

const b = new Tab("B", url, token);
await check("a second tab (same convId) sees the conversation", async () => {
  await b.client.connect();
  const history = await b.until(() => b.history);
  expect(history.length === 2 && history[0].role === "user" && history[0].content === "hello there",
    JSON.stringify(history));
  return `history: ${history.map((m: any) => m.role).join(", ")}`;
});

await check("a second tab sees the first tab's answer stream live", async () => {
  const start = b.mark();
  await a.client.sendMessage("second question");
  const complete = await b.until(() => b.since(start, "llm_complete")[0]);
  return `tab B got llm_complete (${complete.fullText.length} chars)`;
});

await check("ping heartbeat (pong)", async () => {
  const before = traffic.length;
  a.client.send({ type: "ping", id: "hb1", metadata: { timestamp: Date.now() } });
  await a.until(() => traffic.slice(before).find((f) => f.dir === "server" && (f.frame as any).type === "pong"));
  return "pong";
});

await check("abort while streaming: control aborted, llm_complete ends the turn", async () => {
  const start = a.mark();
  const answer = a.client.sendMessage("/long 400");
  await a.until(() => a.since(start, "llm_chunk").length > 3);
  a.client.abort();
  const done = await answer;
  const control = await a.until(() => a.seen("control", (d) => d.status === "aborted"));
  expect(done.aborted === true, JSON.stringify(done));
  return `control ${JSON.stringify({ status: control.status, success: control.success })}, llm_complete aborted`;
});

await check("llmsock's pause and resume through sendControl: the answer holds, then completes", async () => {
  const start = a.mark();
  const answer = a.client.sendMessage("/long 100");
  await a.until(() => a.since(start, "llm_chunk").length > 3);
  a.client.sendControl({ type: "pause" });
  await a.until(() => a.seen("control", (d) => d.status === "paused" && d.success));
  await Bun.sleep(300);
  const held = a.since(start, "llm_chunk").length;
  await Bun.sleep(300);
  expect(a.since(start, "llm_chunk").length === held, "chunks kept coming while paused");
  a.client.sendControl({ type: "resume" });
  const done = await answer;
  const chunks = a.since(start, "llm_chunk").map((d) => d.chunk).join("");
  expect(done.fullText === chunks && done.finishReason === "stop", JSON.stringify(done).slice(0, 200));
  return `held at ${held} chunks, then ${a.since(start, "llm_chunk").length}; fullText = the chunks`;
});

await check("tool call: tool_call and tool_result events", async () => {
  const start = a.mark();
  await a.client.sendMessage('/tool calculate {"expression": "6*7"}');
  const call = a.since(start, "tool_call")[0];
  const result = a.since(start, "tool_result")[0];
  expect(call && result && result.result === 42, JSON.stringify({ call, result }));
  return `tool_call ${call.toolName}, tool_result ${result.result}`;
});

await check("reconnect after the server restarts (same port, same token): history shown", async () => {
  proc.kill();
  await proc.exited;
  const start = a.mark();
  a.history = null;
  ({ proc } = await serve(port));
  await a.until(() => a.since(start, "connected").length > 0, 20000);
  const history = await a.until(() => a.history, 20000);
  expect(history.length >= 4, JSON.stringify(history));
  return `reconnected after ${a.since(start, "reconnecting").length} attempt(s); history ${history.length} messages`;
});

await check("clear_history: control cleared, then an empty history", async () => {
  a.client.clearHistory();
  await a.until(() => a.seen("control", (d) => d.status === "cleared"));
  a.history = null;
  a.client.getHistory();
  const history = await a.until(() => a.history);
  expect(history.length === 0, JSON.stringify(history));
  return "cleared, history []";
});

await check("empty prompt: the page is told (communication_error or llm_complete)", async () => {
  const start = a.mark();
  const reply = await Promise.race([a.client.sendMessage(""), Bun.sleep(3000).then(() => "timeout")]);
  await Bun.sleep(200);
  const told = a.since(start, "communication_error").length + a.since(start, "llm_complete").length;
  expect(told > 0, `the promise resolved with ${JSON.stringify(reply)} and no event was emitted`);
  return `${a.since(start, "llm_complete").length} llm_complete, ${a.since(start, "communication_error").length} communication_error`;
});

await check("model error: the turn ends with llm_complete and the error is emitted", async () => {
  const start = a.mark();
  const reply = await Promise.race([a.client.sendMessage("/error 3"), Bun.sleep(5000).then(() => "timeout")]);
  await Bun.sleep(200);
  const completes = a.since(start, "llm_complete").length;
  const errors = a.since(start, "communication_error").length;
  expect(completes > 0 && errors > 0, `${completes} llm_complete, ${errors} communication_error; promise: ${JSON.stringify(reply)}`);
  return `${completes} llm_complete, ${errors} communication_error`;
});

await check("flat options (data.maxTokens) are honoured", async () => {
  const start = a.mark();
  const done = await a.client.sendMessage("/long 200", { maxTokens: 5 });
  expect(done.finishReason === "length", JSON.stringify(done));
  return `finishReason ${done.finishReason} after ${a.since(start, "llm_chunk").length} chunks`;
});

await check("getStats counts frames", async () => {
  const stats = a.client.getStats();
  expect(stats.messagesSent > 0 && stats.messagesReceived > 0, JSON.stringify(stats));
  return `sent ${stats.messagesSent}, received ${stats.messagesReceived}`;
});

await check("a wrong token is refused (4401) and the client does not retry", async () => {
  const bad = new Tab("C", url, "x".repeat(8) + token.slice(8));
  const closed = new Promise<any>((resolve) => bad.client.on("disconnected", resolve));
  await bad.client.connect().catch(() => {});
  const info = await closed;
  await Bun.sleep(500);
  expect(info.code === 4401 && bad.since(0, "reconnecting").length === 0, JSON.stringify(info));
  bad.client.disconnect();
  return `closed ${info.code} (${info.reason})`;
});

a.client.disconnect();
b.client.disconnect();
proc.kill();
await proc.exited;
if (CAPTURE) {
  // One frame a line; the tokens are replaced (the fixture must not hold one, even a spent one).
  const lines = traffic.map((f) => JSON.stringify(f).replaceAll(token, "<token>").replace(/"token":"[^"<]+"/, '"token":"<wrong-token>"'));
  const commit = process.env.AIBASE_COMMIT || "unknown";
  const client = "Cantika23/aibase frontend/src/lib/ws/ws-client.ts";
  const head = JSON.stringify({ client, commit, bun: Bun.version, results });
  writeFileSync(CAPTURE, `${head.slice(0, -1)},"traffic":[\n${lines.join(",\n")}\n]}\n`);
}
process.stdout.write(`${JSON.stringify({ bun: Bun.version, results }, null, 2)}\n`);
process.exit(results.every((r) => r.result === "works") ? 0 : 1);
