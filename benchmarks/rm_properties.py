"""Notebook 10's evaluation question: which property of a reward model predicts the gold its policy reaches?

    python -m benchmarks.rm_properties                            # the table, ~20 min on 2 cores
    python -m benchmarks.rm_properties --smoke --out /tmp/p.json  # one seed, two reward models, a few steps

Eleven reward models, all by the kit's grouped loss on the shipped K = 4 tasks (`RewardConfig.tiny`, 2 epochs,
the raw Bradley-Terry scale so that calibration means something), all from the SFT backbone:

* ``all``: the gold persona's rankings of the 420 training prompts (notebook 03's reward model, retrained);
* ``100 prompts``, ``25 prompts``: the first 100 and 25 of them (notebook 07's fewer-label reward models);
* ``member 0`` .. ``member 3``: bootstrap samples of the 420, seeds 0-3 (notebook 10's ensemble members);
* ``verbose``: the same completions ranked by the length-loving labeler (`labelers.VERBOSE`);
* ``enthusiast``, ``concise``, ``focused``: the shipped labels of the other three personas.

Each is measured before any RL: pairwise accuracy on the gold persona's held-out labels (92 prompts, what a
reward-model benchmark reports), pairwise accuracy against the gold judge itself on the SFT model's samples
of 64 held-out prompts (4 each, every pair whose gold differs), the expected calibration error of
sigmoid(r_a - r_b) on the held-out labels, and the correlation of its score with length (words) and with gold
on those samples. Then, for 3 seeds, the same GRPO run optimises each (notebook 08's preset, beta = 0.01, 40
iterations of 32 episodes, 48 tokens: the ensemble table's budget), read at iterations 20 and 40 on the 64
held-out prompts. Beside them: the four members' error correlation against gold and how much of one member's
error variance their mean keeps. Writes ``--out`` (default data/rm_properties.json).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks import parse_seeds, seeds_parser, table_meta
from benchmarks.ensembles import grpo_checkpoints
from rlhf_lab import course
from rlhf_lab.config import get_profile, set_seed
from rlhf_lab.evaluation import calibration, correlation, pairwise_accuracy, sample_n, score_samples
from rlhf_lab.labels.labelers import VERBOSE, SimulatedLabeler, label_tasks, tasks_from_records
from rlhf_lab.labels.preferences import load_preferences, split_by_prompt
from rlhf_lab.lm.models import load_model
from rlhf_lab.reward.ensemble import bootstrap, error_variance_kept, shared_error
from rlhf_lab.reward.train import RewardConfig, train_reward_model
from rlhf_lab.utils.artefacts import write_json
from rlhf_lab.world.reviews import ReviewWorld

SEEDS = [0, 1, 2]
STOPS = (20, 40)
OUT = Path(__file__).resolve().parents[1] / "data" / "rm_properties.json"
PROPERTIES = ("label_accuracy", "gold_accuracy", "ece", "length_corr", "gold_corr")


def ece(rm, groups) -> float:
    """Expected calibration error of p(a > b) = sigmoid(r_a - r_b): the count-weighted mean gap between the
    predicted and the observed share in `evaluation.calibration`'s bins."""
    c = calibration(rm, groups)
    return sum(n * abs(p - o) for p, o, n in zip(c["predicted"], c["observed"], c["count"])) / sum(c["count"])


def gold_accuracy(scores: torch.Tensor, gold: torch.Tensor) -> float:
    """Share of the pairs within a prompt's samples (rows) whose gold differs that the scores order as gold does."""
    ds, dg = scores[:, :, None] - scores[:, None, :], gold[:, :, None] - gold[:, None, :]
    pairs = dg > 0
    return ((ds > 0) & pairs).sum().item() / pairs.sum().item()


def reward_models(train_records, records_by_labeler, tasks, smoke: bool) -> dict[str, list]:
    """The name and training records of each reward model (see the module doc)."""
    gold = train_records
    sets = {"all": gold, "100 prompts": gold[:100], "25 prompts": gold[:25]}
    sets.update({f"member {i}": bootstrap(gold, 1000 + i) for i in range(4)})
    sets["verbose"] = label_tasks(tasks, [SimulatedLabeler(VERBOSE, seed=0)])
    for persona in ("enthusiast", "concise", "focused"):
        sets[persona] = records_by_labeler[f"sim-{persona}"]
    return {k: sets[k] for k in ("all", "verbose")} if smoke else sets


