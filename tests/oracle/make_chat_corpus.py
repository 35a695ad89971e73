#!/usr/bin/env python3
"""The chat-template parity corpus: conversations for tests/unit/test_chat_oracle.cpp, one JSON line each:
  {"kind", "messages", "add_generation_prompt", "enable_thinking", "date_string", "python_text"?}
enable_thinking / date_string null leave the template argument undefined (the template's default; for
date_string that is strftime_now, today's date, in @huggingface/jinja as in transformers).

Hand-written cases cover the template branches (system first or not, a later system turn, consecutive
turns of one role, an assistant first, <think> blocks before and after the last user query, user turns
wrapped in <tool_response>, special-token text inside contents, empty and whitespace-only contents,
unicode); seeded random conversations mix them. Each runs with add_generation_prompt true and false and
enable_thinking undefined, true and false.

@huggingface/jinja's strip / lstrip / rstrip ignore their argument and its trim is JavaScript's (it strips
U+FEFF, not U+0085 or U+001C-001F), where transformers' Jinja2 has Python's semantics, which Flywheel
implements. Assistant contents of the random pool therefore never start (after newlines) with other
whitespace and have no such whitespace around their reasoning, and no edge of any content holds U+0085
or U+FEFF; the cases where the two differ are listed apart, each with "python_text": {model: the text
transformers renders}, read off the template by hand.

  python3 make_chat_corpus.py OUT.jsonl
"""
import json
import random
import sys

USER = [
    "Hello", "What is 2+2?", "", " leading space", "trailing space ", "  both sides  ", "\n\nnewlines around\n\n",
    "\t tab first", "multi\nline\n\ntext", "日本語のテキストです。", "emoji 🎉👍🏽 and flags 🇯🇵", "combining e\u0301 cafe\u0301",
    "<|im_end|> inside a user turn", "<|im_start|>assistant\nfake turn",
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>",
    "<|begin_of_text|>bos text", "<think>user thinks</think>", "<tool_response>\nresult 42\n</tool_response>",
    "<tool_response>only the start", "code:\n```python\ndef f(x):\n    return x * 2\n```\n", "   ", "\n",
    "a\u00a0non-breaking\u00a0", "\u3000ideographic space\u3000", "mid\u0085nel and mid\ufeffbom",
    "line\u2028separator",
    "12345678901234567890", "it's they're we've I'm you'll he'd", "x" * 300, "Привет, мир", "مرحبا بالعالم",
    "\r\nwindows\r\nlines\r\n", "<|endoftext|>", "</think>", "<|reserved_special_token_5|>",
]
ASSISTANT = [
    "Hi there!", "", "4", "<think>\nreasoning here\n</think>\n\nThe answer.", "<think>r</think>answer",
    "</think>only a closing tag", "before<think>\nmid\n</think>\n\nafter</think>\n\nfinal", "\n\nnewlines first",
    "trailing spaces   ", "multi\nline answer\n", "日本語の答え", "🎉", "<|im_end|> in an answer", "<|eot_id|> in an answer",
    "<think>\n\n</think>\n\nplain after an empty think", "<think>\nno closing tag", "answer with a \t tab inside",
    "x\n\n\n", "<think>\n\nnewlines around reasoning\n\n</think>\n\n\n\nanswer", "<think>a</think><think>b</think>c",
    "Sure: `rm -rf /tmp/x` \u2014 done.", "\u00e9\u0301\u0327", "<|start_header_id|>user<|end_header_id|>",
]
SYSTEM = ["You are a helpful assistant.", "", "  padded system  ", "Système: réponds en français.\n", "<|im_start|>"]

OPTIONS = [(gen, think) for gen in (False, True) for think in (None, True, False)]


def m(role, content):
    return {"role": role, "content": content}


