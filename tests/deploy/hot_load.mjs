// Hot-loads during streaming, checked from the client side (the official OpenAI Node client for the streams, fetch
// for the hot-load routes). The server serves a run's step OLD with --publish-dir holding a full snapshot of OLD and
// a delta of NEW over it:
//   async: a stream in flight when step NEW is hot-loaded continues: its first tokens carry OLD, its last NEW, and
//          the step never goes back;
//   sync:  a stream in flight finishes on OLD (every token); a new request during the swap gets 425, one with
//          X-Flywheel-Drain-Timeout waits and is served on the new step;
//   a step past the newest snapshot falls back to the newest reachable one, a step before every full snapshot fails
//   with the weights unchanged; then the ledger lists the loads in order, and a reset clears it.
//   node hot_load.mjs BASE_URL MODEL OLD NEW
import { check, report, openaiClient, post as postTo, same } from "./harness.mjs";

const [baseURL, model, oldText, newText] = process.argv.slice(2);
const [OLD, NEW] = [Number(oldText), Number(newText)];
const root = baseURL.replace(/\/v1$/, "");
const client = openaiClient(baseURL);
const post = (route, body, headers = {}) => postTo(root, route, body, headers);
const hotLoad = (step, mode) => post("/v1/hot_load", { step, mode });
const long = { model, prompt: "7+5=", max_tokens: 400, ignore_eos: true, temperature: 1.0, seed: 3, return_token_ids: true };

// Streams `request`, calling onFirstTokens once the first tokens arrived; returns every token's snapshot step.
async function streamSteps(request, onFirstTokens) {
  const stream = await client.completions.create({ ...request, stream: true });
  const steps = [];
  let pending = null;
  for await (const chunk of stream)
    for (const c of chunk.choices) {
      steps.push(...(c.snapshot_steps ?? []));
      if (!pending && steps.length > 0) pending = onFirstTokens();
    }
  return { steps, during: await pending };
}

// Start: a full snapshot of OLD (the served weights are OLD's already: nothing may change).
const first = await hotLoad(OLD, "sync");
check(first.status === 200 && first.body.event === "loaded" && first.body.step === OLD && first.body.kind === "full",
  `hot-load step ${OLD} (full)`, JSON.stringify(first.body));
const before = await client.completions.create({ ...long, max_tokens: 8, temperature: 0 });

// async: the stream goes on across the swap.
const asyncRun = await streamSteps(long, () => hotLoad(NEW, "async"));
const s = asyncRun.steps;
check(asyncRun.during.status === 200 && asyncRun.during.body.kind === "delta" && asyncRun.during.body.step === NEW,
  `async hot-load of step ${NEW} applies the delta`, JSON.stringify(asyncRun.during.body));
check(s.length === 400 && s[0] === OLD && s[s.length - 1] === NEW && s.every((v, i) => i === 0 || v >= s[i - 1]),
  `async: a stream in flight goes from step ${OLD} to ${NEW} without going back`,
  `${s.length} tokens, first ${s[0]}, last ${s[s.length - 1]}`);

// Back to OLD (its full snapshot), then sync.
const back = await hotLoad(OLD, "sync");
check(back.status === 200 && back.body.step === OLD && back.body.event === "loaded" && back.body.kind === "full",
  `hot-load of the older step ${OLD} loads its full snapshot`, JSON.stringify(back.body));
const sameAsBefore = await client.completions.create({ ...long, max_tokens: 8, temperature: 0 });
check(JSON.stringify(sameAsBefore.choices[0].token_ids) === JSON.stringify(before.choices[0].token_ids),
  `back on step ${OLD}: the same greedy tokens as before the swaps`);

