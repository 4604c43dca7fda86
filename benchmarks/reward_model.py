"""Reward-model training throughput: grouped (InstructGPT) vs shuffled-pair batching.

    python -m benchmarks.reward_model [--repeats 5] [--prompts 64] [--backbone tiny]

Both batchings train on the same prompts of the shipped simulated labels (K = 4) for one
epoch with the same number of optimizer steps (8 prompts = 48 pairs per step). Reports the
median over repeats of comparisons (pairs) per second, tokens per second and seconds per
epoch, and the forwards per prompt, side by side in one run. The time is the optimizer loop of
`train_reward_model` (History.train_s: without the final pass that centres the reward).

Tokens per second are given two ways: "sequence" tokens count every (prompt + completion)
sequence trained on in full, a prompt once per completion (what one row per completion
would forward, the usual count); "forwarded" tokens are the positions the transformer
actually computed, padding excluded, where packing forwards a prompt once for all of its
completions (rlhf_lab.lm.packing).
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import get_device, set_seed
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.reward.train import RewardConfig, as_groups, train_reward_model
from rlhf_lab.reward.model import RewardModel

from . import device_name, sync


def run(backbone: str, n_prompts: int, repeats: int, device, labels=None, preset: RewardConfig | None = None) -> list[dict]:
    """Both batchings on the first ``n_prompts`` groups of ``labels`` (default: the shipped simulated
    set), at ``preset``'s batch sizes (default: `RewardConfig`'s)."""
    groups = as_groups(load_preferences(labels, labeler="sim-gold"))[:n_prompts]
    sizes = {k: getattr(preset or RewardConfig(), k) for k in ("prompts_per_batch", "pairs_per_batch")}
    rows = []
    for batching in ("grouped", "shuffled"):
        times = []
        for rep in range(repeats + 1):   # the first run warms up and is discarded
            set_seed(rep)
            rm = RewardModel.from_backbone(backbone, device=device)
            cfg = RewardConfig(backbone=backbone, batching=batching, epochs=1, eval_every=10**9, **sizes)
            _, hist = train_reward_model(cfg, groups, val_records=[], rm=rm, progress=False)
            sync(device)
            if rep:
                times.append(hist.train_s)
        t = statistics.median(times)
        rows.append({"batching": batching, "prompts": len(groups), "pairs": hist.pairs_seen, "forwards": hist.forwards,
                     "forwards_per_prompt": hist.forwards / len(groups), "median_s": t,
                     "pairs_per_s": hist.pairs_seen / t, "tokens_per_s": hist.sequence_tokens / t,
                     "forwarded_tokens_per_s": hist.forwarded_tokens / t, "runs": [round(x, 3) for x in times]})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the table as JSON to this file")
    args = p.parse_args(argv)
    device = get_device()
    rows = run(args.backbone, args.prompts, args.repeats, device)
    name = device_name(device)
    print(f"\nreward-model training, one epoch, backbone {args.backbone!r}, device {device} ({name}), torch {torch.__version__}")
    print(f"{'batching':9s} {'prompts':>7s} {'pairs':>6s} {'fwd/prompt':>10s} {'median s':>9s} {'pairs/s':>8s} "
          f"{'seq tok/s':>9s} {'fwd tok/s':>9s}")
    for r in rows:
        print(f"{r['batching']:9s} {r['prompts']:7d} {r['pairs']:6d} {r['forwards_per_prompt']:10.1f} "
              f"{r['median_s']:9.2f} {r['pairs_per_s']:8.1f} {r['tokens_per_s']:9.0f} {r['forwarded_tokens_per_s']:9.0f}")
    g, s = rows
    print(f"grouped / shuffled: {g['pairs_per_s'] / s['pairs_per_s']:.2f}x the comparisons per second "
          f"(medians of {args.repeats} runs each)")
    if args.json:
        write_text(args.json, json.dumps({"device": str(device), "device_name": name, "torch": torch.__version__,
                                          "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
