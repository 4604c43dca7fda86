"""The checkers of notebook 08's exercises (critic-free RL): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import torch

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.rl.group_rl import aggregate, group_advantages


@exercise("08.1")
def _rloo_exercise(answer) -> tuple[bool, str]:
    """The RLOO advantages (4 floats) of one group with rewards (1, 2, 3, 6)."""
    want = group_advantages(torch.tensor([[1.0, 2.0, 3.0, 6.0]]), "rloo")[0]
    got = torch.as_tensor(answer, dtype=torch.float32).reshape(-1)
    if got.shape == (4,) and torch.allclose(got, want, atol=1e-3):
        return True, "each reward minus the mean of the other three: K/(K-1) times the centred reward"
    if got.shape == (4,) and torch.allclose(got, torch.tensor([-2.0, -1.0, 0.0, 3.0]), atol=1e-3):
        return False, "that is r - mean of all four (Dr. GRPO); RLOO leaves the sample itself out of its baseline"
    return False, f"A_i = r_i - mean of the others; expected {want.numpy().round(3)}"


@exercise("08.2")
def _aggregation_exercise(answer) -> tuple[bool, str]:
    """A function (token_loss (B, T), mask (B, T)) -> the "grpo" aggregation (mean per response, then mean)."""
    gen = torch.Generator().manual_seed(8)
    for _ in range(3):
        loss, mask = torch.randn(5, 7, generator=gen), (torch.rand(5, 7, generator=gen) > 0.3).float()
        mask[:, 0] = 1
        want, got = aggregate(loss, mask, "grpo"), torch.as_tensor(answer(loss.clone(), mask.clone()))
        if not torch.allclose(got.float(), want, atol=1e-5):
            dapo = aggregate(loss, mask, "dapo")
            hint = " (that is the mean over all tokens, DAPO's)" if torch.allclose(got.float(), dapo, atol=1e-5) else ""
            return False, f"expected {want.item():.4f}, got {float(got):.4f}{hint}"
    return True, "a token of a short response weighs more than one of a long response: the length bias"
