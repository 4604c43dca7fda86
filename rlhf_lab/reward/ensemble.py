"""Reward-model ensembles and conservative rewards (notebook 10).

A single reward model is confidently wrong where its data were thin. N reward models trained from different
seeds on bootstrap samples of the same labels disagree most there, and an optimiser can be kept away from
their disagreement (Coste et al. 2024, "Reward Model Ensembles Help Mitigate Overoptimization"): with member
scores r_1 .. r_N of one (prompt, completion),

    mean:            R = (1/N) sum_i r_i
    min:             R = min_i r_i                                  (worst-case optimisation)
    mean_minus_std:  R = mean - lambda * sqrt((1/N) sum_i (r_i - mean)^2)   (uncertainty-weighted)

The members share what they were initialised from (the SFT backbone, as Eisenstein et al. 2023's members
shared their pre-training), so they can share an error too, and then no combination of them sees it.

`RewardEnsemble` is one object the kit's trainers take as ``reward_model=`` (it has ``score``, ``eval`` and
``requires_grad_``) and TRL's trainers take through `rlhf_lab.reward.model.reward_function`. `save_pretrained`
writes each member as its own transformers ``AutoModelForSequenceClassification`` folder (``member-0`` ...)
beside one ``ensemble.json`` and one model card; `RewardEnsemble.from_pretrained` reads them back.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import torch.nn as nn

from rlhf_lab.config import ConfigError
from rlhf_lab.reward.model import SHIPPED_REWARD_MODEL, RewardModel, reward_model_path
from rlhf_lab.reward.train import RewardConfig, train_reward_model
from rlhf_lab.utils.artefacts import ArtefactError, atomic_dir, read_json, recover

OBJECTIVES = ("mean", "min", "mean_minus_std")
ENSEMBLE_FILE = "ensemble.json"


def conservative(scores: torch.Tensor, objective: str = "mean", lam: float = 1.0) -> torch.Tensor:
    """One reward per column of ``scores`` (N members, B completions): the members' mean, their minimum, or their
    mean minus ``lam`` times their standard deviation (over the members, population form: divided by N)."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if scores.dim() != 2 or scores.shape[0] < 1:
        raise ValueError(f"scores must be (members, completions), got shape {tuple(scores.shape)}")
    if not lam >= 0:
        raise ConfigError(f"lam must be at least 0, got {lam}")
    if objective == "mean":
        return scores.mean(0)
    if objective == "min":
        return scores.min(0).values
    return scores.mean(0) - lam * scores.std(0, correction=0)


class RewardEnsemble(nn.Module):
    """N reward models scored together, combined by ``objective`` (`conservative`)."""

    def __init__(self, members: list[RewardModel], objective: str = "mean", lam: float = 1.0):
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        conservative(torch.zeros(1, 1), objective, lam)        # checks objective and lam up front
        self.members, self.objective, self.lam = nn.ModuleList(members), objective, float(lam)

    def with_objective(self, objective: str, lam: float | None = None) -> "RewardEnsemble":
        """The same members (shared, not copied) under another objective."""
        return RewardEnsemble(list(self.members), objective, self.lam if lam is None else lam)

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def member_scores(self, prompts: list[str], completions: list[str], batch_size: int = 64) -> torch.Tensor:
        """(N, B): every member's r_phi of every (prompt, completion), on CPU."""
        return torch.stack([m.score(prompts, completions, batch_size=batch_size) for m in self.members])

    def score(self, prompts: list[str], completions: list[str], batch_size: int = 64) -> torch.Tensor:
        """The ensemble's reward (B,), as `RewardModel.score` returns one: what the trainers optimise."""
        return conservative(self.member_scores(prompts, completions, batch_size), self.objective, self.lam)

    def save_pretrained(self, path, extra: dict | None = None) -> Path:
        """``member-i/`` (each a transformers sequence-classifier folder, `RewardModel.save_pretrained`),
        ``ensemble.json`` and a README card, written whole and swapped in atomically."""
        meta = {"kind": "rlhf_lab.RewardEnsemble", "members": [f"member-{i}" for i in range(len(self.members))],
                "objective": self.objective, "lam": self.lam, **(extra or {})}
        with atomic_dir(path) as tmp:
            for i, m in enumerate(self.members):
                m.save_pretrained(tmp / f"member-{i}", extra={"ensemble_member": i})
            (tmp / ENSEMBLE_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False))
            (tmp / "README.md").write_text(_card(len(self.members), meta))
        return Path(path)

    @classmethod
    def from_pretrained(cls, path, device=None, objective: str | None = None, lam: float | None = None):
        """Read an ensemble folder; ``objective`` and ``lam`` override the saved ones."""
        path = recover(Path(path))
        hint = "Write one with RewardEnsemble.save_pretrained (notebook 10) or train_ensemble."
        meta = read_json(path / ENSEMBLE_FILE, "reward-model ensemble", hint)
        if not isinstance(meta, dict) or not meta.get("members"):
            raise ArtefactError(f"{path / ENSEMBLE_FILE} names no members. {hint}")
        members = [RewardModel.from_pretrained(path / name, device=device) for name in meta["members"]]
        return cls(members, objective or meta.get("objective", "mean"), meta.get("lam", 1.0) if lam is None else lam)


