"""Notebook 09's comparison, measured: RL on a verifier, rejection sampling and its control, three seeds.

    python -m benchmarks.verifier_rl                            # the committed table, ~15 min on 2 cores
    python -m benchmarks.verifier_rl --smoke --out /tmp/v.json  # one seed, a few steps of each

For each seed: the cpu chain's SFT model is taught the specification form by notebook 09's short
fine-tuning (`FineTuneConfig.tiny()` on 2,000 spec demonstrations the grammar writes; the seed sets
the batch order), and that model (the "SFT" of this table) is the start and the frozen reference of
every method, all on the same 512 training specifications and the same number of sampled completions
(1,280: 40 iterations x 32 = 4 rounds x 40 prompts x K = 8):

* ``grpo``: GRPO on the verifier's 0/1 reward with TRL's defaults, beta = 0 and the DAPO loss, K = 8;
* ``grpo_kl``: the same with beta = 0.05 x k3 in the loss (GRPO's KL), nothing else changed;
* ``rft``: rejection-sampling fine-tuning, keep the passing completions (`RFTConfig.tiny()`);
* ``rft_random``: its control: in each round as many completions as the selected run kept in that round,
  drawn at random among the round's samples (the same data size and fine-tuning steps, no selection);
* ``grpo_rm``: GRPO (beta = 0, DAPO) on a reward model trained on the verifier's own labels (2,048 more
  samples of the start model on 256 training specifications, up to 4 passing-above-failing pairs each).

Every policy is read on the same 64 held-out specifications (films never seen in training), 64 samples
each with the same sampling seed: pass@k for k = 1 ... 64 (Chen et al.'s estimator), each constraint's
rate, the gold judge's score of all and of the passing completions (also per asked stars: gold rewards positive
sentiment, so the mix of stars that pass moves it), their length; plus one sample per
specification for the KL to the start (`evaluate_policy`). The RL runs keep their training curves
(pass rate, all-pass and all-fail groups, entropy, KL, gold, length); the share of completions that name a
film at all is kept too (the verifier lets a review name none). Writes ``--out`` (default
data/verifier_rl.json) atomically and prints the table.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import parse_seeds, seeds_parser, table_meta
from rlhf_lab import course
from rlhf_lab.config import get_profile, set_seed
from rlhf_lab.evaluation import evaluate_policy
from rlhf_lab.verifiable import by_method, pass_at_k_curve
from rlhf_lab.lm.finetune import FineTuneConfig, fine_tune
from rlhf_lab.lm.models import load_model, save_policy
from rlhf_lab.reward.model import RewardModel
from rlhf_lab.reward.train import RewardConfig, train_reward_model
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.rl.rejection_sampling import RFTConfig, rejection_sampling_finetune, sample_verdicts, verdict_groups
from rlhf_lab.utils.artefacts import write_json
from rlhf_lab.world.specs import CONSTRAINTS, SpecReward, demonstrations, films_named, specs

SEEDS = [0, 1, 2]
KS = [1, 2, 4, 8, 16, 32, 64]
METHODS = ("sft", "grpo", "grpo_kl", "rft", "rft_random", "grpo_rm")
CURVES = ("objective/scores", "objective/rm_score", "groups/all_pass", "groups/all_fail", "objective/entropy",
          "objective/kl", "objective/gold", "response/length")
OUT = Path(__file__).resolve().parents[1] / "data" / "verifier_rl.json"


def grpo_config(seed: int, beta: float = 0.0, smoke: bool = False) -> GroupConfig:
    """Notebook 09's GRPO: K = 8, 40 iterations of 32 episodes, DAPO's token mean, k3 in the loss when beta > 0,
    the verifier's own verdict on an unfinished review (no separate unfinished score)."""
    return GroupConfig(algo="grpo", kl_in="loss", kl_estimator="k3", beta=beta, loss_type="dapo", num_generations=8,
                       batch_size=32, mini_batch_size=16, iterations=2 if smoke else 40, max_new_tokens=48,
                       unfinished_score=None, seed=seed)


