"""Notebook 07: over-optimisation."""
import torch


def best_of_two():
    """P(best = c) = 1 - (2/3)^2 = 5/9, P(b) = (2/3)^2 - (1/3)^2 = 3/9, P(a) = 1/9. Proxy (0, 1, 2): 13/9;
    gold (0, 2, 1): 3/9 * 2 + 5/9 * 1 = 11/9."""
    return 13 / 9, 11 / 9


def best_of_n_probs(probs, proxy, n):
    """Sort by proxy; F the CDF in that order: P(best = a) = F(a)^n - F(a-)^n."""
    order = torch.argsort(proxy)
    cdf = torch.cumsum(probs[order], 0)
    bon = cdf ** n - torch.cat([cdf.new_zeros(1), cdf[:-1]]) ** n
    out = torch.zeros_like(probs)
    out[order] = bon
    return out


SOLUTIONS = {"07.1": best_of_two, "07.2": lambda: best_of_n_probs}
WRONG = {
    "07.1": [("without replacement (the unbiased estimator of section 1)", lambda: (13 / 9, 4 / 3)),
             ("no selection at all", lambda: (1.0, 1.0))],
    "07.2": [("the policy itself", lambda: lambda p, q, n: p),
             ("P(a)^n renormalised", lambda: lambda p, q, n: p ** n / (p ** n).sum())],
}
