"""The checkers of notebook 10's exercises (when the reward model is wrong): `rlhf_lab.exercises.registry.check`
runs them. The find-the-bug exercise's broken function is in `rlhf_lab.exercises.bugs` (section 10)."""
from __future__ import annotations

import math

import torch

from rlhf_lab.evaluation import length_controlled
from rlhf_lab.exercises.registry import close, exercise
from rlhf_lab.reward.ensemble import conservative

SAMPLES = {"A": [(8, 0.40), (10, 0.43), (15, 0.42)], "B": [(25, 0.33), (30, 0.31), (38, 0.38)]}
"""Exercise 10.1: (response tokens, gold) of three held-out samples of two policies."""


def _controlled() -> tuple[float, float]:
    rows = [(n, v, g) for g, xs in SAMPLES.items() for n, v in xs]
    out = length_controlled([v for _, v, _ in rows], [n for n, _, _ in rows], [g for _, _, g in rows])
    return out["A"], out["B"]


def _pooled_line() -> tuple[float, float]:
    """The tempting wrong answer: one line through all six samples, ignoring which policy wrote them."""
    n = torch.tensor([x for xs in SAMPLES.values() for x, _ in xs], dtype=torch.float64)
    v = torch.tensor([y for xs in SAMPLES.values() for _, y in xs], dtype=torch.float64)
    b = ((v - v.mean()) * (n - n.mean())).sum() / ((n - n.mean()) ** 2).sum()
    return tuple(float(v[i:i + 3].mean() + b * (n.mean() - n[i:i + 3].mean())) for i in (0, 3))


def _numbers(answer, k: int, what: str):
    if isinstance(answer, dict) or not hasattr(answer, "__len__"):
        return None, f"answer with a tuple of {k} numbers: {what}"
    got = tuple(float(x) for x in answer)
    return (got, "") if len(got) == k else (None, f"answer with {k} numbers: {what}")


@exercise("10.1")
def _length_controlled_exercise(answer) -> tuple[bool, str]:
    """(A's mean gold at the pooled mean length, B's), the slope fitted within the policies."""
    got, why = _numbers(answer, 2, "(A's gold at the pooled mean length, B's)")
    if got is None:
        return False, why
    want = _controlled()
    if close(got, want, 2e-3):
        return True, (f"A {want[0]:+.3f}, B {want[1]:+.3f}: within each policy longer answers score higher here, so "
                      f"A's short answers are credited and B's long ones debited, and A's lead grows")
    raw = tuple(sum(v for _, v in xs) / len(xs) for xs in SAMPLES.values())
    if close(got, raw, 2e-3):
        return False, "those are the raw means; move each policy to the same length along the slope first"
    if close(got, _pooled_line(), 2e-3):
        return False, ("one line through all six samples takes B's lower gold for an effect of length; fit the slope "
                       "within each policy (each keeps its own level)")
    return False, "fit one slope of gold on tokens within the policies, then read each policy's mean at the pooled mean length"


@exercise("10.2")
def _averaging_exercise(answer) -> tuple[bool, str]:
    """A function kept(rho, n): the variance of the mean of n errors of equal variance and pairwise correlation rho,
    as a share of one error's variance."""
    if not callable(answer):
        return False, "answer with a function kept(rho, n) -> float"
    for rho in (0.0, 0.25, 0.51, 0.9, 1.0):
        for n in (1, 2, 4, 5, 10):
            got = answer(rho, n)
            if got is None:
                return False, "it returned None; return the share, a number"
            want = rho + (1 - rho) / n
            if not math.isclose(float(got), want, abs_tol=1e-6):
                return False, (f"it gives {float(got):.4f} for rho = {rho}, n = {n}; write the mean's variance as a "
                               "double sum of covariances: n variances and n(n - 1) covariances")
    return True, "rho + (1 - rho) / n: averaging removes only the part of the error the members do not share"


def _ensemble_cases():
    g = torch.Generator().manual_seed(10)
    return [torch.randn(n, b, generator=g, dtype=torch.float64) * s for n, b, s in ((4, 7, 1.0), (5, 5, 2.0),
                                                                                      (2, 9, 0.5), (3, 3, 1.0))]


def _agrees(answer, objective: str, lam: float, spreads: tuple[int, ...]) -> tuple[bool, str]:
    for scores in _ensemble_cases():
        got = answer(scores.clone(), objective, lam) if objective else answer(scores.clone(), lam)
        if got is None:
            return False, "it returned None; return one reward per completion"
        got = torch.as_tensor(got, dtype=torch.float64).flatten()
        if got.shape != (scores.shape[1],):
            return False, (f"for {scores.shape[0]} members x {scores.shape[1]} completions it returns {tuple(got.shape)} "
                           f"numbers: one reward per completion (a column)")
        fits = [conservative(scores, objective or "mean_minus_std", lam) if c == 0 else
                scores.mean(0) - lam * scores.std(0, correction=1) for c in spreads]
        if not any(torch.allclose(got, f, atol=1e-6) for f in fits):
            label = objective or "mean_minus_std"
            return False, f"{label} (lambda = {lam}) differs on {scores.shape[0]} members x {scores.shape[1]} completions"
    return True, ""


@exercise("10.3")
def _objectives_exercise(answer) -> tuple[bool, str]:
    """A function ensemble_reward(scores, objective, lam) over (N members, B completions) scores."""
    if not callable(answer):
        return False, "answer with a function ensemble_reward(scores, objective, lam)"
    for objective, lam in (("mean", 1.0), ("min", 1.0), ("mean_minus_std", 1.0), ("mean_minus_std", 0.5)):
        ok, why = _agrees(answer, objective, lam, spreads=(0, 1) if objective == "mean_minus_std" else (0,))
        if not ok:
            return False, why
    return True, "each objective is taken over the members, for each completion (column) on its own"


@exercise("10.4")
def _penalty_bug_exercise(answer) -> tuple[bool, str]:
    """A fix of bugs.broken_mean_minus_std(scores, lam) -> one reward per completion."""
    if not callable(answer):
        return False, "answer with your fixed function mean_minus_std(scores, lam)"
    scores = _ensemble_cases()[0]
    got = answer(scores.clone(), 1.0)
    if got is None:
        return False, "it returned None; return one reward per completion"
    got = torch.as_tensor(got, dtype=torch.float64).flatten()
    if got.shape == (scores.shape[1],) and torch.allclose(got - scores.mean(0), (got - scores.mean(0))[0].expand_as(got)):
        return False, ("its penalty is the same number for every completion: a constant that no group-normalised "
                       "advantage can see")
    for lam in (1.0, 0.5):
        ok, why = _agrees(answer, "", lam, spreads=(0, 1))
        if not ok:
            return False, why
    return True, "the spread of the members' scores of each completion: std over the members (dim 0), per column"