def read(policy, reference, tok, test_specs, n: int, ks) -> dict:
    """One policy on the held-out specifications: pass@k, constraint rates, gold of all and passing, KL."""
    v = sample_verdicts(policy, tok, test_specs, n, seed=1234)
    passed, stars = v["passed"], torch.tensor([s.stars for s in test_specs])
    e = evaluate_policy(policy, reference, tok, [s.prompt for s in test_specs], reward_fn=SpecReward(),
                        max_new_tokens=48, temperature=0.7)
    any_pass = passed.any()
    return {"pass_at_k": {str(k): round(x, 5) for k, x in pass_at_k_curve(passed.tolist(), ks).items()},
            "checks": {c: round(v["checks"][c].float().mean().item(), 5) for c in CONSTRAINTS},
            "gold": round(v["gold"].mean().item(), 5),
            "gold_passing": round(v["gold"][passed].mean().item(), 5) if any_pass else None,
            "gold_passing_by_stars": {str(st): round(v["gold"][passed & (stars == st)[:, None]].mean().item(), 5)
                                      for st in range(1, 6) if (passed & (stars == st)[:, None]).any()},
            "names_film": round(sum(bool(films_named(c)) for row in v["completions"] for c in row) / passed.numel(), 5),
            "length": round(v["length"].mean().item(), 3),
            "length_passing": round(v["length"][passed].mean().item(), 3) if any_pass else None,
            "kl": round(float(e["kl"]), 5),
            "examples": [v["completions"][i][0] for i in range(min(4, len(test_specs)))]}


