"""The checkers of notebook 03's exercises (the reward model): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.reward.losses import grouped_bt_loss


@exercise("03.2")
def _grouped_loss_exercise(answer) -> tuple[bool, str]:
    """A function (rewards (K,), ranking best first) -> the prompt's mean pairwise BT loss."""
    gen = torch.Generator().manual_seed(3)
    for k in (2, 3, 4, 7):
        rewards = torch.randn(k, generator=gen)
        ranking = torch.randperm(k, generator=gen).tolist()
        ranks = torch.empty(1, k, dtype=torch.long)
        ranks[0, ranking] = torch.arange(k)
        expected, _ = grouped_bt_loss(rewards[None], ranks)
        got = answer(rewards.clone(), list(ranking))
        if not torch.allclose(torch.as_tensor(got, dtype=torch.float32), expected, atol=1e-5):
            return False, f"for K={k}, rewards {rewards.tolist()}, ranking {ranking}: expected {expected.item():.4f}"
    return True, ""


@exercise("03.3")
def _probability_exercise(answer) -> tuple[bool, str]:
    expected = 1 / (1 + math.exp(-(1.3 - 0.2)))
    if abs(float(answer) - expected) < 1e-3:
        return True, f"sigma(1.1) = {expected:.3f}"
    return False, "p(a > b) = sigmoid(r_a - r_b)"


@exercise("03.1")
def _forwards_exercise(answer) -> tuple[bool, str]:
    """(forwards per prompt per epoch with shuffled pairs, with grouped batching) for K = 9."""
    k = 9
    expected = (2 * math.comb(k, 2), k)
    if tuple(answer) == expected:
        return True, f"{expected[0]} against {expected[1]}: {expected[0] // expected[1]}x fewer forwards"
    return False, "each of the C(K, 2) pairs forwards two completions; grouping forwards each completion once"
