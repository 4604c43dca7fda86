"""The checkers of notebook 06's exercises (DPO): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.rl.dpo import optimal_policy


@exercise("06.1")
def _dpo_loss_exercise(answer) -> tuple[bool, str]:
    """(loss, rewards/chosen, rewards/rejected) of one pair where training lowered both completions:
    log pi(y_w) = -14, log pi(y_l) = -20, reference -12 and -15, beta 0.2."""
    beta, chosen, rejected = 0.2, -14 - (-12), -20 - (-15)
    want = (-math.log(1 / (1 + math.exp(-beta * (chosen - rejected)))), beta * chosen, beta * rejected)
    got = tuple(float(x) for x in answer)
    if len(got) == 3 and all(math.isclose(g, w, abs_tol=1e-3) for g, w in zip(got, want)):
        return True, (f"loss {want[0]:.4f}, below log 2 although the chosen completion became less likely "
                      f"(its implicit reward {want[1]:+.1f}): only the margin {beta * (chosen - rejected):.1f} counts")
    return False, ("implicit rewards beta (log pi - log pi_ref) for each completion; the loss is "
                   "-log sigmoid(reward_chosen - reward_rejected)")


@exercise("06.2")
def _optimal_policy_exercise(answer) -> tuple[bool, str]:
    """A function (ref_probs (K,), rewards (K,), beta) -> the optimal policy pi* (K,)."""
    gen = torch.Generator().manual_seed(6)
    for beta in (0.1, 1.0, 5.0):
        ref = torch.softmax(torch.randn(5, generator=gen, dtype=torch.float64), -1)
        r = torch.randn(5, generator=gen, dtype=torch.float64)
        want = optimal_policy(ref, r, beta)
        got = torch.as_tensor(answer(ref.clone(), r.clone(), beta), dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-6):
            return False, f"beta={beta}: expected {want.numpy().round(3)}; did you normalise by Z?"
    return True, "pi_ref exp(r / beta) / Z: a small beta follows the reward, a large one stays with pi_ref"
