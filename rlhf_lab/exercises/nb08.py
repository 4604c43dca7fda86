"""The checkers of notebook 08's exercises (critic-free RL): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import close, exercise
from rlhf_lab.rl.group_rl import aggregate
from rlhf_lab.rl.ppo import kl_estimate

PI, PI_REF = (0.2, 0.8), (0.5, 0.5)
"""Exercise 08.1: a policy and a reference over two tokens."""


@exercise("08.1")
def _rloo_exercise(answer) -> tuple[bool, str]:
    """(KL(pi || pi_ref), E_pi[k3], E_pi[k2]) for PI and PI_REF, the expectations over a token drawn from pi."""
    pi, ref = torch.tensor(PI, dtype=torch.float64), torch.tensor(PI_REF, dtype=torch.float64)
    logp, logr = pi.log(), ref.log()
    want = (float((pi * (logp - logr)).sum()), float((pi * kl_estimate(logp, logr, "k3")).sum()),
            float((pi * kl_estimate(logp, logr, "k2")).sum()))
    got = tuple(float(x) for x in answer)
    if len(got) != 3:
        return False, "answer with three numbers: (KL, E[k3], E[k2])"
    if close(got, want, 1e-3):
        return True, (f"KL {want[0]:.4f} = E[k3] {want[1]:.4f}: k3 is unbiased; E[k2] {want[2]:.4f} is not, "
                      "though it is close while the two distributions are")
    if math.isclose(got[0], want[0], abs_tol=1e-3):
        return False, "the KL is right; each estimator is a function of the sampled token's log-ratio, averaged under pi"
    return False, "the KL of two distributions over two tokens is a sum of two terms"


@exercise("08.2")
def _aggregation_exercise(answer) -> tuple[bool, str]:
    """(share of the loss's gradient that goes to the 1-token response, under "grpo"; the same under "dapo") for
    a batch of a 1-token and a 24-token response whose tokens all have the same loss."""
    mask = torch.zeros(2, 24)
    mask[0, 0], mask[1] = 1, 1
    want = []
    for loss_type in ("grpo", "dapo"):
        token_loss = torch.ones(2, 24, requires_grad=True)
        g, = torch.autograd.grad(aggregate(token_loss, mask, loss_type), token_loss)
        want.append((g[0].abs().sum() / g.abs().sum()).item())
    got = tuple(float(x) for x in answer)
    if len(got) != 2:
        return False, "answer with two shares between 0 and 1: (grpo, dapo)"
    if close(got, want, 1e-3):
        return True, (f"{want[0]:.2f} against {want[1]:.2f}: per-response averaging gives a short response's token "
                      "24 times the weight of a long one's, the length bias Dr. GRPO removes")
    return False, "write each aggregation as a weighted sum of the token losses and read off the weights"
