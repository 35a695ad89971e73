// A bounded load test on loopback: CLIENTS concurrent streaming clients (the official OpenAI Node client), each
// sending REQUESTS requests one after another, in ROUNDS rounds. Every response must be complete and well formed
// (max_tokens tokens with ignore_eos, a finish_reason, the usage chunk, the stream's end), none lost, and the
// server's resident memory must not grow from the first round to the last (a leak per request would show).
//   node load.mjs BASE_URL MODEL SERVER_PID [CLIENTS] [REQUESTS] [ROUNDS]
import { readFileSync } from "node:fs";

import { openaiClient } from "./harness.mjs";

const [baseURL, model, pid, clientsText = "32", requestsText = "4", roundsText = "3"] = process.argv.slice(2);
const [CLIENTS, REQUESTS, ROUNDS] = [Number(clientsText), Number(requestsText), Number(roundsText)];
const MAX_TOKENS = 16;
const client = openaiClient(baseURL);
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);

// One streamed request; returns a description of what was wrong, or "".
async function oneRequest(c, r) {
  const stream = await client.completions.create({
    model, prompt: `client ${c} request ${r}:`, max_tokens: MAX_TOKENS, ignore_eos: true, seed: c * 1000 + r, top_k: 50,
    stream: true, stream_options: { include_usage: true }, return_token_ids: true,
  });
  let tokens = 0, finish = null, usage = null, text = "";
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      tokens += (choice.token_ids ?? []).length;
      text += choice.text;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  if (tokens !== MAX_TOKENS) return `${tokens} tokens, expected ${MAX_TOKENS}`;
  if (finish !== "length") return `finish_reason ${finish}`;
  if (!usage || usage.completion_tokens !== MAX_TOKENS) return `usage ${JSON.stringify(usage)}`;
  return "";
}

let failures = 0, completed = 0;
const rss = [];
const began = Date.now();
for (let round = 0; round < ROUNDS; round++) {
  const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const problems = [];
    for (let r = 0; r < REQUESTS; r++) {
      try {
        const problem = await oneRequest(c, round * REQUESTS + r);
        if (problem) problems.push(problem); else completed++;
      } catch (e) {
        problems.push(`${e.status ?? ""} ${e.message}`);
      }
    }
    return problems;
  }));
  for (const p of results.flat()) {
    console.log(`FAIL ${p}`);
    failures++;
  }
  rss.push(rssKiB());
}
const total = CLIENTS * REQUESTS * ROUNDS;
const seconds = (Date.now() - began) / 1000;
console.log(`${completed} / ${total} streamed responses complete in ${seconds.toFixed(1)} s ` +
  `(${CLIENTS} clients at once); server RSS after each round: ${rss.map((k) => (k / 1024).toFixed(1)).join(", ")} MiB`);
if (completed !== total) failures++;
// Flat memory: the last round may not hold more than the first plus 8 MiB (allocator slack). Between them run
// (ROUNDS - 1) x CLIENTS x REQUESTS requests (256 by default): a leak of 32 KiB or more per request fails.
const growthMiB = (rss[rss.length - 1] - rss[0]) / 1024;
if (growthMiB > 8) {
  console.log(`FAIL server memory grew ${growthMiB.toFixed(1)} MiB from the first round to the last`);
  failures++;
}
console.log(failures ? `${failures} check(s) failed` : "all checks passed");
process.exit(failures ? 1 : 0);