def hand_cases():
    s, u, a = "system", "user", "assistant"
    yield "user only", [m(u, "Hi")]
    yield "system user", [m(s, "Be brief."), m(u, "Hi")]
    yield "user assistant", [m(u, "Hi"), m(a, "Hello!")]
    yield "system user assistant", [m(s, "Be brief."), m(u, "Hi"), m(a, "Hello!")]
    yield "three rounds", [m(u, "1"), m(a, "one"), m(u, "2"), m(a, "two"), m(u, "3"), m(a, "three")]
    yield "think in history", [m(u, "q1"), m(a, "<think>\nold\n</think>\n\nA1"), m(u, "q2"),
                               m(a, "<think>\nnew\n</think>\n\nA2")]
    yield "think after last query, not last", [m(u, "q"), m(a, "<think>\nfirst\n</think>\n\nA"), m(a, "B")]
    yield "no think after last query, not last", [m(u, "q"), m(a, "A"), m(a, "<think>x</think>B")]
    yield "tool response is not a query", [m(u, "q"), m(a, "<think>t</think>A"),
                                           m(u, "<tool_response>r</tool_response>"), m(a, "<think>u</think>B")]
    yield "only tool responses", [m(u, "<tool_response>r</tool_response>"), m(a, "<think>t</think>A")]
    yield "system later", [m(u, "q"), m(s, "late system"), m(a, "A")]
    yield "system twice", [m(s, "first"), m(s, "second"), m(u, "q")]
    yield "assistant first", [m(a, "<think>t</think>I start"), m(u, "ok")]
    yield "assistant only", [m(a, "<think>\nt\n</think>\n\nalone")]
    yield "system only", [m(s, "just a system")]
    yield "consecutive users", [m(u, "a"), m(u, "b"), m(a, "c")]
    yield "empty everything", [m(s, ""), m(u, ""), m(a, "")]
    yield "whitespace contents", [m(s, "   "), m(u, "\n\n"), m(a, "\n")]
    yield "specials in contents", [m(s, "<|im_start|>system"), m(u, "<|im_end|><|eot_id|>"), m(a, "<|begin_of_text|>")]
    for content in ASSISTANT:
        yield "assistant content", [m(u, "q"), m(a, content)]
        yield "assistant content in history", [m(u, "q"), m(a, content), m(u, "next")]
    for content in USER:
        yield "user content", [m(s, content), m(u, content)]


def random_cases(rng, count):
    for _ in range(count):
        messages = [m("system", rng.choice(SYSTEM + USER))] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 4)):
            messages.append(m("user", rng.choice(USER)))
            messages.append(m("assistant", rng.choice(ASSISTANT)))
        if rng.random() < 0.4:
            messages.append(m("user", rng.choice(USER)))
        yield "random", messages


# Where @huggingface/jinja renders differently from transformers (see the docstring), with the text
# transformers renders, from the template: Qwen3 keeps the spaces lstrip('\n') / strip('\n') leave;
# Llama-3's trim is Python's strip(), which strips U+0085 and keeps U+FEFF.
DIVERGENCES = [
    ("js strip: spaces after </think>", [m("user", "q"), m("assistant", "<think>r</think>  spaced answer")],
     {"qwen3": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\n"
               "  spaced answer<|im_end|>\n"}),
    ("js strip: spaces around reasoning", [m("user", "q"), m("assistant", "<think> padded reasoning </think>answer")],
     {"qwen3": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n padded reasoning \n</think>\n\n"
               "answer<|im_end|>\n"}),
    ("js strip: a last answer that starts with a space", [m("user", "q"), m("assistant", " answer")],
     {"qwen3": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n answer<|im_end|>\n"}),
    ("js trim: U+0085 and U+FEFF", [m("system", "\u0085sys\u0085"), m("user", "\ufeffhi\ufeff")],
     {"llama3_2": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                  "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nsys<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\n\ufeffhi\ufeff<|eot_id|>"}),
]


def main():
    rng = random.Random(20250601)
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        def write(record):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

        cases = list(hand_cases()) + list(random_cases(rng, 300))
        for kind, messages in cases:
            for gen, think in OPTIONS:
                date = rng.choice([None, "26 Jul 2024", "01 Jan 2031"])
                write({"kind": kind, "messages": messages, "add_generation_prompt": gen, "enable_thinking": think,
                       "date_string": date})
        for kind, messages, python_text in DIVERGENCES:
            write({"kind": kind, "messages": messages, "add_generation_prompt": False, "enable_thinking": None,
                   "date_string": "26 Jul 2024", "python_text": python_text})


if __name__ == "__main__":
    main()
