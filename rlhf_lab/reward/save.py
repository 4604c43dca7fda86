"""Train a reward model and write its folder: the one writer of a reward model's metadata.

InstructGPT's step 2 (Ouyang et al. 2022, §3.5): r_phi is the SFT model with a scalar head, trained
on ranked completions with the Bradley-Terry loss (`rlhf_lab.reward.train`), then saved as a
transformers sequence classifier (`rlhf_lab.reward.model.RewardModel.save_pretrained`).

``rlhf-lab reward`` and the course chain's reward-model link (`rlhf_lab.course`) both make one
here, so their ``reward_config.json`` hold the same keys (`METADATA_KEYS`): the model card, a
test or a student comparing the chain's reward model with their own finds the same fields in both.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from rlhf_lab.config import get_device, set_seed
from rlhf_lab.reward.model import RewardModel
from rlhf_lab.reward.train import History, RewardConfig, train_reward_model

METADATA_KEYS = ("command", "labels", "labeler", "n_records", "backbone", "seed", "epochs", "unit_std", "config",
                 "val_accuracy", "val_loss", "reward_std", "wall_time_s")
"""What ``reward_config.json`` says about a reward model the kit trained (with "kind" and "format",
which `RewardModel.save_pretrained` adds). backbone, seed, epochs and unit_std repeat fields of
"config" at the top, where the model card and the shipped tiny-rm's file have them."""


def reward_metadata(cfg: RewardConfig, n_records: int, hist: History, command: str, labels: str,
                    labeler: str) -> dict:
    """How a reward model was made: `METADATA_KEYS`, from its config, its labels and its training."""
    return {"command": command, "labels": labels, "labeler": labeler, "n_records": n_records,
            "backbone": cfg.backbone, "seed": cfg.seed, "epochs": cfg.epochs, "unit_std": cfg.normalise_std,
            "config": dataclasses.asdict(cfg),
            "val_accuracy": hist.val_accuracy[-1] if hist.val_accuracy else None,   # None: no validation prompts
            "val_loss": hist.val_loss[-1] if hist.val_loss else None,
            "reward_std": hist.reward_std, "wall_time_s": round(hist.wall_time_s, 1)}


def train_and_save_reward_model(cfg: RewardConfig, records, out, command: str, labels: str, labeler: str,
                                progress: bool = True) -> tuple[RewardModel, History]:
    """Train r_phi on ``records`` (`train_reward_model`) from ``cfg.backbone`` and save it to ``out``
    (atomically) with `reward_metadata`. ``command``, ``labels`` and ``labeler`` say where it came
    from. Returns ``(reward_model, history)``; a diverged run raises before anything is saved."""
    set_seed(cfg.seed)   # the head's initialisation, as the shipped tiny-rm was made
    rm = RewardModel.from_backbone(cfg.backbone, device=get_device(cfg.device, verbose=False))
    rm, hist = train_reward_model(cfg, records, rm=rm, progress=progress)
    rm.save_pretrained(Path(out), extra=reward_metadata(cfg, len(records), hist, command, labels, labeler))
    return rm, hist
