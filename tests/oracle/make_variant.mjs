// A third tokenizer for the parity test, derived from Qwen3's real vocabulary and merges, that takes
// the other branch of every option the real files share, so that the oracle covers those too:
//   merges as legacy "a b" strings (byte-level tokens never hold a space, so every merge fits),
//   ignore_merges true, an NFKC normalizer inside a Sequence, a bare GPT-2 ByteLevel pre-tokenizer
//   (use_regex true, add_prefix_space true), lstrip on <|im_start|> and rstrip on <|im_end|>, a
//   TemplateProcessing post_processor with tokens before AND after the text, a Sequence decoder, and a
//   tokenizer_config.json naming its PAD in the object form {"content": ...}.
//
//   node make_variant.mjs QWEN_TOKENIZER_DIR OUT_DIR
import fs from "node:fs";
import path from "node:path";

const [source, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node make_variant.mjs QWEN_TOKENIZER_DIR OUT_DIR");
  process.exit(2);
}
const tokenizer = JSON.parse(fs.readFileSync(path.join(source, "tokenizer.json"), "utf8"));

tokenizer.model.merges = tokenizer.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m));
tokenizer.model.ignore_merges = true;
tokenizer.normalizer = { type: "Sequence", normalizers: [{ type: "NFKC" }] };
tokenizer.pre_tokenizer = { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true };
for (const token of tokenizer.added_tokens) {
  if (token.content === "<|im_start|>") token.lstrip = true;
  if (token.content === "<|im_end|>") token.rstrip = true;
}
const special = (content) => ({ id: content, ids: [tokenizer.added_tokens.find((t) => t.content === content).id], tokens: [content] });
tokenizer.post_processor = {
  type: "TemplateProcessing",
  single: [
    { SpecialToken: { id: "<|endoftext|>", type_id: 0 } },
    { Sequence: { id: "A", type_id: 0 } },
    { SpecialToken: { id: "<|im_end|>", type_id: 0 } },
  ],
  pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
  special_tokens: { "<|endoftext|>": special("<|endoftext|>"), "<|im_end|>": special("<|im_end|>") },
};
tokenizer.decoder = { type: "Sequence", decoders: [{ type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }] };

const config = {
  tokenizer_class: "PreTrainedTokenizerFast",
  bos_token: null,
  eos_token: "<|im_end|>",
  pad_token: { __type: "AddedToken", content: "<|endoftext|>" },
  clean_up_tokenization_spaces: false,
};
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer.json"), JSON.stringify(tokenizer));
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"), JSON.stringify(config, null, 2));
