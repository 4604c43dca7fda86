"""Notebook 10's length measurement (groundwork): a reward model learned from a length-loving labeler, optimised.

    python -m benchmarks.length_bias                           # the table, ~10 min on 2 cores
    python -m benchmarks.length_bias --smoke --out /tmp/l.json   # one seed, a few steps

The cpu chain's SFT model samples K = 4 completions for 512 training prompts (96 new tokens, so that a
lengthening is not cut off by the budget); two simulated labelers rank the same tasks: the gold persona and
`rlhf_lab.labels.labelers.VERBOSE` (gold plus 0.5 per ten words). A reward model is trained on each labeler's
rankings (`RewardConfig.tiny`, unit std). Then, for 3 seeds, GRPO (notebook 08's preset, beta = 0.05, 20
iterations of 32 episodes, 96 new tokens, the reward model's own score of an unfinished answer) optimises

* ``gold_rm``: the reward model of the gold labeler's rankings;
* ``verbose_rm``: the reward model of the verbose labeler's rankings;
* ``verbose_rm_penalty``: the same minus ALPHA per token of the response (a length penalty, guessed);
* ``verbose_rm_matched``: the same minus the verbose reward model's own slope per token, measured before any RL
  (least squares of its score on response tokens over the SFT model's held-out samples): the penalty that makes
  length worth nothing to it on the SFT model's samples.

Every policy is read on the same 128 held-out prompts: gold, its reward model's score, length, KL, each sample
kept, and the gold (and each reward model's proxy, over the runs that optimised it) with length regressed out
(`evaluation.length_controlled`: each run's mean at the pooled mean length, on a slope fitted within runs). Beside it: how
much of each reward model's score length explains (the correlation on the SFT model's held-out samples), and the
score of the same reviews padded with neutral sentences. Writes ``--out`` (default data/length_bias.json).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks import parse_seeds, seeds_parser, table_meta
from rlhf_lab import course
from rlhf_lab.config import get_profile, set_seed
from rlhf_lab.evaluation import correlation, evaluate_policy, length_controlled, sample_n, score_samples
from rlhf_lab.labels.labelers import PERSONAS, VERBOSE, SimulatedLabeler, agreement_with_gold, label_tasks
from rlhf_lab.labels.preferences import sample_for_labeling
from rlhf_lab.lm.models import load_model
from rlhf_lab.reward.train import RewardConfig, train_reward_model
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.utils.artefacts import write_json
from rlhf_lab.world.reviews import ReviewWorld, judge_many

SEEDS = [0, 1, 2]
BUDGET = 96                    # new tokens: room to lengthen (the context is 128)
ALPHA = 0.02                   # the length penalty per response token
ARMS = ("gold_rm", "verbose_rm", "verbose_rm_penalty", "verbose_rm_matched")
PADDING = (" I saw it at the cinema with my partner.", " It is a thriller about a night shift at a hospital.")
OUT = Path(__file__).resolve().parents[1] / "data" / "length_bias.json"


def main(argv=None) -> dict:
    args = parse_seeds(seeds_parser(__doc__.splitlines()[0], SEEDS, OUT, "seed 0, 2 iterations, 16 prompts"), argv)
    smoke = args.smoke
    profile = get_profile("cpu")
    chain = course.ensure(profile, "sft")
    world = ReviewWorld(0)
    train_prompts = world.prompts(16 if smoke else 512, kind="mixed", split="train")
    test_prompts = world.prompts(16 if smoke else 128, kind="mixed", split="test")
    reference, tok = load_model(chain["sft"], role="reference", device="cpu")
    started = time.perf_counter()

    set_seed(0)
    tasks = sample_for_labeling(reference, tok, train_prompts, k=4, max_new_tokens=BUDGET, temperature=0.7)
    labels = {"gold_rm": label_tasks(tasks, [SimulatedLabeler("gold", seed=0)]),
              "verbose_rm": label_tasks(tasks, [SimulatedLabeler(VERBOSE, seed=0)])}
    agreement = {"gold": agreement_with_gold(PERSONAS["gold"], tasks), "verbose": agreement_with_gold(VERBOSE, tasks)}
    rms = {}
    for name, records in labels.items():
        cfg = replace(RewardConfig.tiny(), normalise_std=True, epochs=1 if smoke else 2, device="cpu")
        rms[name], _ = train_reward_model(cfg, records, progress=False)
        rms[name].eval().requires_grad_(False)

    pool = sample_n(reference, tok, test_prompts, n=4, max_new_tokens=BUDGET, seed=1)
    lengths = torch.tensor([[len(c.split()) for c in row] for row in pool["completions"]], dtype=torch.float)
    explains, padding = {}, {}
    n_tokens = torch.tensor([[len(tok(c, add_special_tokens=False)["input_ids"]) for c in row]
                             for row in pool["completions"]], dtype=torch.float).flatten()
    for name, rm in rms.items():
        s = score_samples(rm.score, test_prompts, pool["completions"])
        explains[name] = correlation(lengths.flatten(), s.flatten())
        if name == "verbose_rm":   # its score's least-squares slope on response tokens: the matched penalty
            dn = n_tokens - n_tokens.mean()
            alpha_matched = ((s.flatten() - s.mean()) * dn).sum().item() / (dn ** 2).sum().item()
        plain = [row[0] for row in pool["completions"]]
        texts = [p.text for p in test_prompts]
        padded = [c.rstrip() + "".join(PADDING) for c in plain]
        padding[name] = (rm.score(texts, padded) - rm.score(texts, plain)).mean().item()
    plain = [row[0] for row in pool["completions"]]
    padded = [c.rstrip() + "".join(PADDING) for c in plain]
    padding["gold"] = (torch.tensor([g.gold for g in judge_many(test_prompts, padded)])
                       - torch.tensor([g.gold for g in judge_many(test_prompts, plain)])).mean().item()

    table = {"agreement_with_gold": agreement, "length_explains": explains, "padding_gain": padding,
             "alpha_matched": alpha_matched, "runs": []}
    for seed in args.seeds:
        for name in ARMS:
            rm = rms["verbose_rm" if name.startswith("verbose") else "gold_rm"]
            alpha = {"verbose_rm_penalty": ALPHA, "verbose_rm_matched": alpha_matched}.get(name, 0.0)

            def reward(prompts, completions, rm=rm, alpha=alpha):
                n_tokens = torch.tensor([len(tok(c, add_special_tokens=False)["input_ids"]) for c in completions])
                return rm.score(prompts, completions, batch_size=len(prompts)) - alpha * n_tokens

            cfg = replace(GroupConfig.tiny("grpo"), iterations=2 if smoke else 20, max_new_tokens=BUDGET,
                          unfinished_score=None, seed=seed, device="cpu")
            t = time.perf_counter()
            trainer = GroupTrainer(cfg, train_prompts, reference=reference, reward_fn=reward)
            hist = trainer.train(progress=False)
            e = evaluate_policy(trainer.policy, reference, tok, test_prompts, reward_fn=rm.score,
                                max_new_tokens=BUDGET, temperature=0.7)
            tokens = [len(tok(c, add_special_tokens=False)["input_ids"]) for c in e["completions"]]
            run = {"name": name, "seed": seed, "gold": e["gold"], "proxy": e["score"], "kl": e["kl"],
                   "length": e["length"], "seconds": round(time.perf_counter() - t, 1),
                   "samples": {"gold": [round(x, 5) for x in e["golds"]], "proxy": [round(x, 5) for x in e["scores"]],
                               "tokens": tokens},
                   "curves": {k: [round(float(x), 5) for x in hist[k]]
                              for k in ("objective/rm_score", "objective/gold", "objective/kl", "response/length")}}
            table["runs"].append(run)
            print(f"seed {seed} {name:19s} gold {run['gold']:+.3f} proxy {run['proxy']:+.3f} length {run['length']:5.1f} "
                  f"KL {run['kl']:5.2f} ({run['seconds']:.0f} s)", flush=True)
    for key in ("gold", "proxy"):     # every run's held-out samples pooled, length regressed out (length_controlled)
        for rm_name in ("gold_rm", "verbose_rm"):
            runs = [r for r in table["runs"] if r["name"].startswith(rm_name.split("_")[0])] if key == "proxy" else table["runs"]
            values = [x for r in runs for x in r["samples"][key]]
            lengths = [x for r in runs for x in r["samples"]["tokens"]]
            groups = [f"{r['name']}/{r['seed']}" for r in runs for _ in r["samples"][key]]
            table.setdefault("length_controlled", {})[f"{key}/{rm_name}" if key == "proxy" else key] = \
                length_controlled(values, lengths, groups)
            if key == "gold":
                break
    table["meta"] = {
        **table_meta("length_bias", argv, started), "seeds": args.seeds, "budget": BUDGET, "alpha": ALPHA,
        "train_prompts": len(train_prompts), "test_prompts": len(test_prompts)}
    write_json(args.out, table)
    print(f"agreement with gold: {agreement}; corr(length, score): {explains}; padding gain: {padding}")
    return table


if __name__ == "__main__":
    main()
