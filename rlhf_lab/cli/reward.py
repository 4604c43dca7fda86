"""The reward-model commands of ``rlhf-lab`` (notebook 03): train r_phi on ranked completions, and
convert a folder of the kit's older format.

    rlhf-lab reward              # Bradley-Terry reward model on the labels -> runs/reward_model
    rlhf-lab reward --labeler all --unit-std --out runs/rm-all
    rlhf-lab reward-convert runs/old-rm    # backbone + reward_head.safetensors -> a sequence classifier
    rlhf-lab reward-ensemble --members 4 --objective mean_minus_std --lam 1   # notebook 10 -> runs/reward_ensemble
    rlhf-lab grpo --reward-model runs/reward_ensemble   # RL against the ensemble's conservative reward

``reward`` trains and saves through `rlhf_lab.reward.save.train_and_save_reward_model`, the writer
the course chain uses too, so both write the same ``reward_config.json`` keys. The loss is InstructGPT's
(Ouyang et al. 2022, eq. 1): all C(K, 2) pairs of a prompt's ranking in one batch element.
"""
from __future__ import annotations

import dataclasses
import sys

from rlhf_lab.cli.options import add_common, command_line
from rlhf_lab.config import runs_dir
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.reward.ensemble import OBJECTIVES, train_ensemble
from rlhf_lab.reward.model import convert
from rlhf_lab.reward.save import train_and_save_reward_model
from rlhf_lab.reward.train import RewardConfig
from rlhf_lab.utils.artefacts import check_writable


def add_parsers(sub) -> None:
    p = sub.add_parser("reward", help="train the Bradley-Terry reward model on ranked completions (notebook 03)")
    p.add_argument("--labels", default=None, help="preference file (default: the shipped simulated labels)")
    p.add_argument("--labeler", default="sim-gold",
                   help="keep one labeler's rankings (default sim-gold; 'all' keeps every labeler)")
    p.add_argument("--backbone", default="tiny", help="transformer under the scalar head (default tiny)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the labels (default 2)")
    p.add_argument("--unit-std", action="store_true",
                   help="scale the reward to std 1 over the training completions (the mean is always set to 0)")
    p.add_argument("--out", help="output folder (default runs/reward_model)")
    add_common(p)
    p.set_defaults(run=run_reward)

    p = sub.add_parser("reward-ensemble", help="N reward models on bootstrap samples of the labels, combined by a "
                                               "conservative objective (notebook 10)")
    p.add_argument("--labels", default=None, help="preference file (default: the shipped simulated labels)")
    p.add_argument("--labeler", default="sim-gold", help="keep one labeler's rankings (default sim-gold; 'all' keeps every labeler)")
    p.add_argument("--backbone", default="tiny", help="transformer under each member's scalar head (default tiny)")
    p.add_argument("--epochs", type=int, default=2, help="passes over each member's labels (default 2)")
    p.add_argument("--unit-std", action="store_true", help="scale each member's reward to std 1 over its training completions")
    p.add_argument("--members", type=int, default=4, help="reward models in the ensemble, seeds seed .. seed + N - 1 (default 4)")
    p.add_argument("--objective", default="mean", choices=OBJECTIVES,
                   help="how the members' scores combine: mean, min, or mean - lambda x std (default mean)")
    p.add_argument("--lam", type=float, default=1.0, help="lambda of mean_minus_std (default 1)")
    p.add_argument("--no-bootstrap", dest="bootstrap", action="store_false",
                   help="train every member on all the labels (they then differ by seed only)")
    p.add_argument("--out", help="output folder (default runs/reward_ensemble)")
    add_common(p)
    p.set_defaults(run=run_reward_ensemble)

    p = sub.add_parser("reward-convert", help="rewrite a reward-model folder of the kit's older format (backbone + "
                                              "reward_head.safetensors) as a transformers sequence classifier")
    p.add_argument("folder", help="the reward model's folder (rewritten in place, atomically)")
    p.set_defaults(run=run_reward_convert)


def run_reward(args) -> None:
    """Train r_phi on one labeler's rankings (or all) and save it to --out."""
    cfg = RewardConfig(backbone=args.backbone, epochs=args.epochs, seed=args.seed, device=args.device,
                       normalise_std=args.unit_std)   # checks every value before any work
    out = check_writable(args.out or runs_dir("reward_model", create=False))
    records = _records(args)
    _, hist = train_and_save_reward_model(cfg, records, out, command=command_line(args),
                                          labels=args.labels or "shipped", labeler=args.labeler,
                                          progress=sys.stderr.isatty())
    val = (f"validation accuracy {hist.val_accuracy[-1]:.3f}, loss {hist.val_loss[-1]:.3f}" if hist.val_accuracy
           else "no validation prompts (all records share one prompt)")
    print(f"saved to {out}: {val}, {hist.wall_time_s:.0f} s")


def run_reward_ensemble(args) -> None:
    """Train ``--members`` reward models (`reward.ensemble.train_ensemble`) and save them as one ensemble folder."""
    if args.members < 2:
        raise ValueError(f"--members must be at least 2 for an ensemble, got {args.members} (one reward model: rlhf-lab reward)")
    if not 0 <= args.lam < float("inf"):
        raise ValueError(f"--lam must be a finite number >= 0, got {args.lam}")
    cfg = RewardConfig(backbone=args.backbone, epochs=args.epochs, seed=args.seed, device=args.device,
                       normalise_std=args.unit_std)   # checks every value before any work
    out = check_writable(args.out or runs_dir("reward_ensemble", create=False))
    records = _records(args)
    ensemble, hists = train_ensemble(cfg, records, n_members=args.members, bootstrap_labels=args.bootstrap,
                                     objective=args.objective, lam=args.lam, progress=sys.stderr.isatty())
    accuracy = [h.val_accuracy[-1] if h.val_accuracy else None for h in hists]
    ensemble.save_pretrained(out, extra={"command": command_line(args), "labels": args.labels or "shipped",
                                         "labeler": args.labeler, "bootstrap": args.bootstrap,
                                         "reward_config": dataclasses.asdict(cfg), "val_accuracy": accuracy})
    shown = ", ".join("-" if a is None else f"{a:.3f}" for a in accuracy)
    print(f"saved {args.members} members to {out} (objective {args.objective}"
          f"{f', lambda {args.lam:g}' if args.objective == 'mean_minus_std' else ''}): validation accuracy {shown}, "
          f"{sum(h.wall_time_s for h in hists):.0f} s")


def _records(args) -> list:
    """The rankings --labels and --labeler select, or an error that says how to get some."""
    labeler = None if args.labeler == "all" else args.labeler
    records = load_preferences(args.labels, labeler=labeler)
    if not records:
        raise ValueError(f"no rankings by labeler {args.labeler!r} in {args.labels or 'the shipped labels'}; "
                         f"--labeler all keeps every labeler")
    return records


def run_reward_convert(args) -> None:
    path = convert(args.folder)
    print(f"{path}: a sequence-classification reward model (AutoModelForSequenceClassification, num_labels=1)")
