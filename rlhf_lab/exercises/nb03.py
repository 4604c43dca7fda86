"""The checkers of notebook 03's exercises (the reward model): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import close, exercise
from rlhf_lab.reward.losses import grouped_bt_loss


def _plackett_luce_nll(rewards: torch.Tensor, ranking: list[int]) -> torch.Tensor:
    """-log P(ranking) under Plackett-Luce: the best is chosen first with softmax probability, then the
    next among the rest, and so on."""
    r = rewards[torch.as_tensor(ranking)]
    return -(r - torch.logcumsumexp(r.flip(0), 0).flip(0)).sum()


@exercise("03.2")
def _grouped_loss_exercise(answer) -> tuple[bool, str]:
    """A function (rewards (K,), ranking best first) -> the Plackett-Luce negative log-likelihood of the ranking."""
    gen = torch.Generator().manual_seed(3)
    for k in (2, 3, 4, 7):
        rewards = torch.randn(k, generator=gen, dtype=torch.float64)
        ranking = torch.randperm(k, generator=gen).tolist()
        want = _plackett_luce_nll(rewards, ranking)
        got = torch.as_tensor(answer(rewards.clone(), list(ranking)), dtype=torch.float64)
        if got.numel() != 1 or not torch.allclose(got.reshape(()), want, atol=1e-6):
            if got.numel() == 1 and torch.allclose(got.reshape(()), -want, atol=1e-6):
                return False, "that is the log-likelihood; the loss is its negative"
            return False, f"for K={k}, rewards {rewards.numpy().round(3)} and ranking {ranking} you give {got.numpy().round(4)}"
    return True, "for K = 2 it is the Bradley-Terry loss of the one pair"


@exercise("03.3")
def _probability_exercise(answer) -> tuple[bool, str]:
    expected = 1 / (1 + math.exp(-(1.3 - 0.2)))
    if abs(float(answer) - expected) < 1e-3:
        return True, f"sigma(1.1) = {expected:.3f}"
    return False, "p(a > b) = sigmoid(r_a - r_b)"


@exercise("03.1")
def _forwards_exercise(answer) -> tuple[bool, str]:
    """d loss / d r for the best, the middle and the worst of K = 9 completions whose rewards are all equal,
    where the loss is the grouped loss: the mean of -log sigmoid(r_w - r_l) over the C(9, 2) pairs."""
    k = 9
    rewards = torch.zeros(1, k, dtype=torch.float64, requires_grad=True)
    loss, _ = grouped_bt_loss(rewards, torch.arange(k)[None])
    loss.backward()
    want = tuple(rewards.grad[0, [0, k // 2, k - 1]].tolist())
    got = tuple(float(x) for x in answer)
    if len(got) != 3:
        return False, "answer with three numbers: (best, middle, worst)"
    if close(got, want, 1e-4):
        return True, (f"{want[0]:+.4f}, {want[1]:+.4f}, {want[2]:+.4f}: the best is pushed up, the worst down, "
                      "the middle wins as many pairs as it loses")
    if close(got, [-w for w in want], 1e-4):
        return False, "the signs are flipped: gradient descent moves r against d loss / d r"
    return False, "each pair contributes to two completions' derivatives; count the pairs each one wins and loses"
