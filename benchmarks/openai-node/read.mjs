// The Node `openai` SDK merely reading a chat-completion stream: the reference row of
// `python -m benchmarks openai` (benchmarks/openai_path.py starts it and reads its output).
//
// Usage: node read.mjs BASE_URL
// Each line on stdin is a number of chunks N: one streamed request with max_tokens N (the
// benchmark's provider answers with N text chunks); one JSON line goes out per request:
// {"chunks": text chunks read, "first_ms": request to first text chunk, "seconds": request to
// the stream's end}.  An empty line or the end of stdin ends the process.
import { createInterface } from "node:readline";
import OpenAI from "openai";

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: "not-needed", maxRetries: 0 });

async function measure(n) {
  const start = performance.now();
  let first = null;
  let chunks = 0;
  const stream = await client.chat.completions.create({
    model: "bench",
    messages: [{ role: "user", content: "go" }],
    max_tokens: n,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) {
      chunks += 1;
      first ??= performance.now();
    }
  }
  const end = performance.now();
  return { chunks, first_ms: (first ?? end) - start, seconds: (end - start) / 1000 };
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) break;
  process.stdout.write(`${JSON.stringify(await measure(Number(line)))}\n`);
}
