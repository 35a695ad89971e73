#!/usr/bin/python3
"""Plots a run's metrics.jsonl as one PNG: loss over all steps, and for RL steps the mean reward,
the train/serve k3 (log scale), hot-load latency, publish bytes and rollout throughput.

    tools/plot_metrics.py RUN_DIR [--out FILE.png]

RUN_DIR is <train.out_dir>/<run> (it holds metrics.jsonl); the PNG defaults to RUN_DIR/metrics.png.
Uses Debian's python3-matplotlib (installed by tools/setup.sh); no display needed (Agg backend).
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot_metrics: {path} line {number}: not JSON ({e})")
    if not records:
        sys.exit(f"plot_metrics: {path} has no records yet")
    return records


def series(records, key):
    points = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    return [p[0] for p in points], [p[1] for p in points]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--out", help="PNG path (default RUN_DIR/metrics.png)")
    args = parser.parse_args()
    path = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        sys.exit(f"plot_metrics: {path} does not exist (is {args.run_dir} a run directory?)")
    records = read_metrics(path)
    rl = [r for r in records if r.get("phase") == "rl"]
    panels = [("loss", "loss (SFT: cross-entropy; RL: GRPO objective)", records, False)]
    if rl:
        panels += [
            ("reward_mean", "mean reward", rl, False),
            ("k3", "train/serve k3 (0 = bit-exact)", rl, True),
            ("hotload_ms", "hot-load ms (slowest replica)", rl, False),
            ("publish_bytes", "published bytes (full or delta)", rl, True),
            ("rollout_tokens_per_second", "rollout tokens/s", rl, False),
        ]
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3 * rows), squeeze=False)
    for ax, (key, title, subset, log) in zip(axes.flat, panels):
        x, y = series(subset, key)
        if log and any(v > 0 for v in y):
            y = [v if v > 0 else float("nan") for v in y]  # zeros have no logarithm
            ax.set_yscale("log")
        elif log:
            title += ": exactly 0 at every step"  # all zero: a linear axis shows it
        ax.plot(x, y, linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(os.path.basename(os.path.normpath(args.run_dir)))
    fig.tight_layout()
    out = args.out or os.path.join(args.run_dir, "metrics.png")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
