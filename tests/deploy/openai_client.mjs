// Drives `flywheel serve` with the official OpenAI Node client (openai 6.49.0, pinned in tests/oracle/package.json):
// models.list, completions (text and token-id prompts, logprobs, n, seeds, stop strings), chat completions (logprobs,
// top_logprobs), streaming (SSE chunks reassembled by the client), concurrency and a client that disconnects.
//   node openai_client.mjs BASE_URL MODEL [API_KEY]
// Prints "ok   ..." / "FAIL ..." lines; exits 1 when a check failed.
import { check, report, openaiClient, same } from "./harness.mjs";

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = openaiClient(baseURL, apiKey ?? "none");

async function expectStatus(what, status, param, call) {
  try {
    await call();
    check(false, what, "no error");
  } catch (e) {
    check(e.status === status && (param === undefined || e.param === param) && typeof e.message === "string",
      `${what}: HTTP ${status}${param ? ", param " + param : ""}`, `got ${e.status} ${e.param} ${e.message}`);
  }
}

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model && models.data[0].object === "model",
  "models.list names the served model", JSON.stringify(models.data));

// Completions: greedy with logprobs and the token-id extension.
const greedy = await client.completions.create({
  model, prompt: "The quick brown fox", max_tokens: 12, temperature: 0, logprobs: 2, return_token_ids: true,
});
const g = greedy.choices[0];
check(greedy.object === "text_completion" && typeof g.text === "string" && ["stop", "length"].includes(g.finish_reason),
  "completion: text and finish_reason", JSON.stringify(g).slice(0, 300));
check(g.token_ids.length >= 1 && g.token_ids.length <= 12 && g.logprobs.tokens.length === g.token_ids.length &&
  g.logprobs.token_logprobs.length === g.token_ids.length && same(g.sampling_logprobs, g.logprobs.token_logprobs),
  "completion: one logprob per token id", JSON.stringify(g.logprobs).slice(0, 300));
check(g.logprobs.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2),
  "completion: logprobs=2 gives at most 2 candidates per position");
check(g.logprobs.token_logprobs.every((lp, i) => lp <= 0 && lp >= Math.max(...Object.values(g.logprobs.top_logprobs[i])) - 1e-6),
  "completion: greedy tokens are the most likely ones");
check(greedy.usage.completion_tokens === g.token_ids.length && greedy.usage.prompt_tokens === g.prompt_token_ids.length,
  "completion: usage counts the token ids", JSON.stringify(greedy.usage));
check(g.snapshot_steps.length === g.token_ids.length, "completion: a snapshot step per token");

// A token-id prompt is the same prompt.
const byIds = await client.completions.create({
  model, prompt: g.prompt_token_ids, max_tokens: 12, temperature: 0, return_token_ids: true,
});
check(same(byIds.choices[0].token_ids, g.token_ids) && byIds.choices[0].text === g.text,
  "completion: a token-id prompt generates what its text did");

// Seeds: choice i of n draws from seed + i, whatever else is in the batch.
const sampled = { model, prompt: "Once upon a time", max_tokens: 10, temperature: 1.0, return_token_ids: true };
const many = await client.completions.create({ ...sampled, n: 3, seed: 41 });
const singles = await Promise.all([41, 42, 43].map((seed) => client.completions.create({ ...sampled, seed })));
check(many.choices.length === 3 && many.choices.every((c, i) => c.index === i &&
  same(c.token_ids, singles[i].choices[0].token_ids) && same(c.sampling_logprobs, singles[i].choices[0].sampling_logprobs)),
  "n = 3 with seed 41: choice i has the tokens and logprobs of seed 41 + i alone");
check(!same(many.choices[0].token_ids, many.choices[1].token_ids) || !same(many.choices[1].token_ids, many.choices[2].token_ids),
  "n = 3: the choices differ");

// Stop strings: the text ends before the stop, finish_reason "stop".
const free = await client.completions.create({ model, prompt: "Hello", max_tokens: 16, temperature: 0 });
const full = free.choices[0].text;
if (full.length >= 6) {
  const stop = full.slice(3, 5);
  const stopped = await client.completions.create({ model, prompt: "Hello", max_tokens: 16, temperature: 0, stop });
  const c = stopped.choices[0];
  check(c.text === full.slice(0, full.indexOf(stop)) && c.finish_reason === "stop",
    `stop ${JSON.stringify(stop)}: text cut before it, finish_reason stop`, JSON.stringify([full, c.text, c.finish_reason]));
} else {
  check(false, "stop: the greedy text is too short to take a stop string from", JSON.stringify(full));
}

