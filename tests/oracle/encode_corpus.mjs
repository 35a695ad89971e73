// The independent oracle: transformers.js (the @lenml/tokenizers fork, tokenizer code identical to
// transformers.js 3.x) tokenizes the parity corpus with a tokenizer.json, and writes per string
//   ids            encode(text, add_special_tokens=false)
//   ids_special    encode(text, add_special_tokens=true)
//   decoded        decode(ids_special), special tokens kept, no clean-up of spaces
//   decoded_skip   decode(ids_special, skip_special_tokens=true)
//   round_trip     the text as a lossless tokenizer gives it back: the normalizer applied to each
//                  stretch between added tokens (Qwen: NFC), added tokens kept as they are
// as one JSON line each. Bytes that are not valid UTF-8 are first decoded by TextDecoder, which
// replaces each maximal ill-formed subsequence with U+FFFD, as the C++ tokenizer does.
//
//   node encode_corpus.mjs TOKENIZER_DIR CORPUS.jsonl OUT.jsonl
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { TokenizerLoader } from "@lenml/tokenizers";

const [dir, corpusPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node encode_corpus.mjs TOKENIZER_DIR CORPUS.jsonl OUT.jsonl");
  process.exit(2);
}

const readJson = (file) => JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
const tokenizerJSON = readJson("tokenizer.json");
const configPath = path.join(dir, "tokenizer_config.json");
const tokenizerConfig = fs.existsSync(configPath) ? readJson("tokenizer_config.json") : {};
const tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });

// The normalizer applied stretch by stretch, with the tokenizer's own added-token splitter.
function roundTrip(text) {
  const sections = tokenizer.added_tokens_splitter.split(text);
  return sections
    .map((s) => (tokenizer.added_tokens_map.has(s) || !tokenizer.normalizer ? s : tokenizer.normalizer(s)))
    .join("");
}

const decoder = new TextDecoder("utf-8", { fatal: false });
const out = fs.createWriteStream(outPath);
const lines = readline.createInterface({ input: fs.createReadStream(corpusPath), crlfDelay: Infinity });
let count = 0;
const start = process.hrtime.bigint();
for await (const line of lines) {
  if (!line) continue;
  const record = JSON.parse(line);
  const text = record.hex !== undefined ? decoder.decode(Buffer.from(record.hex, "hex")) : record.text;
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  const idsSpecial = tokenizer.encode(text, { add_special_tokens: true });
  // transformers.js refuses to decode an empty list; its text is "".
  const decode = (skip) =>
    idsSpecial.length ? tokenizer.decode(idsSpecial, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : "";
  const decoded = decode(false);
  const decodedSkip = decode(true);
  const result = { ids, ids_special: idsSpecial, decoded, decoded_skip: decodedSkip, round_trip: roundTrip(text) };
  out.write(JSON.stringify(result) + "\n");
  ++count;
}
out.end();
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.error(`oracle: ${count} strings in ${seconds.toFixed(2)} s (${path.basename(path.resolve(dir))})`);
