"""Notebook 08: critic-free RL."""
import math

from rlhf_lab.exercises.nb08 import PI, PI_REF


def kl_and_estimators():
    """rho = pi_ref / pi per token: (2.5, 0.625). KL = sum pi log(pi / pi_ref). k3 = rho - 1 - log rho, and
    E_pi[rho] = 1, so E[k3] = KL. k2 = (log rho)^2 / 2 averages to something else."""
    rho = [r / p for p, r in zip(PI, PI_REF)]
    kl = sum(p * math.log(p / r) for p, r in zip(PI, PI_REF))
    k3 = sum(p * (x - 1 - math.log(x)) for p, x in zip(PI, rho))
    k2 = sum(p * 0.5 * math.log(x) ** 2 for p, x in zip(PI, rho))
    return kl, k3, k2


def gradient_shares():
    """"grpo": (mean of response 1 + mean of response 2) / 2: the 1-token response's token weighs 1/2, each of
    the 24 others 1/48: share 1/2. "dapo": the mean over 25 tokens: share 1/25."""
    return 0.5, 1 / 25


SOLUTIONS = {"08.1": kl_and_estimators, "08.2": gradient_shares}
WRONG = {
    "08.1": [("k2 taken as unbiased too", lambda: (kl_and_estimators()[0],) * 3),
             ("KL the wrong way round", lambda: (sum(r * math.log(r / p) for p, r in zip(PI, PI_REF)),) * 2 + (kl_and_estimators()[2],))],
    "08.2": [("swapped", lambda: (1 / 25, 0.5)), ("no length effect in either", lambda: (0.5, 0.5))],
}
