"""One PPO iteration, broken into generate / score / learn.

    python -m benchmarks.ppo [--iterations 8] [--batch-size 64] [--max-new-tokens 24] [--model tiny]

Runs `PPOTrainer.iteration` as the notebook and the CLI do (PPOConfig.tiny: 4 PPO epochs of
minibatches of 32) and reports the median of each phase over ``--iterations`` iterations
after one warm-up iteration, with episodes per second. It also counts the forwards each
model makes in the score phase (the target is one batched forward per model) and times
generation with and without the KV cache, side by side, on the same prompts and seed.
On a GPU pass ``--model gpt2 --reward-model <folder>`` (a GPT-2 reward model from notebook 03
or ``rlhf-lab reward --backbone gpt2``); forwards then run under bf16 autocast.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import get_device, set_seed
from rlhf_lab.lm.generation import sample
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.world.reviews import ReviewWorld

from . import device_name, sync

PHASES = ("generate", "score", "learn", "iteration")



def count_score_forwards(trainer: PPOTrainer, prompts) -> dict[str, int]:
    """Forwards of each model over whole episodes (prompt + response) during one `rollout`.

    Generation with the KV cache feeds the prompt once and then one token per step, so a
    policy forward that sees the full prompt + response width is a scoring forward.
    """
    rm = trainer._reward_model
    # the transformers under the LM heads: scoring forwards call them directly (rollout.policy_forward)
    models = {"policy": trainer.policy.base_model, "reference": trainer.reference.base_model,
              "reward": rm.backbone if rm else None}
    widths = {name: [] for name in models}
    hooks = [m.register_forward_pre_hook(lambda mod, args, kwargs, n=name: widths[n].append(
                 (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]).shape[1]),
                 with_kwargs=True)
             for name, m in models.items() if m is not None]
    try:
        r = trainer.rollout(prompts)
    finally:
        for h in hooks:
            h.remove()
    # the reference and the reward model only score; the policy also generates (narrower forwards)
    return {name: ws.count(r.input_ids.shape[1]) if name == "policy" else len(ws) for name, ws in widths.items()}


def time_generation(trainer: PPOTrainer, texts, repeats: int) -> dict[str, float]:
    """Median seconds to sample the batch with and without the KV cache (same seed)."""
    out = {}
    for use_cache in (True, False):
        times = []
        for rep in range(repeats + 1):
            set_seed(rep)
            start = time.perf_counter()
            sample(trainer.policy, trainer.tokenizer, texts, max_new_tokens=trainer.cfg.max_new_tokens,
                   temperature=trainer.cfg.temperature, use_cache=use_cache)
            sync(trainer.device)
            if rep:
                times.append(time.perf_counter() - start)
        out["kv_cache" if use_cache else "no_cache"] = statistics.median(times)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--reward-model", default="tiny-rm")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--mini-batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--group-by-length", choices=["off", "on", "both"], default="both",
                   help="minibatches by response length (PPOConfig.group_by_length); both: side by side")
    p.add_argument("--device", default=None)
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    device = get_device(args.device)
    prompts = ReviewWorld(0).prompts(512, kind="mixed", split="train")
    settings = {"off": [False], "on": [True], "both": [False, True]}[args.group_by_length]
    runs = {}
    for grouped in settings:   # the same seed, prompts and first rollout for each setting
        cfg = PPOConfig(model=args.model, reward_model=args.reward_model, batch_size=args.batch_size,
                        mini_batch_size=args.mini_batch_size, max_new_tokens=args.max_new_tokens, device=str(device),
                        group_by_length=grouped)
        trainer = PPOTrainer(cfg, prompts)
        rows = []
        for i in range(args.iterations + 1):    # the first iteration warms up and is discarded
            row = trainer.iteration()
            sync(device)
            if i:
                rows.append(row)
        runs[grouped] = {k: statistics.median(r[f"time/{k}"] for r in rows) for k in PHASES}
    med = runs[settings[-1]]
    forwards = count_score_forwards(trainer, prompts[:args.batch_size])
    gen = time_generation(trainer, [q.text for q in prompts[:args.batch_size]], repeats=3)
    name = device_name(device)
    print(f"\nPPO iteration, model {args.model!r}, {args.batch_size} episodes x {args.max_new_tokens} new tokens, "
          f"{cfg.ppo_epochs} epochs of minibatch {cfg.mini_batch_size}, device {device} ({name}), torch {torch.__version__}")
    print(f"{'phase':10s} {'median s':>9s} {'share':>6s}   (medians of {args.iterations} iterations, "
          f"group_by_length={settings[-1]})")
    for k in PHASES:
        print(f"{k:10s} {med[k]:9.3f} {med[k] / med['iteration']:6.0%}")
    if len(runs) == 2:
        print(f"learn phase, minibatches by length vs shuffled: {runs[True]['learn']:.3f} vs {runs[False]['learn']:.3f} s "
              f"({runs[False]['learn'] / runs[True]['learn']:.2f}x)")
    print(f"episodes per second: {args.batch_size / med['iteration']:.1f}; mean response "
          f"{statistics.mean(r['response/length'] for r in rows):.1f} tokens")
    print("score-phase forwards per model: " + ", ".join(f"{k} {v}" for k, v in forwards.items()))
    print(f"generation alone: KV cache {gen['kv_cache']:.3f} s, without {gen['no_cache']:.3f} s "
          f"({gen['no_cache'] / gen['kv_cache']:.2f}x, medians of 3)")
    if args.json:
        write_text(args.json, json.dumps({
            "medians_s": med, "by_grouping": {str(k): v for k, v in runs.items()}, "forwards": forwards,
            "generation_s": gen, "device": name, "args": vars(args),
            "iterations": [{k: r[f'time/{k}'] for k in PHASES} for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
