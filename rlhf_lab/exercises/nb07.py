"""The checkers of notebook 07's exercises (over-optimisation): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import product

import torch

from rlhf_lab.evaluation import exact_best_of_n_kl
from rlhf_lab.exercises.registry import exercise

PROXY, GOLD = (0, 1, 2), (0, 2, 1)
"""Exercise 07.1: three equally likely answers, their proxy scores and their gold scores."""


@exercise("07.1")
def _bon_kl_exercise(answer) -> tuple[bool, str]:
    """(E[proxy], E[gold]) of best-of-2 by the proxy over three equally likely answers (PROXY, GOLD), two
    independent draws."""
    draws = list(product(range(3), repeat=2))                # every equally likely pair of draws, enumerated
    best = [max(d, key=lambda i: PROXY[i]) for d in draws]
    want = (Fraction(sum(PROXY[i] for i in best), len(draws)), Fraction(sum(GOLD[i] for i in best), len(draws)))
    got = tuple(float(x) for x in answer)
    if len(got) == 2 and all(math.isclose(g, float(w), abs_tol=1e-3) for g, w in zip(got, want)):
        return True, (f"E[proxy] = {want[0]} = {float(want[0]):.3f} and E[gold] = {want[1]} = {float(want[1]):.3f}: "
                      "selection raises the proxy more than the gold it was meant to track")
    if len(got) != 2:
        return False, "answer with two numbers: (E[proxy], E[gold])"
    if math.isclose(got[0], float(want[0]), abs_tol=1e-3):
        return False, "E[proxy] is right; the gold follows the answer the proxy picked"
    return False, "list the nine equally likely pairs of draws, or find P(best = each answer) first"


@exercise("07.2")
def _exact_bon_exercise(answer) -> tuple[bool, str]:
    """A function (probs (K,), proxy (K,), n) -> the distribution (K,) of best-of-n by the proxy over n
    independent draws from probs (proxy values all distinct)."""
    g = torch.Generator().manual_seed(7)
    for k, n in ((3, 2), (5, 1), (20, 4), (50, 16)):
        probs = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), -1)
        proxy = torch.randn(k, generator=g, dtype=torch.float64)
        got = torch.as_tensor(answer(probs.clone(), proxy.clone(), n), dtype=torch.float64).reshape(-1)
        if got.shape != (k,) or not torch.isclose(got.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6):
            return False, f"K={k}, n={n}: your answer is not a distribution over the {k} outcomes"
        if (got < -1e-12).any():
            return False, f"K={k}, n={n}: a probability is negative"
        if k <= 5:                                           # small cases: every sequence of n draws enumerated
            want = torch.zeros(k, dtype=torch.float64)
            for d in product(range(k), repeat=n):
                want[max(d, key=lambda i: proxy[i].item())] += math.prod(probs[i].item() for i in d)
            ok = torch.allclose(got, want, atol=1e-9)
        else:                                                # larger: its KL against the kit's exact one
            kl = float((got[got > 0] * (got[got > 0] / probs[got > 0]).log()).sum())
            ok = math.isclose(kl, exact_best_of_n_kl(probs, proxy, n), abs_tol=1e-6)
        if not ok:
            return False, f"K={k}, n={n}: not the distribution of the best of {n} draws"
    return True, "P(best = a) = P(all n draws rank at most a) - P(all rank below a)"
