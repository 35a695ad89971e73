#!/usr/bin/python3
"""Writes addition-chat.jsonl: one-digit addition as OpenAI-format chat conversations, the SFT data of
configs/shapes/qwen3-tiny-chat.ini (whose RL task, task:addition with task_max_digits = 1, asks the
same "a+b=" questions). Every ordered pair of digits appears once alone, once after a system message,
and once in a two-turn conversation (so the loss mask covers two assistant turns), in a fixed shuffled
order: rerunning the script rewrites the same file.

    python3 configs/data/make_addition_chat.py > configs/data/addition-chat.jsonl
"""
import json
import random

SYSTEM = "Answer with the sum only."


def turn(a, b):
    return [{"role": "user", "content": f"{a}+{b}="}, {"role": "assistant", "content": str(a + b)}]


def main():
    rng = random.Random(7)
    pairs = [(a, b) for a in range(10) for b in range(10)]
    lines = []
    for a, b in pairs:
        lines.append({"messages": turn(a, b)})
        lines.append({"messages": [{"role": "system", "content": SYSTEM}] + turn(a, b)})
        c, d = rng.choice(pairs)
        lines.append({"messages": turn(a, b) + turn(c, d)})
    rng.shuffle(lines)
    for line in lines:
        print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
