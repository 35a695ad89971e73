// The chat-template oracle: @huggingface/jinja (pinned in package.json) renders each conversation of a
// chat corpus (tests/oracle/make_chat_corpus.py) with the real chat_template of a tokenizer_config.json,
// passing what transformers.js's apply_chat_template passes: messages, add_generation_prompt, the special
// tokens (bos_token, eos_token, ...) and the corpus line's template arguments (enable_thinking, date_string)
// when it sets them. It writes per line
//   text          the rendering
//   first_prompt  when an assistant message follows some other message: the messages before the first
//                 assistant message rendered with add_generation_prompt = true (where its reply starts)
//
//   node render_chats.mjs TOKENIZER_DIR CORPUS.jsonl OUT.jsonl
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";

const [dir, corpusPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node render_chats.mjs TOKENIZER_DIR CORPUS.jsonl OUT.jsonl");
  process.exit(2);
}

const config = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
if (typeof config.chat_template !== "string") throw new Error(`${dir}: tokenizer_config.json has no chat_template`);
const template = new Template(config.chat_template);

// transformers.js passes the special tokens map; an AddedToken object stands for its content.
const specials = {};
for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
  const value = config[key];
  specials[key] = value && typeof value === "object" ? value.content : value ?? null;
}

function render(messages, record, addGenerationPrompt) {
  const args = { messages, add_generation_prompt: addGenerationPrompt, ...specials };
  for (const key of ["enable_thinking", "date_string"]) {
    if (record[key] !== null && record[key] !== undefined) args[key] = record[key];
  }
  return template.render(args);
}

const start = process.hrtime.bigint();
const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((line) => line.length > 0);
const out = [];
for (const line of lines) {
  const record = JSON.parse(line);
  const result = { text: render(record.messages, record, record.add_generation_prompt) };
  const first = record.messages.findIndex((m) => m.role === "assistant");
  if (first > 0) result.first_prompt = render(record.messages.slice(0, first), record, true);
  out.push(JSON.stringify(result));
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const model = path.basename(path.resolve(dir, ".."));
console.error(`chat oracle: ${lines.length} conversations in ${seconds.toFixed(2)} s (${model})`);
