#!/usr/bin/python3
"""Writes the chat data of configs/shapes/qwen3-tiny-chat.ini, one-digit addition as OpenAI-format chat:

  addition-chat.jsonl     SFT conversations (the warm-up). Every ordered pair of digits appears once alone,
                          once after a system message, and once in a two-turn conversation (so the loss mask
                          covers two assistant turns).
  addition-prompts.jsonl  RL prompts (rl.prompts = chat:FILE): every ordered pair once, a user turn "a+b="
                          and its "answer", which rl.reward = task compares the completion with.

Both in a fixed shuffled order: rerunning the script rewrites the same files.

    python3 configs/data/make_addition_chat.py > configs/data/addition-chat.jsonl
    python3 configs/data/make_addition_chat.py --prompts > configs/data/addition-prompts.jsonl
"""
import json
import random
import sys

SYSTEM = "Answer with the sum only."
PAIRS = [(a, b) for a in range(10) for b in range(10)]


def turn(a, b):
    return [{"role": "user", "content": f"{a}+{b}="}, {"role": "assistant", "content": str(a + b)}]


def conversations():
    rng = random.Random(7)
    lines = []
    for a, b in PAIRS:
        lines.append({"messages": turn(a, b)})
        lines.append({"messages": [{"role": "system", "content": SYSTEM}] + turn(a, b)})
        c, d = rng.choice(PAIRS)
        lines.append({"messages": turn(a, b) + turn(c, d)})
    rng.shuffle(lines)
    return lines


def prompts():
    rng = random.Random(11)
    lines = [{"messages": turn(a, b)[:1], "answer": str(a + b)} for a, b in PAIRS]
    rng.shuffle(lines)
    return lines


def main():
    for line in prompts() if sys.argv[1:] == ["--prompts"] else conversations():
        print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
