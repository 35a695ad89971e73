#!/usr/bin/python3
"""The tokenizer parity corpus: strings that exercise every stage of a byte-level BPE tokenizer.

Writes one JSON object per line: {"kind": K, "text": S} for valid UTF-8, or {"kind": K, "hex": H}
for byte strings that are not valid UTF-8 (JSON cannot carry them). Deterministic (fixed seed), so
the same file comes out on every machine. Characters are drawn from Unicode 14.0 (this Python's
unicodedata; PCRE2 10.42's tables): letters assigned later would be \\p{L} to one engine and not to
another, which is a difference of Unicode versions, not of tokenizers.

  make_corpus.py OUT.jsonl
"""
import json
import random
import sys
import unicodedata

rng = random.Random(20240611)

WORDS = ("the of and to in is was he for it with as his on be at by had not are but from or have an "
         "they which one you were her all she there would their we him been has when who will more no "
         "if out so said what up its about into than them can only other new some could time these two "
         "may then do first any my now such like our over man me even most made after also did many "
         "before must through back years where much your way well down should because each just those "
         "people how too little state good very make world still own see men work long get here between "
         "both life being under never day same another know while last might us great old year off come "
         "since against go came right used take three tokenizer merges vocabulary Hugging Face BPE").split()
SPECIAL_QWEN = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
                "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|vision_pad|>"]
SPECIAL_LLAMA = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                 "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>", "<|reserved_special_token_5|>",
                 "<|finetune_right_pad_id|>"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def assigned(c):
    return unicodedata.category(c) != "Cn"


def chars_in(lo, hi):
    return [chr(c) for c in range(lo, hi + 1) if assigned(chr(c))]


SCRIPTS = {
    "han": chars_in(0x4E00, 0x9FFF), "hiragana": chars_in(0x3041, 0x3096), "katakana": chars_in(0x30A1, 0x30FA),
    "hangul": chars_in(0xAC00, 0xD7A3), "greek": chars_in(0x0391, 0x03C9), "cyrillic": chars_in(0x0410, 0x044F),
    "arabic": chars_in(0x0621, 0x064A), "hebrew": chars_in(0x05D0, 0x05EA), "thai": chars_in(0x0E01, 0x0E3A),
    "devanagari": chars_in(0x0905, 0x0939), "latin_ext": chars_in(0x00C0, 0x024F),
}
EMOJI = ["😀", "😂", "🥲", "🤖", "🚀", "🔥", "✨", "❤️", "👍", "🎉", "🧠", "🐍", "🦀", "☕", "⚡", "🌍", "🙂", "💡"]
SKIN_TONES = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
ZWJ = ["👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🏳️\u200d🌈", "🧑\u200d🚀", "👩🏽\u200d💻", "👨🏿\u200d🍳",
       "🏴\u200d☠️", "❤️\u200d🔥", "🧔\u200d♀️", "👁️\u200d🗨️"]
FLAGS = ["🇯🇵", "🇫🇷", "🇧🇷", "🇺🇸", "🇨🇭"]
KEYCAPS = ["1\ufe0f\u20e3", "#\ufe0f\u20e3", "*\u20e3"]
SPACES = [" ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u2009", "\u202f", "\u000b", "\u000c"]


def words(n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def sentence():
    text = words(rng.randint(3, 18))
    text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        text += rng.choice([",", ";", " -", ":"]) + " " + words(rng.randint(2, 8))
    return text + rng.choice([".", "!", "?", "...", ".\"", "?!"])


def prose():
    paragraphs = []
    for _ in range(rng.randint(1, 3)):
        paragraphs.append(" ".join(sentence() for _ in range(rng.randint(1, 5))))
    return rng.choice(["\n\n", "\n", " "]).join(paragraphs)


def identifier():
    parts = [rng.choice(WORDS).lower() for _ in range(rng.randint(1, 3))]
    return rng.choice(["_".join(parts), "".join(p.capitalize() for p in parts), parts[0]])


def python_code():
    name, arg = identifier(), identifier()
    indent = rng.choice(["    ", "  ", "\t"])
    body = [f"{indent}if {arg} is None:", f"{indent*2}return {rng.randint(0, 10**6)}",
            f"{indent}total = sum(x ** 2 for x in range(len({arg})))  # {words(4)}",
            f"{indent}print(f\"{{total!r}} items: {{{arg}[:{rng.randint(1, 99)}]}}\")",
            f"{indent}return {{'{name}': total, \"ok\": True}}"]
    return f"def {name}({arg}, *args, **kwargs) -> dict:\n{indent}\"\"\"{sentence()}\"\"\"\n" + "\n".join(body) + "\n"


def cpp_code():
    name, var = identifier(), identifier()
    return (f"template <typename T>\nstd::vector<T> {name}(const std::vector<T>& {var}) {{\n"
            f"  std::vector<T> out;\n  out.reserve({var}.size());\n"
            f"  for (size_t i = 0; i < {var}.size(); ++i) {{\n    if ({var}[i] != T{{}}) out.push_back({var}[i] * {rng.randint(2, 999)});\n  }}\n"
            f"  return out;  // {words(5)}\n}}\n#include <{rng.choice(['vector', 'map', 'string'])}>\n")


def json_code():
    value = {identifier(): rng.randint(-10**9, 10**9), "name": sentence(), "ok": rng.random() < 0.5,
             "ratio": round(rng.random() * 1000, 6), "list": [rng.randint(0, 99) for _ in range(rng.randint(0, 8))],
             "nested": {"key": identifier(), "null": None}}
    return json.dumps(value, indent=rng.choice([None, 2, 4]), ensure_ascii=rng.random() < 0.3)


def script_text(script):
    pool = SCRIPTS[script]
    chunks = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(1, 8))]
    joiner = "" if script in ("han", "hiragana", "katakana", "thai") and rng.random() < 0.6 else " "
    text = joiner.join(chunks)
    return text + rng.choice(["", "。", "、", "！", "？", ".", " " + words(2)])


