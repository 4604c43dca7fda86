"""PPO's token budget on the cpu profile: 24 against 48 new tokens, the same runs otherwise.

    python -m benchmarks.ppo_budget [--budgets 24 48] [--seeds 0 1 2]

At 24 tokens about a quarter of the SFT model's answers end unfinished and score PPOConfig's
`unfinished_score` (-1), which rewards brevity for its own sake and lowers the SFT baseline; at 48 it
finishes them. Each run is notebook 05's (PPOConfig.tiny on the cpu chain, 20 iterations of 32
episodes) with only the budget changed; every policy is evaluated at 48 tokens on the same 128
held-out prompts, so the table compares the policies, not the budgets they are read at. Prints
the median seconds per run and the mean +- standard error over seeds of gold, r_phi, KL, length,
the finished share (answers with an EOS) and the well-formed rate (about 2 minutes per budget on 2
CPU cores).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace

from rlhf_lab import course
from rlhf_lab.config import get_profile, set_seed
from rlhf_lab.evaluation import evaluate_policy
from rlhf_lab.lm.models import load_model
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.reward.model import load_reward_model
from rlhf_lab.world.reviews import ReviewWorld

COLUMNS = ("gold", "score", "kl", "length", "finished", "well_formed_rate")
EVAL_TOKENS = 48


def mean_se(xs) -> str:
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
    return f"{statistics.mean(xs):+7.3f} +- {se:.3f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[24, 48])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    if min(args.budgets) < 1:
        parser.error(f"--budgets must be at least 1 token, got {args.budgets}")
    profile = get_profile("cpu")
    course.ensure(profile)
    world = ReviewWorld(0)
    train_prompts = world.prompts(512, kind="mixed", split="train")
    test_prompts = world.prompts(2 * profile.n_eval_prompts, kind="mixed", split="test")
    base = course.preset(profile, PPOConfig)
    reference, tok = load_model(base.model, role="reference", device="cpu")
    reward_model = load_reward_model(base.reward_model, device="cpu")

    def evaluate(policy, budget=EVAL_TOKENS):
        return evaluate_policy(policy, reference, tok, test_prompts, reward_fn=reward_model.score,
                               max_new_tokens=budget, temperature=base.temperature)

    print(f"{'':22s} " + " ".join(f"{c:>16s}" for c in COLUMNS) + f" {'s/run':>6s}")
    for budget in args.budgets:   # the SFT model read at each budget: what "before" means there
        e = evaluate(reference, budget)
        print(f"SFT at {budget:2d} tokens        " + " ".join(f"{e[c]:+16.3f}" for c in COLUMNS))
    for budget in args.budgets:
        evals, seconds = [], []
        for seed in args.seeds:
            set_seed(seed)
            start = time.perf_counter()
            trainer = PPOTrainer(replace(base, max_new_tokens=budget, seed=seed), train_prompts,
                                 reference=reference, reward_model=reward_model)
            trainer.train(progress=False)
            seconds.append(time.perf_counter() - start)
            evals.append(evaluate(trainer.policy))
        print(f"PPO trained at {budget:2d}     " + " ".join(f"{mean_se([e[c] for e in evals]):>16s}" for c in COLUMNS)
              + f" {statistics.median(seconds):6.0f}")
    print(f"(policies read at {EVAL_TOKENS} tokens on {len(test_prompts)} held-out prompts; "
          f"mean +- s.e. over seeds {args.seeds})")


if __name__ == "__main__":
    main()