let tooEarly = null, waited = null;
const syncRun = await streamSteps(long, async () => {
  const swap = hotLoad(NEW, "sync");
  // The swap waits for the stream in flight; a request meanwhile is refused, or waits with a drain timeout.
  for (let i = 0; i < 200 && !tooEarly; i++) {
    const r = await post("/v1/completions", { model, prompt: "1+1=", max_tokens: 2 });
    if (r.status === 425) tooEarly = r;
    else await new Promise((res) => setTimeout(res, 5));
  }
  waited = await post("/v1/completions", { model, prompt: "1+1=", max_tokens: 2, return_token_ids: true },
    { "X-Flywheel-Drain-Timeout": "60" });
  return swap;
});
check(syncRun.during.status === 200 && syncRun.during.body.step === NEW, `sync hot-load of step ${NEW}`,
  JSON.stringify(syncRun.during.body));
check(syncRun.steps.length === 400 && syncRun.steps.every((v) => v === OLD),
  `sync: the stream in flight finishes on step ${OLD}`, JSON.stringify([...new Set(syncRun.steps)]));
check(tooEarly && tooEarly.body.error.code === "swap_in_progress", "sync: a new request during the swap gets 425",
  JSON.stringify(tooEarly?.body));
check(waited && waited.status === 200 && waited.body.choices[0].snapshot_steps.every((v) => v === NEW),
  `sync: a request with X-Flywheel-Drain-Timeout waits and is served on step ${NEW}`, JSON.stringify(waited?.body));

// A step past the newest snapshot: the loader falls back to the newest step it can reach, and says why.
const ahead = await hotLoad(NEW + 1000, "async");
check(ahead.status === 200 && ahead.body.event === "fell_back" && ahead.body.step === NEW && /not reached/.test(ahead.body.reason),
  `a step with no snapshot falls back to the newest reachable one (${NEW})`, JSON.stringify(ahead.body));
// A step before every full snapshot: nothing usable, refused, the weights unchanged.
const before_all = await hotLoad(OLD - 1, "async");
check(before_all.status === 400 && before_all.body.error.code === "snapshot_unusable",
  `a step before every full snapshot (${OLD - 1}) fails`, JSON.stringify(before_all.body));
const still = await client.completions.create({ ...long, max_tokens: 2 });
check(still.choices[0].snapshot_steps.every((v) => v === NEW), `after the failure: still step ${NEW}`);
const badMode = await post("/v1/hot_load", { step: NEW, mode: "later" });
check(badMode.status === 400 && badMode.body.error.param === "mode", "a bad mode is refused by name");

// The ledger, and its reset.
const ledger = await (await fetch(root + "/v1/ledger")).json();
const events = ledger.data.map((e) => `${e.event}:${e.step}`);
check(JSON.stringify(events) === JSON.stringify([`loaded:${OLD}`, `loaded:${NEW}`, `loaded:${OLD}`, `loaded:${NEW}`,
  `fell_back:${NEW}`, `failed:${OLD - 1}`]) && ledger.loaded_step === NEW && ledger.data.every((e) => typeof e.time === "string"),
  "the ledger lists every hot-load in order", JSON.stringify(events));
const reset = await post("/v1/ledger/reset", {});
check(reset.status === 200 && reset.body.data.length === 0 && reset.body.loaded_step === -1, "a reset clears the ledger");
const afterReset = await hotLoad(NEW, "async");  // a delta with no known base: the full snapshot and the delta after it
check(afterReset.status === 200 && afterReset.body.kind === "full+deltas" && afterReset.body.step === NEW,
  "after a reset a delta step is reached through the full snapshot", JSON.stringify(afterReset.body));

const metrics = await (await fetch(root + "/metrics")).text();
check(/flywheel_hot_loads_total\{result="loaded"\} 6/.test(metrics) && /flywheel_hot_loads_total\{result="failed"\} 1/.test(metrics) &&
  new RegExp(`flywheel_loaded_snapshot_step ${NEW}`).test(metrics), "metrics count the hot-loads",
  metrics.split("\n").filter((l) => /hot_load|snapshot_step/.test(l)).join("; "));

report();
