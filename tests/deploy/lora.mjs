// Multi-LoRA serving through the OpenAI API: adapters are models named in requests, listed with their base as
// parent, loaded and unloaded while serving (vLLM's /v1/load_lora_adapter, /v1/unload_lora_adapter), and mixed in
// one decode batch with each sequence getting the bits it gets alone.
//   node lora.mjs BASE_URL BASE_MODEL ADAPTER_A ADAPTER_B_DIR BAD_ADAPTER_DIR
import { check, report, openaiClient, post as postTo, same } from "./harness.mjs";

const [baseURL, base, adapterA, dirB, badDir] = process.argv.slice(2);
const root = baseURL.replace(/\/v1$/, "");
const client = openaiClient(baseURL);
const post = (route, body, headers = {}) => postTo(root, route, body, headers);
const generate = async (model, prompt, seed) => {
  const r = await client.completions.create({ model, prompt, max_tokens: 12, ignore_eos: true, seed, return_token_ids: true });
  return { ids: r.choices[0].token_ids, logprobs: r.choices[0].sampling_logprobs, model: r.model };
};

let models = (await client.models.list()).data;
check(models.length === 2 && models[0].id === base && models[1].id === adapterA && models[1].parent === base,
  "models.list: the base and its adapter (parent = base)", JSON.stringify(models));

const onBase = await generate(base, "2+2=", 1), onA = await generate(adapterA, "2+2=", 1);
check(onA.model === adapterA && !same(onA.logprobs, onBase.logprobs),
  "the adapter changes what is sampled (same prompt and seed)", JSON.stringify([onBase.logprobs, onA.logprobs]));

const loaded = await post("/v1/load_lora_adapter", { lora_name: "b", lora_path: dirB });
check(loaded.status === 200 && loaded.body.loaded === true, "load_lora_adapter b while serving", JSON.stringify(loaded.body));
models = (await client.models.list()).data.map((m) => m.id);
check(models[0] === base && same(models.slice(1).sort(), [adapterA, "b"].sort()), "models.list shows b",
  JSON.stringify(models));

// Each (model, prompt, seed) alone, then all of them at once, interleaved: the same bits.
const cases = [];
for (const model of [base, adapterA, "b"]) for (const [prompt, seed] of [["1+2=", 4], ["9+9=", 5], ["3+", 6]]) cases.push({ model, prompt, seed });
const alone = [];
for (const c of cases) alone.push(await generate(c.model, c.prompt, c.seed));
const order = cases.map((_, i) => (i * 4) % cases.length);  // interleaves the three models
const together = await Promise.all(order.map((i) => generate(cases[i].model, cases[i].prompt, cases[i].seed)));
check(order.every((i, k) => same(together[k].ids, alone[i].ids) && same(together[k].logprobs, alone[i].logprobs)),
  `${cases.length} requests over three models at once: each gets the tokens and logprobs it gets alone`);

// Bad adapters and unloads.
const bad = await post("/v1/load_lora_adapter", { lora_name: "bad", lora_path: badDir });
check(bad.status === 400 && bad.body.error.code === "adapter_unusable" && bad.body.error.message.includes(badDir),
  "an adapter that does not fit the base is refused naming it", JSON.stringify(bad.body));
const missing = await post("/v1/load_lora_adapter", { lora_name: "gone", lora_path: badDir + "-none" });
check(missing.status === 400, "a missing adapter directory is refused", JSON.stringify(missing.body));
const noName = await post("/v1/load_lora_adapter", { lora_path: dirB });
check(noName.status === 400 && noName.body.error.param === "lora_name", "lora_name is required");
const unloaded = await post("/v1/unload_lora_adapter", { lora_name: "b" });
check(unloaded.status === 200 && unloaded.body.loaded === false, "unload_lora_adapter b", JSON.stringify(unloaded.body));
try {
  await client.completions.create({ model: "b", prompt: "1+2=" });
  check(false, "a request for an unloaded adapter gets 404", "no error");
} catch (e) {
  check(e.status === 404 && e.code === "model_not_found", "a request for an unloaded adapter gets 404", `${e.status} ${e.message}`);
}
const again = await post("/v1/unload_lora_adapter", { lora_name: "b" });
check(again.status === 404, "unloading it again gets 404");
const stillA = await generate(adapterA, "2+2=", 1);
check(same(stillA.ids, onA.ids) && same(stillA.logprobs, onA.logprobs), "the other adapter is untouched by all that");

report();