def disagreement(member_scores: torch.Tensor) -> float:
    """How much the members disagree: the std of their scores of each completion (population form), averaged over
    the completions of ``member_scores`` (N, B)."""
    return member_scores.std(0, correction=0).mean().item()


def errors_against(member_scores: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """(N, B): each member's error against gold: its scores minus their least-squares line on gold (what of its
    score gold does not explain, whatever its scale)."""
    gold = torch.as_tensor(gold, dtype=member_scores.dtype).flatten()
    x = torch.stack([gold, torch.ones_like(gold)], 1)
    return torch.stack([s - x @ torch.linalg.lstsq(x, s[:, None]).solution[:, 0] for s in member_scores])


def shared_error(member_scores: torch.Tensor, gold: torch.Tensor) -> float:
    """The mean correlation, over pairs of members, of their errors against gold (`errors_against`): 0 when each
    errs on its own, 1 when every member errs alike and no combination of them can see it."""
    e = errors_against(member_scores, gold)
    n = len(e)
    return ((torch.corrcoef(e).sum() - n) / (n * (n - 1))).item() if n > 1 else float("nan")


def error_variance_kept(member_scores: torch.Tensor, gold: torch.Tensor) -> float:
    """The variance of the members' mean error over the members' mean error variance: what averaging leaves of
    one member's error (1 / N for independent errors, 1 for identical ones)."""
    e = errors_against(member_scores, gold)
    return (e.mean(0).var() / e.var(1).mean()).item()


def load_reward(name: str = SHIPPED_REWARD_MODEL, device=None) -> RewardModel | RewardEnsemble:
    """A reward model or an ensemble by name ("tiny-rm" or a folder, `reward.model.reward_model_path`): a folder
    with an ``ensemble.json`` is read as a `RewardEnsemble`, any other as one `RewardModel`. What the trainers'
    ``reward_model=`` strings go through."""
    path = reward_model_path(name)
    if (recover(path) / ENSEMBLE_FILE).exists():
        return RewardEnsemble.from_pretrained(path, device=device)
    return RewardModel.from_pretrained(path, device=device)


def bootstrap(records: list, seed: int) -> list:
    """A bootstrap sample of ``records`` (as many, drawn with replacement), fixed by ``seed``."""
    rng = random.Random(seed)
    return [records[rng.randrange(len(records))] for _ in records]


def train_ensemble(cfg: RewardConfig, records, n_members: int = 4, val_records=None, bootstrap_labels: bool = True,
                   objective: str = "mean", lam: float = 1.0, progress: bool = True) -> tuple[RewardEnsemble, list]:
    """N reward models by the kit's grouped loss: member i with seed cfg.seed + i (its head, batch order and
    split) on its own bootstrap sample of ``records`` (``bootstrap_labels``), all from cfg.backbone.
    Returns (ensemble, the members' histories)."""
    if n_members < 1:
        raise ConfigError(f"n_members must be at least 1, got {n_members}")
    records = list(records)
    members, histories = [], []
    for i in range(n_members):
        member_cfg = type(cfg)(**{**cfg.__dict__, "seed": cfg.seed + i})
        data = bootstrap(records, cfg.seed + 1000 + i) if bootstrap_labels else records
        rm, hist = train_reward_model(member_cfg, data, val_records=val_records, progress=progress)
        members.append(rm.eval())
        histories.append(hist)
    return RewardEnsemble(members, objective, lam), histories


def _card(n: int, meta: dict) -> str:
    return (f"# A reward-model ensemble of {n} members (rlhf-lab)\n\n"
            f"Each `member-i/` folder is a transformers `AutoModelForSequenceClassification` (num_labels = 1) with its "
            f"tokenizer: `AutoModelForSequenceClassification.from_pretrained(\"<this folder>/member-0\")` loads one. "
            f"The ensemble's reward is the members' **{meta['objective']}**"
            + (f" (lambda = {meta['lam']})" if meta["objective"] == "mean_minus_std" else "")
            + "; `rlhf_lab.reward.ensemble.RewardEnsemble.from_pretrained(\"<this folder>\")` reads it back.\n")
