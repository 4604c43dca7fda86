"""Reward-model training throughput: grouped (InstructGPT) vs shuffled-pair batching.

    python -m benchmarks.reward_model [--repeats 5] [--prompts 64] [--backbone tiny]

Both batchings train on the same prompts of the shipped simulated labels (K = 4) for one
epoch with the same number of optimizer steps (8 prompts = 48 pairs per step). Reports the
median over repeats of comparisons (pairs) per second, tokens forwarded per second and
wall time per epoch, and the forwards per prompt, side by side in one run. The timed
call is `train_reward_model` as the notebooks use it, so it includes the final pass that
centres the reward (one forward per completion, the same for both batchings).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rlhf_lab.config import get_device, set_seed
from rlhf_lab.preferences import load_preferences
from rlhf_lab.reward import RewardConfig, RewardModel, as_groups, train_reward_model

from . import device_name, sync


def _tokens(rm: RewardModel, groups) -> int:
    """Real (non-pad) tokens of every completion with its prompt, forwarded once."""
    ids = rm.tokenizer([g.prompt + c + rm.tokenizer.eos_token for g in groups for c in g.completions],
                       add_special_tokens=False)["input_ids"]
    return sum(len(x) for x in ids)


def run(backbone: str, n_prompts: int, repeats: int, device) -> list[dict]:
    groups = as_groups(load_preferences(labeler="sim-gold"))[:n_prompts]
    base = RewardModel.from_backbone(backbone, device=device)
    tokens_once = _tokens(base, groups)
    rows = []
    for batching in ("grouped", "shuffled"):
        times = []
        for rep in range(repeats + 1):   # the first run warms up and is discarded
            set_seed(rep)
            rm = RewardModel.from_backbone(backbone, device=device)
            cfg = RewardConfig(backbone=backbone, batching=batching, epochs=1, eval_every=10**9)
            start = time.perf_counter()
            _, hist = train_reward_model(cfg, groups, val_records=[], rm=rm, progress=False)
            sync(device)
            if rep:
                times.append(time.perf_counter() - start)
        pairs = hist.pairs_seen
        per_prompt = hist.forwards / len(groups)
        t = statistics.median(times)
        rows.append({"batching": batching, "prompts": len(groups), "pairs": pairs, "forwards": hist.forwards,
                     "forwards_per_prompt": per_prompt, "median_s": t, "pairs_per_s": pairs / t,
                     "tokens_per_s": tokens_once * per_prompt / len(groups[0].completions) / t,
                     "runs": [round(x, 3) for x in times]})
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
    print(f"{'batching':9s} {'prompts':>7s} {'pairs':>6s} {'fwd/prompt':>10s} {'median s':>9s} {'pairs/s':>8s} {'tokens/s':>9s}")
    for r in rows:
        print(f"{r['batching']:9s} {r['prompts']:7d} {r['pairs']:6d} {r['forwards_per_prompt']:10.1f} "
              f"{r['median_s']:9.2f} {r['pairs_per_s']:8.1f} {r['tokens_per_s']:9.0f}")
    g, s = rows
    print(f"grouped / shuffled: {g['pairs_per_s'] / s['pairs_per_s']:.2f}x the comparisons per second "
          f"(medians of {args.repeats} runs each)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "device_name": name, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
