#!/usr/bin/python3
"""Golden metrics: the numbers of a run that a restructuring of the code must not change.

  compare_metrics.py extract METRICS_JSONL        -> the kept fields of every line, as JSON lines
  compare_metrics.py compare GOLDEN_DIR NEW_DIR [SCENARIO ...]   exit 1 naming the first difference

Kept: the step, the phase, and every loss, reward, parity and gradient figure (see KEPT); timings,
rates and byte counts of compressed files are left out. Every kept field of the golden run must be
in the new run with exactly its value (JSON numbers written by nlohmann::json round-trip doubles, so
equal text is equal bits); a kept field the new run adds (a metric a loop did not log before) is
allowed and listed.
"""
import json, os, sys

KEPT = ("step", "phase", "loss", "ce_loss", "aux_loss", "lr", "grad_norm", "loss_tokens", "reward_mean", "k3",
        "max_abs_logprob_diff", "rollout_tokens", "spanning_samples", "clip_fraction", "ratio_max",
        "tis_weight_mean", "kl", "accuracy", "reward_margin", "chosen_reward", "rejected_reward", "pairs",
        "publish_kind")


def extract(path):
    for line in open(path):
        if line.strip():
            record = json.loads(line)
            print(json.dumps({k: record[k] for k in KEPT if k in record}, sort_keys=True))


def compare(golden_dir, new_dir, scenarios):
    scenarios = scenarios or sorted(f[:-6] for f in os.listdir(golden_dir) if f.endswith(".jsonl"))
    for s in scenarios:
        golden = [json.loads(l) for l in open(os.path.join(golden_dir, s + ".jsonl"))]
        new = [json.loads(l) for l in open(os.path.join(new_dir, s + ".jsonl"))]
        if len(golden) != len(new):
            sys.exit(f"FAIL: {s}: {len(new)} steps, golden has {len(golden)}")
        added = set()
        for g, n in zip(golden, new):
            keys = sorted(k for k in g if g[k] != n.get(k, "<missing>"))
            if keys:
                diffs = ", ".join(f"{k}: golden {g[k]!r} new {n.get(k, '<missing>')!r}" for k in keys)
                sys.exit(f"FAIL: {s} step {g.get('step')}: {diffs}")
            added |= set(n) - set(g)
        note = f" (fields the golden run did not log: {', '.join(sorted(added))})" if added else ""
        print(f"{s}: {len(new)} steps bit-identical to the golden run{note}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "extract":
        extract(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
