"""The checkers of notebook 06's exercises (DPO): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import close, exercise
from rlhf_lab.rl.dpo import dpo_loss, optimal_policy

PAIRS = ((-30.0, -50.0, -32.0, -32.0), (-40.0, -30.0, -35.0, -35.0))
"""Exercise 06.1's two pairs: (log pi(y_w), log pi(y_l), log pi_ref(y_w), log pi_ref(y_l)), beta = 0.1."""

REF, REWARDS = (0.4, 0.3, 0.2, 0.1), (0.0, 1.0, 2.0, 3.0)
"""Exercise 06.2's reference policy over four answers, and their rewards."""


def _pair_gradient(pair, beta=0.1) -> float:
    """d loss / d h of the DPO loss of one pair, h = its log-ratio margin, by autograd on `dpo_loss`."""
    pw = torch.tensor([pair[0]], dtype=torch.float64, requires_grad=True)
    loss = dpo_loss(pw, torch.tensor([pair[1]], dtype=torch.float64), torch.tensor([pair[2]], dtype=torch.float64),
                    torch.tensor([pair[3]], dtype=torch.float64), beta)[0].mean()
    g, = torch.autograd.grad(loss, pw)                     # h moves one for one with log pi(y_w)
    return g.item()


@exercise("06.1")
def _dpo_loss_exercise(answer) -> tuple[bool, str]:
    """(d loss / d h for the first pair of PAIRS, for the second): how hard DPO pushes on a pair it already
    orders right and on one it orders wrong, h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))."""
    want = tuple(_pair_gradient(p) for p in PAIRS)
    got = tuple(float(x) for x in answer)
    if len(got) != 2:
        return False, "answer with two derivatives, one per pair"
    if close(got, want, 1e-4):
        return True, (f"{want[0]:+.4f} and {want[1]:+.4f}: a pair the policy already orders right is pushed less, one "
                      "it orders wrong more; DPO weights each pair by how wrong its implicit reward is")
    if close(got, [-w for w in want], 1e-4):
        return False, "the signs are flipped: raising the margin lowers the loss"
    return False, "write the loss as a function of h alone, then differentiate"


@exercise("06.2")
def _optimal_policy_exercise(answer) -> tuple[bool, str]:
    """The beta at which the optimum pi* of the KL-regularised objective, for REF and REWARDS, is exactly
    0.5 nat from the reference: KL(pi* || pi_ref) = 0.5."""
    ref, r = torch.tensor(REF, dtype=torch.float64), torch.tensor(REWARDS, dtype=torch.float64)

    def kl(beta):
        p = optimal_policy(ref, r, beta)
        return float((p * (p / ref).log()).sum())

    lo, hi = 1e-3, 1e3                                     # KL falls as beta grows: bisect on log beta
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if kl(mid) > 0.5 else (lo, mid)
    want, got = math.sqrt(lo * hi), float(answer)
    if math.isclose(got, want, rel_tol=1e-3):
        return True, f"beta = {want:.4f}: the dial, read backwards from the KL you can afford"
    if got > 0 and math.isfinite(got):
        return False, f"at beta = {got:g} pi* is {kl(got):.4f} nat from the reference, not 0.5"
    return False, "beta is a positive number"
