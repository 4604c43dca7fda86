"""The reward-model commands of ``rlhf-lab`` (notebook 03): train r_phi on ranked completions, and
convert a folder of the kit's older format.

    rlhf-lab reward              # Bradley-Terry reward model on the labels -> runs/reward_model
    rlhf-lab reward --labeler all --unit-std --out runs/rm-all
    rlhf-lab reward-convert runs/old-rm    # backbone + reward_head.safetensors -> a sequence classifier

``reward`` trains and saves through `rlhf_lab.reward.save.train_and_save_reward_model`, the writer
the course chain uses too, so both write the same ``reward_config.json`` keys. The loss is InstructGPT's
(Ouyang et al. 2022, eq. 1): all C(K, 2) pairs of a prompt's ranking in one batch element.
"""
from __future__ import annotations

import sys

from rlhf_lab.cli.options import add_common, command_line
from rlhf_lab.config import runs_dir
from rlhf_lab.labels.preferences import load_preferences
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

    p = sub.add_parser("reward-convert", help="rewrite a reward-model folder of the kit's older format (backbone + "
                                              "reward_head.safetensors) as a transformers sequence classifier")
    p.add_argument("folder", help="the reward model's folder (rewritten in place, atomically)")
    p.set_defaults(run=run_reward_convert)


def run_reward(args) -> None:
    """Train r_phi on one labeler's rankings (or all) and save it to --out."""
    cfg = RewardConfig(backbone=args.backbone, epochs=args.epochs, seed=args.seed, device=args.device,
                       normalise_std=args.unit_std)   # checks every value before any work
    out = check_writable(args.out or runs_dir("reward_model", create=False))
    labeler = None if args.labeler == "all" else args.labeler
    records = load_preferences(args.labels, labeler=labeler)
    if not records:
        raise ValueError(f"no rankings by labeler {args.labeler!r} in {args.labels or 'the shipped labels'}; "
                         f"--labeler all keeps every labeler")
    _, hist = train_and_save_reward_model(cfg, records, out, command=command_line(args),
                                          labels=args.labels or "shipped", labeler=args.labeler,
                                          progress=sys.stderr.isatty())
    val = (f"validation accuracy {hist.val_accuracy[-1]:.3f}, loss {hist.val_loss[-1]:.3f}" if hist.val_accuracy
           else "no validation prompts (all records share one prompt)")
    print(f"saved to {out}: {val}, {hist.wall_time_s:.0f} s")


def run_reward_convert(args) -> None:
    path = convert(args.folder)
    print(f"{path}: a sequence-classification reward model (AutoModelForSequenceClassification, num_labels=1)")