def cjk():
    script = rng.choice(["han", "han", "hiragana", "katakana", "hangul"])
    mix = [script_text(script) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.4:
        mix.insert(rng.randint(0, len(mix)), words(rng.randint(1, 4)))
    if rng.random() < 0.3:
        mix.append(str(rng.randint(0, 10**5)))
    return rng.choice(["", " ", "\n", "，"]).join(mix)


def emoji():
    pieces = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.25:
            pieces.append(rng.choice(EMOJI))
        elif kind < 0.45:
            pieces.append(rng.choice(["👍", "👋", "✋", "🙏", "💪"]) + rng.choice(SKIN_TONES))
        elif kind < 0.7:
            pieces.append(rng.choice(ZWJ))
        elif kind < 0.85:
            pieces.append(rng.choice(FLAGS))
        else:
            pieces.append(rng.choice(KEYCAPS))
    sep = rng.choice(["", " ", "  ", " and ", "\n"])
    text = sep.join(pieces)
    return rng.choice([text, sentence() + " " + text, text + " " + words(3)])


# Strings NFC changes: decomposed accents, out-of-order combining marks, conjoining Hangul jamo,
# singletons (Angstrom and Ohm signs, CJK compatibility ideographs), composition exclusions.
COMBINING = ["e\u0301", "a\u0308", "o\u0302", "n\u0303", "c\u0327", "u\u030a", "A\u030a", "i\u0308\u0301",
             "a\u0323\u0302", "a\u0302\u0323", "s\u0323\u0307", "s\u0307\u0323", "\u1100\u1161", "\u1100\u1161\u11a8",
             "\u1112\u1161\u11ab", "\u1109\u1165\u11af", "\u212b", "\u2126", "\u212a", "\uf900", "\uf9dc", "\u0958",
             "\u0915\u093c", "\u00e9", "e\u0301\u0301", "\u0301", "q\u0307\u0323", "\u1e9b\u0323", "\u0344"]


def combining():
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(COMBINING) + rng.choice(["", "", "x", " "]))
        elif r < 0.8:
            parts.append(rng.choice(WORDS))
        else:
            parts.append(script_text(rng.choice(["hangul", "latin_ext", "devanagari"])))
    return rng.choice(["", " "]).join(parts)


def whitespace():
    def run():
        return "".join(rng.choice(SPACES) for _ in range(rng.choice([1, 2, 3, 5, 8, 17, 40, 120, 300])))
    r = rng.random()
    if r < 0.3:
        return run()
    if r < 0.6:
        return run() + words(rng.randint(1, 5)) + run()
    return words(2) + run() + words(2) + run() + sentence()


def digits():
    def number():
        r = rng.random()
        if r < 0.5:
            return "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 10, 16, 33, 64, 101])))
        if r < 0.7:
            return f"{rng.randint(0, 10**9):,}" + rng.choice(["", f".{rng.randint(0, 999)}"])
        if r < 0.8:
            return rng.choice(["٠١٢٣٤٥٦٧٨٩", "１２３４５", "²³¹", "ⅻⅣ", "৩৪৫", "߀߁", "½¾"])
        return f"{rng.random() * 10 ** rng.randint(-5, 12):.{rng.randint(0, 8)}e}"
    parts = [number() for _ in range(rng.randint(1, 4))]
    glue = rng.choice([" ", "", "x", "-", " + ", "abc", "\n", " = "])
    return glue.join(parts)


