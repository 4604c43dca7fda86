"""Notebook 05's beta, measured: PPO at several KL coefficients, three seeds each, on the cpu chain.

    python -m benchmarks.beta_frontier                       # the committed table, ~7 min on 2 cores
    python -m benchmarks.beta_frontier --smoke --out /tmp/f.json   # two betas, one seed, 2 iterations

Each run is notebook 05's (PPOConfig's cpu preset on the cpu chain: 20 iterations of 32 episodes,
the shipped reward model `tiny-rm`, 48 new tokens) with only beta and the seed changed. Every policy
is read on the same 128 held-out prompts (openings and instructions) with the same sampling seed,
at checkpoints every 5 iterations and at the end, so that a run is a path in (KL, gold) and not
only its last point; the SFT model is read the same way. Beside the held-out points the table
keeps each run's training curves (the dashboard's score, gold and KL per iteration).

Notebook 05 plots the frontier from this table (mean +- standard error over seeds) and notebook 07
tests Gao et al.'s reading that the KL penalty acts like early stopping against its beta = 0
checkpoints. Writes ``--out`` (default data/beta_frontier.json) atomically and prints the table.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import table_meta
from rlhf_lab import course
from rlhf_lab.config import get_profile, set_seed
from rlhf_lab.evaluation import evaluate_policy, frontier_by_beta
from rlhf_lab.lm.models import load_model
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.reward.model import load_reward_model
from rlhf_lab.utils.artefacts import write_json
from rlhf_lab.world.reviews import ReviewWorld

BETAS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
SEEDS = [0, 1, 2]
EVERY = 5                     # held-out checkpoints every EVERY iterations
KEEP = ("gold", "gold_stderr", "score", "kl", "length", "finished", "well_formed_rate", "on_topic_rate")
CURVES = ("objective/rm_score", "objective/gold", "objective/kl")
OUT = Path(__file__).resolve().parents[1] / "data" / "beta_frontier.json"


def point(e: dict, iteration: int) -> dict:
    """The numbers of one held-out evaluation that the table keeps (no texts)."""
    out = {k: round(float(e[k]), 5) for k in KEEP}
    out["instruction_gold"] = round(float(e["by_kind"]["instruction"]["gold"]), 5)
    return {"iteration": iteration, **out}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", type=float, nargs="+", default=BETAS)
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--iterations", type=int, default=None, help="default: the cpu preset's (20)")
    parser.add_argument("--every", type=int, default=EVERY, help="held-out checkpoints every N iterations")
    parser.add_argument("--smoke", action="store_true", help="betas 0 and 0.05, seed 0, 2 iterations, 16 prompts")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.smoke:
        args.betas, args.seeds, args.iterations, args.every = [0.0, 0.05], [0], 2, 1
    if min(args.betas) < 0:
        parser.error(f"--betas must be at least 0, got {args.betas}")
    if args.iterations is not None and args.iterations < 1:
        parser.error(f"--iterations must be at least 1, got {args.iterations}")
    if args.every < 1:
        parser.error(f"--every must be at least 1, got {args.every}")

    profile = get_profile("cpu")
    course.ensure(profile)
    world = ReviewWorld(0)
    n_train, n_test = (16, 16) if args.smoke else (512, 2 * profile.n_eval_prompts)
    train_prompts = world.prompts(n_train, kind="mixed", split="train")
    test_prompts = world.prompts(n_test, kind="mixed", split="test")
    base = course.preset(profile, PPOConfig, **({"iterations": args.iterations} if args.iterations else {}))
    reference, tok = load_model(base.model, role="reference", device="cpu")
    reward_model = load_reward_model(base.reward_model, device="cpu")

    def evaluate(policy, iteration):
        return point(evaluate_policy(policy, reference, tok, test_prompts, reward_fn=reward_model.score,
                                     max_new_tokens=base.max_new_tokens, temperature=base.temperature), iteration)

    started = time.perf_counter()
    table = {"sft": evaluate(reference, 0), "runs": []}
    stops = sorted({*range(args.every, base.iterations + 1, args.every), base.iterations})
    for beta in args.betas:
        for seed in args.seeds:
            set_seed(seed)
            t = time.perf_counter()
            trainer = PPOTrainer(replace(base, kl_coef=beta, seed=seed), train_prompts, reference=reference,
                                 reward_model=reward_model)
            path = []
            for stop in stops:
                trainer.train(iterations=stop, progress=False)
                path.append(evaluate(trainer.policy, stop))
            curves = {k: [round(float(v), 5) for v in trainer.history[k]] for k in CURVES}
            table["runs"].append({"beta": beta, "seed": seed, "final": path[-1], "path": path, "curves": curves,
                                  "seconds": round(time.perf_counter() - t, 1)})
            print(f"beta {beta:<5g} seed {seed}: gold {path[-1]['gold']:+.3f}  r_phi {path[-1]['score']:+.3f}  "
                  f"KL {path[-1]['kl']:5.2f}  ({time.perf_counter() - t:.0f} s)", flush=True)
    table["meta"] = {
        **table_meta("beta_frontier", argv, started), "iterations": base.iterations,
        "episodes_per_iteration": base.batch_size, "max_new_tokens": base.max_new_tokens,
        "train_prompts": len(train_prompts), "test_prompts": len(test_prompts), "betas": args.betas,
        "seeds": args.seeds, "reward_model": str(base.reward_model), "model": str(base.model)}
    write_json(args.out, table)

    print(f"\n{'beta':>6s} {'KL':>15s} {'r_phi':>15s} {'gold':>15s} {'gold (instr.)':>15s} {'formed':>7s}")
    s = table["sft"]
    print(f"{'SFT':>6s} {s['kl']:15.2f} {s['score']:15.3f} {s['gold']:15.3f} {s['instruction_gold']:15.3f} "
          f"{s['well_formed_rate']:7.0%}")
    columns = [frontier_by_beta(table, k) for k in ("kl", "score", "gold", "instruction_gold", "well_formed_rate")]
    for beta in sorted(set(args.betas)):
        print(f"{beta:6g} " + " ".join(f"{c[beta][0]:7.3f} +- {c[beta][1]:5.3f}" for c in columns[:-1])
              + f" {columns[-1][beta][0]:7.0%}")
    print(f"(mean +- s.e. over seeds {args.seeds}; {len(test_prompts)} held-out prompts; "
          f"{table['meta']['seconds']} s; written to {args.out})")
    return table


if __name__ == "__main__":
    main()
