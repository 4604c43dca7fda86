"""The Bradley-Terry losses of the reward model, as pure functions on tensors (notebook 03).

Labelers' preferences are modelled as (Ouyang et al. 2022, eq. 1)

    p(y_w > y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))                      (Bradley-Terry)
    L_RM = -E_(x, y_w, y_l) [log sigmoid(r(x, y_w) - r(x, y_l))]

`bt_loss` is the pairwise loss; `grouped_bt_loss` is InstructGPT's (§3.5): all C(K, 2) ranked pairs
of one prompt as a single batch element, each completion forwarded once, the prompt's loss the
mean over its pairs. Both return ``(loss, stats)`` with TRL's metric names. `rlhf_lab.reward.train` trains
with them and re-exports them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ---- losses: pure functions on tensors ---------------------------------------------------

def _metrics(r_chosen: torch.Tensor, r_rejected: torch.Tensor, on_device: bool = False) -> dict:
    """TRL's names: mean chosen and rejected rewards, mean margin, fraction with r_w > r_l.
    Floats, or 0-d tensors left on the device with ``on_device``."""
    margin = (r_chosen - r_rejected).detach()
    stats = {"rewards/chosen": r_chosen.detach().mean(), "rewards/rejected": r_rejected.detach().mean(),
             "rewards/margins": margin.mean(), "rewards/accuracies": (margin > 0).float().mean()}
    return stats if on_device else {k: v.item() for k, v in stats.items()}


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, on_device: bool = False) -> tuple[torch.Tensor, dict]:
    """Pairwise Bradley-Terry loss, -mean log sigmoid(r_w - r_l). r_chosen, r_rejected: (N,).

    Returns ``(loss, stats)``: rewards/chosen, .../rejected, .../margins, .../accuracies (the names
    TRL's DPOTrainer gives its implicit rewards, kept for symmetry with `rlhf_lab.rl.dpo`). TRL 1.16's
    RewardTrainer logs the same quantities as ``accuracy`` and ``margin`` (with ``min_reward``,
    ``mean_reward`` and ``max_reward`` over all rewards of the batch); read these names side by side
    when comparing with it. Floats, or 0-d tensors on the device with ``on_device`` (a training loop
    reads them in batches, `utils.progress.DeviceScalars`).
    """
    loss = -F.logsigmoid(r_chosen - r_rejected).mean()
    return loss, _metrics(r_chosen, r_rejected, on_device)


def pair_mask(ranks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(G, K, K) bool: True at [g, i, j] when completion i is ranked above j (rank 0 = best).

    ranks: (G, K) rank of each completion; equal ranks (ties) give no pair.
    valid: (G, K) bool, False for padding when prompts have fewer than K completions.
    """
    both = valid[:, :, None] & valid[:, None, :]
    return (ranks[:, :, None] < ranks[:, None, :]) & both


def grouped_bt_loss(rewards: torch.Tensor, ranks: torch.Tensor, valid: torch.Tensor | None = None,
                    on_device: bool = False) -> tuple[torch.Tensor, dict]:
    """InstructGPT's loss: all ranked pairs of a prompt as one batch element (§3.5).

    rewards: (G, K) one reward per completion (each completion forwarded once);
    ranks:   (G, K) 0 = best; valid: (G, K) bool (default all True).
    loss = mean over prompts g of  mean over pairs (i above j) of -log sigmoid(r_gi - r_gj).
    ``on_device``: stats as 0-d tensors, and no check that every prompt has a pair (it would
    wait for the device; `train_reward_model` checks its groups when it builds them).
    """
    valid = torch.ones_like(ranks, dtype=torch.bool) if valid is None else valid
    pairs = pair_mask(ranks, valid)                          # (G, K, K)
    diff = rewards[:, :, None] - rewards[:, None, :]         # r_i - r_j
    nll = -F.logsigmoid(diff) * pairs
    n_pairs = pairs.sum((1, 2))                              # C(K, 2) without ties
    if not on_device and (n_pairs == 0).any():
        g = int((n_pairs == 0).nonzero()[0])
        raise ValueError(f"prompt {g} of the batch has no ranked pair (fewer than 2 completions or all tied)")
    loss = (nll.sum((1, 2)) / n_pairs).mean()
    # the pairs' rewards, flattened by a mask (no data-dependent shapes: nothing waits for the device)
    diff = (rewards[:, :, None] - rewards[:, None, :]).detach()
    weight = pairs.float() / pairs.sum().clamp(min=1)
    stats = {"rewards/chosen": ((rewards[:, :, None].detach() * weight).sum()),
             "rewards/rejected": ((rewards[:, None, :].detach() * weight).sum()),
             "rewards/margins": (diff * weight).sum(), "rewards/accuracies": ((diff > 0).float() * weight).sum(),
             "pairs": n_pairs.sum()}
    return loss, (stats if on_device else {k: (int(v) if k == "pairs" else v.item()) for k, v in stats.items()})


def preference_probability(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry p(a > b) = sigmoid(r_a - r_b)."""
    return torch.sigmoid(r_a - r_b)