def contractions():
    out = []
    for _ in range(rng.randint(1, 6)):
        word = rng.choice(["I", "you", "they", "we", "it", "she", "don", "can", "would", "o", "rock"])
        c = rng.choice(CONTRACTIONS + ["'S", "'T", "'RE", "'Ve", "'lL", "'D", "'M", "’s", "''s", "'x", "'"])
        case = rng.random()
        token = word + c
        if case < 0.25:
            token = token.upper()
        elif case < 0.4:
            token = token.capitalize()
        out.append(token)
    text = " ".join(out)
    return rng.choice([text, text + " " + sentence(), "'" + text + "'", text.replace(" ", "")])


def specials():
    tokens = SPECIAL_QWEN + SPECIAL_LLAMA
    r = rng.random()
    if r < 0.25:  # a chat transcript in either model's template
        if rng.random() < 0.5:
            turns = [f"<|im_start|>{role}\n{sentence()}<|im_end|>\n" for role in ("system", "user", "assistant")]
            return "".join(turns) + rng.choice(["<|im_start|>assistant\n", "<think>\n\n</think>\n\n"])
        turns = [f"<|start_header_id|>{role}<|end_header_id|>\n\n{sentence()}<|eot_id|>" for role in ("system", "user")]
        return "<|begin_of_text|>" + "".join(turns) + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    parts = []
    for _ in range(rng.randint(1, 5)):
        parts.append(rng.choice([words(rng.randint(1, 5)), rng.choice(tokens), rng.choice(tokens),
                                 "<|im_start", "im_end|>", "<|<|eot_id|>|>", "<think", "<|", "|>", "<>"]))
    glue = rng.choice(["", " ", "  ", "\n", " x "])
    return glue.join(parts)


def mixed():
    makers = [prose, python_code, cjk, emoji, combining, whitespace, digits, contractions, specials, json_code]
    return rng.choice(["", " ", "\n"]).join(rng.choice(makers)() for _ in range(rng.randint(2, 4)))


def other_scripts():
    return " ".join(script_text(rng.choice(list(SCRIPTS))) for _ in range(rng.randint(1, 4)))


def edge_cases():
    cases = ["", " ", "  ", "\n", "\n\n\n", "\t", "\r\n", "a", "A", "'", "'s", "0", "é", "\u0301", "\x00",
             "a\x00b", "\x7f", "\x1b[31mred\x1b[0m", "<|im_start|>", "<|eot_id|>", "<|begin_of_text|>",
             "<|im_start|><|im_end|>", "   <|endoftext|>   ", "\ufffd", "\U0010fffd", "\uffff", "\ufffe",
             "a" * 5000, "ab" * 3000, " " * 20000, "\n" * 5000, "7" * 20000, "é" * 3000, "😀" * 2000,
             "Ġ", "Ċ", "ĠĠĠ", "<0x0A>", "\\p{L}", "(?i:'s)", "a \u0085b"]
    cases += [chr(c) for c in range(0, 128)]
    cases += ["".join(chr(c) for c in range(32, 127))]
    big = "\n".join([prose(), python_code(), cjk(), emoji(), digits(), whitespace()] * 40)
    cases.append(big)
    return cases


def invalid_utf8():
    samples = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"abc\x80def",
               b"\xf0\x9f\x98", b"\xf0\x9f\x98 x", b"\xe0\x80\xaf", b"\xc3", b"\xc3\x28", b"\xa0\xa1",
               b"\xfe\xfe\xff\xff", b"<|im_start|>\xff<|im_end|>", b"caf\xe9", b"\xef\xbb\xbfBOM"]
    for _ in range(150):
        base = bytearray(rng.choice([prose, cjk, emoji, specials])().encode())
        for _ in range(rng.randint(1, 4)):
            base.insert(rng.randint(0, len(base)), rng.randint(0x80, 0xff))
        if rng.random() < 0.3 and len(base) > 2:
            base = base[:rng.randint(1, len(base) - 1)]
        samples.append(bytes(base))
    samples += [bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 64))) for _ in range(40)]
    return samples


def main():
    counts = {"prose": 300, "python": 150, "cpp": 100, "json": 100, "cjk": 250, "emoji": 200,
              "combining": 200, "whitespace": 200, "digits": 200, "contractions": 200, "specials": 300,
              "scripts": 150, "mixed": 200}
    makers = {"prose": prose, "python": python_code, "cpp": cpp_code, "json": json_code, "cjk": cjk,
              "emoji": emoji, "combining": combining, "whitespace": whitespace, "digits": digits,
              "contractions": contractions, "specials": specials, "scripts": other_scripts, "mixed": mixed}
    records = []
    for kind, count in counts.items():
        records += [{"kind": kind, "text": makers[kind]()} for _ in range(count)]
    records += [{"kind": "edge", "text": t} for t in edge_cases()]
    for raw in invalid_utf8():
        try:
            records.append({"kind": "utf8_bytes", "text": raw.decode("utf-8")})  # a random draw that is valid
        except UnicodeDecodeError:
            records.append({"kind": "invalid_utf8", "hex": raw.hex()})
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