// Chat completions: the chat template, logprobs with top_logprobs.
const chatRequest = {
  model, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "What is 2+2?" }],
  max_completion_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3, return_token_ids: true,
};
const chat = await client.chat.completions.create(chatRequest);
const cc = chat.choices[0];
check(chat.object === "chat.completion" && cc.message.role === "assistant" && typeof cc.message.content === "string",
  "chat: an assistant message", JSON.stringify(cc.message));
check(cc.logprobs.content.length === cc.token_ids.length &&
  cc.logprobs.content.every((t) => t.top_logprobs.length === 3 && t.top_logprobs[0].logprob === t.logprob &&
    Array.isArray(t.bytes)),
  "chat: greedy logprobs equal the top candidate's, 3 candidates each", JSON.stringify(cc.logprobs.content[0]));
check(Array.isArray(chat.prompt_token_ids) && chat.prompt_token_ids.length > 10,
  "chat: prompt_token_ids are the rendered template");

// Streaming: the same tokens as the whole response; the usage chunk last.
const stream = await client.chat.completions.create({ ...chatRequest, stream: true, stream_options: { include_usage: true } });
let content = "", ids = [], usage = null, role = null, finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    content += c.delta.content ?? "";
    ids.push(...(c.token_ids ?? []));
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(role === "assistant" && content === cc.message.content && same(ids, cc.token_ids) && finish === cc.finish_reason,
  "chat stream: the deltas add up to the whole response", JSON.stringify([content, cc.message.content]));
check(usage && usage.completion_tokens === cc.token_ids.length, "chat stream: include_usage sends the usage");

const textStream = await client.completions.create({ model, prompt: "The quick brown fox", max_tokens: 12, temperature: 0, stream: true });
let streamed = "";
for await (const chunk of textStream) for (const c of chunk.choices) streamed += c.text;
check(streamed === g.text, "completion stream: the chunks add up to the whole text", JSON.stringify([streamed, g.text]));

// Many clients at once: every stream completes with what it gets alone.
const prompts = Array.from({ length: 8 }, (_, i) => `Client ${i} says`);
const alone = [];
for (const p of prompts) alone.push((await client.completions.create({ model, prompt: p, max_tokens: 8, seed: 5, return_token_ids: true })).choices[0].token_ids);
const together = await Promise.all(prompts.map(async (p) => {
  const s = await client.completions.create({ model, prompt: p, max_tokens: 8, seed: 5, return_token_ids: true, stream: true });
  const got = [];
  for await (const chunk of s) for (const c of chunk.choices) got.push(...(c.token_ids ?? []));
  return got;
}));
check(together.every((t, i) => same(t, alone[i])), "8 concurrent streams: each gets the tokens it gets alone");

// A client that disconnects mid-stream frees its slot.
const controller = new AbortController();
const long = await client.completions.create({ model, prompt: "Go on", max_tokens: 100, stream: true, seed: 1 },
  { signal: controller.signal });
let chunks = 0;
try {
  for await (const _ of long) if (++chunks === 2) controller.abort();
} catch (e) { /* the abort */ }
let metrics = "";
for (let i = 0; i < 100; i++) {
  metrics = await (await fetch(baseURL.replace(/\/v1$/, "") + "/metrics", { headers: { Authorization: `Bearer ${apiKey ?? "none"}` } })).text();
  if (/flywheel_client_disconnects_total [1-9]/.test(metrics) && /flywheel_active_sequences 0\b/.test(metrics)) break;
  await new Promise((r) => setTimeout(r, 100));
}
check(/flywheel_client_disconnects_total [1-9]/.test(metrics) && /flywheel_active_sequences 0\b/.test(metrics),
  "a disconnected stream is counted and leaves the batch", metrics.split("\n").filter((l) => /disconn|active/.test(l)).join("; "));

// Errors the client sees as APIError with the OpenAI fields.
await expectStatus("unknown model", 404, "model", () => client.completions.create({ model: "nope", prompt: "x" }));
await expectStatus("temperature 3", 400, "temperature", () => client.completions.create({ model, prompt: "x", temperature: 3 }));
await expectStatus("n above the limit", 400, "n", () => client.completions.create({ model, prompt: "x", n: 1000 }));
await expectStatus("chat ending with an assistant turn", 400, "messages",
  () => client.chat.completions.create({ model, messages: [{ role: "assistant", content: "hi" }] }));
await expectStatus("tools", 400, "tools", () => client.chat.completions.create({
  model, messages: [{ role: "user", content: "hi" }], tools: [{ type: "function", function: { name: "f" } }] }));
await expectStatus("max_tokens beyond the context", 400, "max_tokens",
  () => client.completions.create({ model, prompt: "x", max_tokens: 100000 }));

report();
