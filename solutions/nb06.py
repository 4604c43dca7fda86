"""Notebook 06: DPO."""
import math

from rlhf_lab.exercises.nb06 import PAIRS, REF, REWARDS


def pair_gradients(beta=0.1):
    """L(h) = -log sigmoid(beta h), dL/dh = -beta sigmoid(-beta h). Pair 1: h = (-30 + 32) - (-50 + 32) = 20;
    pair 2: h = (-40 + 35) - (-30 + 35) = -10."""
    out = []
    for pw, pl, rw, rl in PAIRS:
        h = (pw - rw) - (pl - rl)
        out.append(-beta / (1 + math.exp(beta * h)))
    return tuple(out)


def beta_for_half_a_nat():
    """pi* = pi_ref exp(r / beta) / Z; its KL from pi_ref falls as beta grows: bisect for KL = 0.5."""
    def kl(beta):
        w = [p * math.exp(r / beta) for p, r in zip(REF, REWARDS)]
        z = sum(w)
        return sum(x / z * math.log(x / z / p) for x, p in zip(w, REF))

    lo, hi = 1e-3, 1e3
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if kl(mid) > 0.5 else (lo, mid)
    return math.sqrt(lo * hi)


SOLUTIONS = {"06.1": pair_gradients, "06.2": beta_for_half_a_nat}
WRONG = {
    "06.1": [("signs flipped", lambda: tuple(-g for g in pair_gradients())),
             ("beta forgotten in the derivative", lambda: tuple(g * 10 for g in pair_gradients()))],
    "06.2": [("beta = 1", lambda: 1.0), ("the KL target itself", lambda: 0.5)],
}
