"""Notebook 04: the policy gradient."""
import math

import torch

from rlhf_lab.exercises.nb04 import SEQUENCE_PROBS


def regularised_gradient(logits, rewards, ref_logits, beta):
    """J - beta KL = sum_k pi_k f_k with f_k = r_k - beta log(pi_k / pi_ref,k). Through the softmax, d/dz_j =
    pi_j (f_j - sum_k pi_k f_k): the -beta from differentiating pi log pi cancels in the centring."""
    pi = torch.softmax(logits, -1)
    f = rewards - beta * (torch.log_softmax(logits, -1) - torch.log_softmax(ref_logits, -1))
    return pi * (f - (pi * f).sum())


def kl_reinforce_loss(logps, ref_logps, rewards, beta):
    """The KL-shaped reward is a number per sample, not something to differentiate: detach it."""
    shaped = (rewards - beta * (logps - ref_logps)).detach()
    return -(shaped * logps).mean()


def best_baseline(logits, rewards):
    """Var = E[(R - b)^2 ||g||^2] - const, g = e_a - pi; d/db = 0 gives b* = E[R ||g||^2] / E[||g||^2], with
    ||e_a - pi||^2 = 1 - 2 pi_a + sum pi^2."""
    pi = torch.softmax(logits, -1)
    g2 = 1 - 2 * pi + (pi ** 2).sum()
    return (pi * rewards * g2).sum() / (pi * g2).sum()


SOLUTIONS = {"04.1": lambda: regularised_gradient, "04.2": lambda: kl_reinforce_loss, "04.3": lambda: best_baseline,
             "04.4": lambda: sum(math.log(p) for p in SEQUENCE_PROBS)}
WRONG = {
    "04.1": [("the gradient of E[r] alone", lambda: lambda z, r, zr, b: torch.softmax(z, -1) * (r - (torch.softmax(z, -1) * r).sum())),
             ("not centred", lambda: lambda z, r, zr, b: torch.softmax(z, -1) * (r - b * (torch.log_softmax(z, -1) - torch.log_softmax(zr, -1))))],
    "04.2": [("the penalty differentiated through", lambda: lambda lp, ref, r, b: -((r - b * (lp - ref)) * lp).mean()),
             ("the sign flipped", lambda: lambda lp, ref, r, b: -kl_reinforce_loss(lp, ref, r, b))],
    "04.3": [("the mean reward under pi", lambda: lambda z, r: (torch.softmax(z, -1) * r).sum()),
             ("the plain average of the rewards", lambda: lambda z, r: r.mean())],
    "04.4": [("the probability, not its log", lambda: math.prod(SEQUENCE_PROBS)),
             ("the mean per token", lambda: sum(math.log(p) for p in SEQUENCE_PROBS) / len(SEQUENCE_PROBS))],
}