def main(argv=None) -> dict:
    parser = seeds_parser(__doc__.splitlines()[0], SEEDS, OUT, "seed 0, a few steps of everything, 4 held-out specs")
    parser.add_argument("--samples", type=int, default=64, help="samples per held-out specification (pass@k's n)")
    args = parse_seeds(parser, argv)
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    smoke = args.smoke
    if smoke:
        args.samples = 4
    ks = [k for k in KS if k <= args.samples]

    profile = get_profile("cpu")
    chain = course.ensure(profile, "sft")
    base, tok = load_model(chain["sft"], role="policy", device="cpu")
    train_specs, label_specs = specs(16 if smoke else 512, "train"), specs(8 if smoke else 256, "train", seed=1)
    test_specs = specs(4 if smoke else 64, "test")
    demos = demonstrations(64 if smoke else 2000)
    ft = FineTuneConfig.tiny()
    ft_steps = 2 if smoke else ft.steps
    rft_sizes = dict(rounds=1, prompts_per_round=4) if smoke else {}
    started, table = time.perf_counter(), {"runs": []}
    for seed in args.seeds:
        t0 = time.perf_counter()
        start = copy.deepcopy(base)
        fine_tune(start, tok, demos, FineTuneConfig(steps=ft_steps, lr=ft.lr, batch_size=ft.batch_size, seed=seed),
                  progress=False)
        reference = copy.deepcopy(start).requires_grad_(False).eval()
        run = {"seed": seed, "fine_tune_seconds": round(time.perf_counter() - t0, 1),
               "sft": read(start, reference, tok, test_specs, args.samples, ks), "curves": {}, "seconds": {}}
        for name in METHODS[1:]:
            t = time.perf_counter()
            set_seed(seed)
            policy = copy.deepcopy(start).requires_grad_(True)
            if name in ("grpo", "grpo_kl"):
                trainer = GroupTrainer(grpo_config(seed, 0.05 if name == "grpo_kl" else 0.0, smoke),
                                       [s.prompt for s in train_specs], policy=policy, tokenizer=tok,
                                       reference=reference, reward_fn=SpecReward())
                trainer.train(progress=False)
                run["curves"][name] = {k: [round(float(x), 5) for x in trainer.history[k]] for k in CURVES}
            elif name in ("rft", "rft_random"):
                cfg = RFTConfig(select="passing" if name == "rft" else "random", seed=seed, **rft_sizes)
                match = run["curves"]["rft"]["kept"] if name == "rft_random" else None   # the selected run's counts
                rows = rejection_sampling_finetune(train_specs, cfg, policy, tok, progress=False,
                                                   match=[int(x) for x in match] if match else None)
                run["curves"][name] = {k: [round(float(r[k]), 5) for r in rows]
                                       for k in ("episodes", "pass_rate", "groups/all_pass", "groups/all_fail",
                                                 "objective/entropy", "gold", "kept")}
            else:
                labels = sample_verdicts(start, tok, label_specs, 8, seed=seed)
                groups = verdict_groups(label_specs, labels["completions"], labels["passed"].tolist(), seed=seed)
                with tempfile.TemporaryDirectory() as folder:
                    save_policy(start, tok, Path(folder) / "start")
                    rm = RewardModel.from_backbone(str(Path(folder) / "start"))
                rm, rm_hist = train_reward_model(RewardConfig(seed=seed, epochs=1 if smoke else 2), groups, rm=rm,
                                                 progress=False)
                rm.eval().requires_grad_(False)
                trainer = GroupTrainer(grpo_config(seed, 0.0, smoke), [s.prompt for s in train_specs], policy=policy,
                                       tokenizer=tok, reference=reference, reward_model=rm,
                                       reward_fn=lambda p, c: rm.score(p, c, batch_size=len(p)))
                trainer.train(progress=False)
                run["curves"][name] = {k: [round(float(x), 5) for x in trainer.history[k]] for k in CURVES
                                       if k in trainer.history.rows[0]}
                run["reward_model"] = {"pairs": len(groups), "label_pass_rate": round(labels["passed"].float().mean().item(), 4),
                                       "val_accuracy": round(rm_hist.val_accuracy[-1], 4) if rm_hist.val_accuracy else None}
            run[name] = read(policy, reference, tok, test_specs, args.samples, ks)
            run["seconds"][name] = round(time.perf_counter() - t, 1)
            print(f"seed {seed} {name:10s} pass@1 {run[name]['pass_at_k']['1']:.3f}  pass@{ks[-1]} "
                  f"{run[name]['pass_at_k'][str(ks[-1])]:.3f}  gold {run[name]['gold']:+.3f}  KL {run[name]['kl']:.2f}  "
                  f"({run['seconds'][name]:.0f} s)", flush=True)
        table["runs"].append(run)
    table["meta"] = {
        **table_meta("verifier_rl", argv, started), "seeds": args.seeds, "ks": ks, "samples": args.samples,
        "train_specs": len(train_specs), "test_specs": len(test_specs), "label_specs": len(label_specs),
        "episodes": grpo_config(0, smoke=smoke).iterations * 32, "model": str(chain["sft"]), "fine_tune_steps": ft_steps}
    write_json(args.out, table)
    print_table(table)
    return table


def print_table(table: dict) -> None:
    ks = table["meta"]["ks"]
    print(f"\n{'method':11s} " + " ".join(f"{'pass@' + str(k):>14s}" for k in (ks[0], ks[-1]))
          + f" {'gold':>14s} {'gold passing':>14s} {'KL':>13s}")
    for m in METHODS:
        cells = [by_method(table, m, "", k) for k in (ks[0], ks[-1])] + [by_method(table, m, x) for x in ("gold", "gold_passing", "kl")]
        print(f"{m:11s} " + " ".join(f"{a:7.3f} +- {b:4.3f}" for a, b in cells))
    print(f"(mean +- s.e. over seeds {table['meta']['seeds']}; {table['meta']['test_specs']} held-out specifications x "
          f"{table['meta']['samples']} samples; {table['meta']['seconds']} s)")


if __name__ == "__main__":
    main()
