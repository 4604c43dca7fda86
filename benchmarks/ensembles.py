"""Notebook 10's ensemble measurement (groundwork): conservative rewards from reward-model ensembles, against gold.

    python -m benchmarks.ensembles                            # the table, ~12 min on 2 cores
    python -m benchmarks.ensembles --smoke --out /tmp/e.json  # one seed, a few steps

Four reward models are trained by the kit's grouped loss (`RewardConfig.tiny`, unit std) on bootstrap samples of
the shipped sim-gold rankings' training prompts, each from its own seed; all start from the SFT backbone. On
held-out ranked groups each member's pairwise accuracy is read against the labels, and on the SFT model's
held-out samples the members' disagreement (the std of their scores) and how much their errors against gold
agree (the mean correlation between members of score minus a least-squares fit of gold: shared errors no
ensemble can see). Then, for 3 seeds, GRPO (notebook 08's preset, beta = 0.01 so that over-optimisation can
show, 40 iterations of 32 episodes) optimises

* ``single``: member 0 alone; ``mean``, ``min``, ``mean_minus_std`` (lambda = 1): the ensemble's objectives,

and every policy is read every 10 iterations on the same 64 held-out prompts: gold, the optimised reward, KL,
and the members' disagreement on the policy's own samples. Writes ``--out`` (default data/ensembles.json).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path


from benchmarks import parse_seeds, seeds_parser, table_meta
from rlhf_lab import course
from rlhf_lab.config import get_profile, set_seed
from rlhf_lab.evaluation import evaluate_policy, pairwise_accuracy, sample_n
from rlhf_lab.labels.preferences import load_preferences, split_by_prompt
from rlhf_lab.lm.models import load_model
from rlhf_lab.reward.ensemble import OBJECTIVES, RewardEnsemble, disagreement, shared_error, train_ensemble
from rlhf_lab.reward.train import RewardConfig, as_groups
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.utils.artefacts import write_json
from rlhf_lab.world.reviews import ReviewWorld

SEEDS = [0, 1, 2]
MEMBERS = 4
LAM = 1.0
EVERY = 10
OUT = Path(__file__).resolve().parents[1] / "data" / "ensembles.json"


def grpo_checkpoints(rm, seed: int, stops, train_prompts, test_prompts, reference, tok, extra=None) -> list[dict]:
    """The tables' GRPO run (notebook 08's preset, beta = 0.01) against ``rm``, read on ``test_prompts`` at each
    iteration of ``stops``: gold, the optimised reward, KL, length, and ``extra(evaluation)``'s fields."""
    cfg = replace(GroupConfig.tiny("grpo"), beta=0.01, iterations=stops[-1], seed=seed, device="cpu")
    set_seed(seed)
    trainer = GroupTrainer(cfg, train_prompts, reference=reference, reward_model=rm)
    path = []
    for stop in stops:
        trainer.train(iterations=stop, progress=False)
        e = evaluate_policy(trainer.policy, reference, tok, test_prompts, reward_fn=rm.score,
                            max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
        path.append({"iteration": stop, "gold": e["gold"], "proxy": e["score"], "kl": e["kl"], "length": e["length"],
                     **(extra(e) if extra else {})})
    return path


def main(argv=None) -> dict:
    args = parse_seeds(seeds_parser(__doc__.splitlines()[0], SEEDS, OUT, "seed 0, 2 members, 2 iterations, 8 prompts"), argv)
    smoke = args.smoke
    profile = get_profile("cpu")
    chain = course.ensure(profile)
    world = ReviewWorld(0)
    train_prompts = world.prompts(16 if smoke else 512, kind="mixed", split="train")
    test_prompts = world.prompts(8 if smoke else 64, kind="mixed", split="test")
    reference, tok = load_model(chain["sft"], role="reference", device="cpu")
    started = time.perf_counter()

    records = load_preferences(chain["labels"], labeler="sim-gold")
    train_records, val_records = split_by_prompt(records, val_fraction=0.2)
    if smoke:
        train_records, val_records = train_records[:32], val_records[:16]
    cfg = replace(RewardConfig.tiny(), normalise_std=True, epochs=1 if smoke else 2, device="cpu")
    ensemble, _ = train_ensemble(cfg, train_records, n_members=2 if smoke else MEMBERS, val_records=[], progress=False)
    val_groups = as_groups(val_records)
    accuracy = [pairwise_accuracy(m, val_groups) for m in ensemble.members]
    pool = sample_n(reference, tok, test_prompts, n=4, seed=1)
    flat_p = [p.text for p, row in zip(test_prompts, pool["completions"]) for _ in row]
    flat_c = [c for row in pool["completions"] for c in row]
    member_scores = ensemble.member_scores(flat_p, flat_c)
    table = {"members": {"val_accuracy": accuracy,
                         "disagreement_sft": disagreement(member_scores),
                         "shared_error": shared_error(member_scores, pool["gold"].flatten().float())},
             "runs": []}
    stops = sorted({*range(EVERY, (2 if smoke else 40) + 1, EVERY), 2 if smoke else 40})
    for seed in args.seeds:
        for objective in ("single", *OBJECTIVES):
            rm = RewardEnsemble([ensemble.members[0]]) if objective == "single" else ensemble.with_objective(objective, LAM)
            t = time.perf_counter()
            path = grpo_checkpoints(rm, seed, stops, train_prompts, test_prompts, reference, tok,
                                    extra=lambda e: {"disagreement": disagreement(
                                        ensemble.member_scores([p.text for p in test_prompts], e["completions"]))})
            table["runs"].append({"objective": objective, "seed": seed, "path": path,
                                  "seconds": round(time.perf_counter() - t, 1)})
            last = path[-1]
            print(f"seed {seed} {objective:15s} gold {last['gold']:+.3f} proxy {last['proxy']:+.3f} KL {last['kl']:5.2f} "
                  f"peak gold {max(p['gold'] for p in path):+.3f} ({time.perf_counter() - t:.0f} s)", flush=True)
    table["meta"] = {
        **table_meta("ensembles", argv, started), "seeds": args.seeds, "members": len(ensemble.members),
        "lam": LAM, "beta": 0.01, "every": EVERY, "train_prompts": len(train_prompts), "test_prompts": len(test_prompts)}
    write_json(args.out, table)
    print(f"members: {table['members']}")
    return table


if __name__ == "__main__":
    main()
