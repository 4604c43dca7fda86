"""An RLOO, GRPO and Dr. GRPO iteration beside a PPO iteration on the same work.

    python -m benchmarks.group [--iterations 6] [--batch-size 64] [--max-new-tokens 24] [--model tiny]

Same model, reward model, prompts, episodes per iteration, minibatch size, passes over each batch
(PPO's ppo_epochs, the group methods' num_iterations), learning rate and token budget; the
critic-free methods sample batch / K prompts K times each. The trainers take turns, one iteration
each per round (so a slow spell of the machine hits every side), the first round warms up and is
discarded, and the table gives the medians of the generate / score / learn phases and episodes
per second, with each method's ratio to PPO.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

import torch

from rlhf_lab.artefacts import write_text
from rlhf_lab.config import get_device
from rlhf_lab.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.ppo import PPOConfig
from rlhf_lab.ppo_trainer import PPOTrainer
from rlhf_lab.world import ReviewWorld

from . import device_name, sync

PHASES = ("generate", "score", "learn", "iteration")


def bench_group(model: str, reward_model: str, batch: int, mini_batch: int, new_tokens: int, iterations: int,
                device) -> dict:
    """Medians per phase of each method over ``iterations`` rounds (after one warm-up round)."""
    prompts = ReviewWorld(0).prompts(512, kind="mixed", split="train")
    same = dict(model=model, reward_model=reward_model, batch_size=batch, mini_batch_size=mini_batch,
                max_new_tokens=new_tokens, device=str(device))
    trainers = {"PPO": PPOTrainer(PPOConfig(**same), prompts)}
    for algo, name in (("rloo", "RLOO"), ("grpo", "GRPO"), ("dr_grpo", "Dr. GRPO")):
        trainers[name] = GroupTrainer(replace(GroupConfig.tiny(algo), **same), prompts)
    rows = {name: [] for name in trainers}
    for i in range(iterations + 1):
        for name, trainer in trainers.items():
            row = trainer.iteration()
            sync(device)
            if i:
                rows[name].append(row)
    out = {}
    for name, rs in rows.items():
        med = {k: statistics.median(r[f"time/{k}"] for r in rs) for k in PHASES}
        out[name] = {"median_s": med, "episodes_per_s": batch / med["iteration"],
                     "mean_response_tokens": statistics.mean(r["response/length"] for r in rs),
                     "iterations_s": [r["time/iteration"] for r in rs]}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--reward-model", default="tiny-rm")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--mini-batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--device", default=None)
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    device = get_device(args.device)
    res = bench_group(args.model, args.reward_model, args.batch_size, args.mini_batch_size, args.max_new_tokens,
                      args.iterations, device)
    print(f"\none iteration, model {args.model!r}, {args.batch_size} episodes x {args.max_new_tokens} new tokens, "
          f"4 passes of minibatch {args.mini_batch_size}, K = 4 for the group methods; device {device} "
          f"({device_name(device)}), torch {torch.__version__}; medians of {args.iterations} rounds, turns alternating")
    print(f"{'method':9s} " + " ".join(f"{k:>10s}" for k in PHASES) + f" {'episodes/s':>11s} {'vs PPO':>7s} {'tokens':>7s}")
    base = res["PPO"]["episodes_per_s"]
    for name, r in res.items():
        print(f"{name:9s} " + " ".join(f"{r['median_s'][k]:10.3f}" for k in PHASES)
              + f" {r['episodes_per_s']:11.1f} {r['episodes_per_s'] / base:6.2f}x {r['mean_response_tokens']:7.1f}")
    if args.json:
        write_text(args.json, json.dumps({"device": device_name(device), "args": vars(args), "results": res}, indent=2))
    return res


if __name__ == "__main__":
    main()
