"""The checkers of notebook 07's exercises (over-optimisation): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.evaluation import best_of_n_kl, exact_best_of_n_kl
from rlhf_lab.exercises.registry import exercise


@exercise("07.1")
def _bon_kl_exercise(answer) -> tuple[bool, str]:
    """(exact KL, the bound log n - (n-1)/n) of best-of-2 on three equally likely outcomes a < b < c."""
    probs, proxy = torch.full((3,), 1 / 3, dtype=torch.float64), torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    want = (float(exact_best_of_n_kl(probs, proxy, 2)), best_of_n_kl(2))
    got = tuple(float(x) for x in answer)
    if len(got) == 2 and all(abs(g - w) < 1e-3 for g, w in zip(got, want)):
        return True, f"exact {want[0]:.4f} < bound {want[1]:.4f}: with few outcomes, ties make the formula an overestimate"
    return False, ("the best of 2 draws is c with probability 1 - (2/3)^2, b with (2/3)^2 - (1/3)^2, a with (1/3)^2; "
                   "KL = sum p log(p / (1/3))")


@exercise("07.2")
def _exact_bon_exercise(answer) -> tuple[bool, str]:
    """A function (probs (K,), proxy (K,), n) -> the exact KL of best-of-n on a categorical."""
    g = torch.Generator().manual_seed(7)
    for k, n in ((5, 2), (20, 4), (50, 16)):
        probs = torch.softmax(torch.randn(k, generator=g), -1)
        proxy = torch.randn(k, generator=g)
        want = exact_best_of_n_kl(probs, proxy, n)
        got = float(answer(probs.clone(), proxy.clone(), n))
        if not math.isclose(got, want, abs_tol=1e-5):
            return False, f"K={k}, n={n}: expected {want:.5f}, got {got:.5f} (P(best = a) = F(a)^n - F(a-)^n)"
    return True, "the analytic log n - (n-1)/n is its limit when no single outcome is likely"
