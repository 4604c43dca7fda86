"""An RLOO, GRPO and Dr. GRPO iteration beside a PPO iteration on the same work.

    python -m benchmarks.group [--iterations 6] [--batch-size 64] [--max-new-tokens 24] [--model tiny]

Same model, reward model, prompts, episodes per iteration, minibatch size, passes over each batch
(PPO's ppo_epochs, the group methods' num_iterations), learning rate and token budget; the
critic-free methods sample batch / K prompts K times each. The trainers take turns, one iteration
each per round (so a slow spell of the machine hits every side), the first round warms up and is
discarded, and the table gives the medians of the generate / score / learn phases and episodes
per second, with each method's ratio to PPO.

A second table sets the learn phase padded (today's minibatches grouped by response length, each
trimmed to its widest) beside padding-free (`PPOConfig.padding_free`: packed rows, a group's prompt
once) on the same rollout, from the same weights, optimizer state and minibatch order, turns
alternating: median seconds, the ratio, positions forwarded, and the largest difference between
the two sides' losses (the check that they did the same work).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import replace

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import get_device
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.rl.rollout import pack_episodes, packed_policy_forward, policy_forward, trim_minibatch
from rlhf_lab.world.reviews import ReviewWorld

from . import device_name, sync

PHASES = ("generate", "score", "learn", "iteration")


def _reward(model: str, reward_model: str | None, device) -> tuple[dict, dict]:
    """Config fields and trainer arguments for the reward: the named reward model, or (None: throughput
    only, as `benchmarks.__main__.bench_ppo` does) an untrained scalar head on the same backbone."""
    if reward_model:
        return {"reward_model": reward_model}, {}
    from rlhf_lab.reward.model import RewardModel
    rm = RewardModel.from_backbone(model, device=device).eval()
    return {}, {"reward_fn": lambda p, c: rm.score(p, c, batch_size=len(p)), "reward_model": rm}


def _trainers(model, reward_model, batch, mini_batch, new_tokens, device, algos, **ppo_fields) -> dict:
    """PPO and the critic-free ``algos`` ((algo, name), ...) on the same model, reward, sizes and prompts."""
    prompts = ReviewWorld(0).prompts(512, kind="mixed", split="train")
    fields, kwargs = _reward(model, reward_model, device)
    same = dict(model=model, batch_size=batch, mini_batch_size=mini_batch, max_new_tokens=new_tokens,
                device=str(device), **fields)
    trainers = {"PPO": PPOTrainer(PPOConfig(**same, **ppo_fields), prompts, **kwargs)}
    for algo, name in algos:
        trainers[name] = GroupTrainer(replace(GroupConfig.tiny(algo), **same), prompts, **kwargs)
    return trainers


def snapshot(trainer) -> tuple:
    """What an update changes: the policy's and the value function's weights, the optimizer, the minibatch order."""
    vf = trainer.value_function
    return (copy.deepcopy(trainer.policy.state_dict()), copy.deepcopy(trainer.optimizer.state_dict()),
            trainer.generator.get_state(), copy.deepcopy(vf.state_dict()) if vf is not None else None)


def learn_from(trainer, state: tuple, r, padding_free: bool) -> dict:
    """`trainer.learn(r)` from ``state`` (a `snapshot`), padded or padding-free; returns its statistics."""
    trainer.policy.load_state_dict(state[0])
    trainer.optimizer.load_state_dict(state[1])
    trainer.generator.set_state(state[2])
    if trainer.value_function is not None:
        trainer.value_function.load_state_dict(state[3])
    trainer.cfg = replace(trainer.cfg, padding_free=padding_free)
    # the update's forward for that layout, as the trainer picks it at construction (compile="off")
    trainer._learn_forward = packed_policy_forward if padding_free else policy_forward
    return trainer.learn(r)


def bench_group(model: str, reward_model: str | None, batch: int, mini_batch: int, new_tokens: int, iterations: int,
                device) -> dict:
    """Medians per phase of each method over ``iterations`` rounds (after one warm-up round)."""
    trainers = _trainers(model, reward_model, batch, mini_batch, new_tokens, device,
                         (("rloo", "RLOO"), ("grpo", "GRPO"), ("dr_grpo", "Dr. GRPO")))
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


def _learn_both(trainer, r, repeats: int, device) -> dict:
    """The learn phase on ``r``, padded and padding-free in turns, each from the same state."""
    state = snapshot(trainer)
    times, stats = {False: [], True: []}, {}
    for i in range(repeats + 1):
        for padding_free in (False, True):
            sync(device)
            t0 = time.perf_counter()
            stats[padding_free] = learn_from(trainer, state, r, padding_free)
            sync(device)
            if i:   # the first turn of each warms up
                times[padding_free].append(time.perf_counter() - t0)
    padded, packed = statistics.median(times[False]), statistics.median(times[True])
    positions = {False: 0, True: 0}
    for rows in trainer.minibatches(r):
        positions[False] += trim_minibatch(r, torch.tensor(rows), rows)[0].numel()
        positions[True] += pack_episodes(r, rows, trainer.tokenizer.pad_token_id, "cpu",
                                         hidden_size=trainer.policy.config.hidden_size).batch.input_ids.numel()
    real = sum(r.prompt_lengths) + sum(r.response_lengths)
    return {"padded_s": padded, "padding_free_s": packed, "speedup": padded / packed,
            "padded_s_all": times[False], "padding_free_s_all": times[True],
            "positions_per_pass": {"padded": positions[False] / trainer.cfg.passes,
                                   "padding_free": positions[True] / trainer.cfg.passes, "episode_tokens": real},
            "max_loss_gap": first_step_gap(trainer, state, r)}


def first_step_gap(trainer, state: tuple, r) -> float:
    """The largest difference between the padded and the padding-free first minibatch's loss and
    statistics, from the same state: the same update on both sides. (The averages over a whole learn
    phase may differ more: where the true gradient is about 0, as when every group's rewards are
    equal, Adam scales float rounding of 1e-6 into steps of the learning rate's size.)"""
    out = {}
    for padding_free in (False, True):
        trainer.policy.load_state_dict(state[0])
        trainer.generator.set_state(state[2])
        trainer.cfg = replace(trainer.cfg, padding_free=padding_free)
        trainer._learn_forward = packed_policy_forward if padding_free else policy_forward
        rows = trainer.minibatches(r)[0]
        with torch.no_grad():
            _, stats = trainer.minibatch_loss(r, rows, torch.tensor(rows, device=trainer.device))
        out[padding_free] = {k: float(v) for k, v in stats.items()}
    return max(abs(out[False][k] - out[True][k]) for k in out[False])


def bench_learn(model: str, reward_model: str | None, batch: int, mini_batch: int, new_tokens: int, repeats: int,
                device) -> dict:
    """The learn phase padded against padding-free for PPO (minibatches grouped by length), RLOO and GRPO."""
    prompts = ReviewWorld(0).prompts(512, kind="mixed", split="train")
    trainers = _trainers(model, reward_model, batch, mini_batch, new_tokens, device,
                         (("rloo", "RLOO"), ("grpo", "GRPO")), group_by_length=True)
    out = {}
    for name, trainer in trainers.items():
        k = trainer.samples_per_prompt
        idx = torch.randint(len(prompts), (batch // k,), generator=torch.Generator().manual_seed(0)).tolist()
        r = trainer.rollout([prompts[i] for i in idx for _ in range(k)])
        out[name] = _learn_both(trainer, r, repeats, device)
    return out


def print_learn(res: dict, repeats: int) -> None:
    print(f"\nthe learn phase, padded (grouped by length for PPO) against padding-free, same rollout and state, "
          f"turns alternating, medians of {repeats}")
    print(f"{'method':7s} {'padded s':>9s} {'packed s':>9s} {'speedup':>8s} {'positions/pass':>22s} {'tokens':>7s} "
          f"{'loss gap':>9s}")
    for name, v in res.items():
        pos = v["positions_per_pass"]
        print(f"{name:7s} {v['padded_s']:9.3f} {v['padding_free_s']:9.3f} {v['speedup']:7.2f}x "
              f"{pos['padded']:>10.0f} -> {pos['padding_free']:<9.0f} {pos['episode_tokens']:7d} "
              f"{v['max_loss_gap']:9.1e}")


def print_group(res: dict, args_line: str) -> None:
    print(args_line)
    print(f"{'method':9s} " + " ".join(f"{k:>10s}" for k in PHASES) + f" {'episodes/s':>11s} {'vs PPO':>7s} {'tokens':>7s}")
    base = res["PPO"]["episodes_per_s"]
    for name, r in res.items():
        print(f"{name:9s} " + " ".join(f"{r['median_s'][k]:10.3f}" for k in PHASES)
              + f" {r['episodes_per_s']:11.1f} {r['episodes_per_s'] / base:6.2f}x {r['mean_response_tokens']:7.1f}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--reward-model", default="tiny-rm", help="a reward model; '' for an untrained head (speed only)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--mini-batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--repeats", type=int, default=5, help="turns of each side in the learn-phase table")
    p.add_argument("--device", default=None)
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    device = get_device(args.device)
    res = bench_group(args.model, args.reward_model, args.batch_size, args.mini_batch_size, args.max_new_tokens,
                      args.iterations, device)
    print_group(res, f"\none iteration, model {args.model!r}, {args.batch_size} episodes x {args.max_new_tokens} new "
                     f"tokens, 4 passes of minibatch {args.mini_batch_size}, K = 4 for the group methods; device "
                     f"{device} ({device_name(device)}), torch {torch.__version__}; medians of {args.iterations} "
                     f"rounds, turns alternating")
    learn = bench_learn(args.model, args.reward_model, args.batch_size, args.mini_batch_size, args.max_new_tokens,
                        args.repeats, device)
    print_learn(learn, args.repeats)
    res = {"iteration": res, "learn_padding_free": learn}
    if args.json:
        write_text(args.json, json.dumps({"device": device_name(device), "args": vars(args), "results": res}, indent=2))
    return res


if __name__ == "__main__":
    main()