def main(argv=None) -> dict:
    args = parse_seeds(seeds_parser(__doc__.splitlines()[0], SEEDS, OUT, "seed 0, 2 reward models, 2 iterations"), argv)
    smoke = args.smoke
    profile = get_profile("cpu")
    chain = course.ensure(profile)
    world = ReviewWorld(0)
    train_prompts = world.prompts(16 if smoke else 512, kind="mixed", split="train")
    test_prompts = world.prompts(8 if smoke else 64, kind="mixed", split="test")
    reference, tok = load_model(chain["sft"], role="reference", device="cpu")
    started = time.perf_counter()

    everyone = load_preferences(chain["labels"])
    records = [r for r in everyone if r.labeler == "sim-gold"]
    train_records, val_records = split_by_prompt(records, val_fraction=0.2)
    train_ids = {r.prompt_id for r in train_records}
    by_labeler = {lab: [r for r in everyone if r.labeler == lab and r.prompt_id in train_ids]
                  for lab in {r.labeler for r in everyone}}
    tasks = tasks_from_records(train_records, world.prompts(512, kind="mixed", split="train"))
    if smoke:
        train_records, val_records, tasks = train_records[:32], val_records[:16], tasks[:32]
    sets = reward_models(train_records, by_labeler, tasks, smoke)

    pool = sample_n(reference, tok, test_prompts, n=4, seed=1)
    gold = pool["gold"].float()
    words = torch.tensor([[len(c.split()) for c in row] for row in pool["completions"]], dtype=torch.float)
    table = {"reward_models": {}, "runs": []}
    rms, member_scores = {}, []
    for i, (name, data) in enumerate(sets.items()):
        cfg = replace(RewardConfig.tiny(), epochs=1 if smoke else 2, seed=int(name[-1]) if name.startswith("member") else 0,
                      eval_every=10**9, device="cpu")
        set_seed(cfg.seed)
        rm, _ = train_reward_model(cfg, data, val_records=[], progress=False)
        rms[name] = rm.eval().requires_grad_(False)
        s = score_samples(rm.score, test_prompts, pool["completions"])
        if name.startswith("member"):
            member_scores.append(s.flatten())
        table["reward_models"][name] = {
            "labels": len(data), "label_accuracy": pairwise_accuracy(rm, val_records), "ece": ece(rm, val_records),
            "gold_accuracy": gold_accuracy(s, gold), "length_corr": correlation(words.flatten(), s.flatten())["pearson"],
            "gold_corr": correlation(s.flatten(), gold.flatten())["pearson"]}
        print(f"{name:12s} " + " ".join(f"{k} {v:.3f}" for k, v in table["reward_models"][name].items()), flush=True)
    if member_scores:
        m = torch.stack(member_scores)
        table["members"] = {"shared_error": shared_error(m, gold), "error_variance_kept": error_variance_kept(m, gold)}

    stops = (2,) if smoke else STOPS
    for seed in args.seeds:
        for name, rm in rms.items():
            t = time.perf_counter()
            path = grpo_checkpoints(rm, seed, stops, train_prompts, test_prompts, reference, tok)
            table["runs"].append({"reward_model": name, "seed": seed, "path": path,
                                  "seconds": round(time.perf_counter() - t, 1)})
            print(f"seed {seed} {name:12s} " + "  ".join(f"it {p['iteration']}: gold {p['gold']:+.3f} KL {p['kl']:5.2f} "
                                                       f"len {p['length']:4.1f}" for p in path), flush=True)
    finals = {name: sum(r["path"][-1]["gold"] for r in table["runs"] if r["reward_model"] == name) / len(args.seeds)
              for name in rms}
    if len(rms) >= 3:
        table["predicts_gold"] = {k: correlation([table["reward_models"][n][k] for n in rms], [finals[n] for n in rms])
                                  for k in PROPERTIES}
    table["meta"] = {**table_meta("rm_properties", argv, started), "seeds": args.seeds, "beta": 0.01,
                     "stops": list(stops), "train_prompts": len(train_prompts), "test_prompts": len(test_prompts),
                     "val_prompts": len(val_records)}
    write_json(args.out, table)
    return table


if __name__ == "__main__":
    main()
