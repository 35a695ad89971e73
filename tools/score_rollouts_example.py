#!/usr/bin/env python3
"""Example external scorer for Flywheel rollout files (docs/objectives.md, "Rollout files").

Usage: score_rollouts_example.py ROLLOUTS.jsonl SCORED.jsonl

Reads the rollouts the trainer wrote and writes the same lines with a "reward" added:
1.0 when the completion is the reversed string of the prompt, else 0.0. A prompt of the
reverse task, "rev:<s>=", is reduced to <s> first, so "rev:abc=" expects "cba".
Standard library only; writes SCORED.jsonl.tmp and renames it so the trainer never reads half a file.
"""
import json
import os
import sys


def expected_completion(prompt):
    if prompt.startswith("rev:") and prompt.endswith("="):
        prompt = prompt[len("rev:"):-1]
    return prompt[::-1]


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: score_rollouts_example.py ROLLOUTS.jsonl SCORED.jsonl\n")
        return 2
    source, target = argv[1], argv[2]
    tmp = target + ".tmp"
    with open(source, encoding="utf-8") as lines, open(tmp, "w", encoding="utf-8") as out:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rollout = json.loads(line)
            except json.JSONDecodeError as error:
                sys.stderr.write(f"{source}:{number}: not valid JSON ({error})\n")
                return 1
            match = rollout["completion"] == expected_completion(rollout["prompt"])
            rollout["reward"] = 1.0 if match else 0.0
            out.write(json.dumps(rollout) + "\n")
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
