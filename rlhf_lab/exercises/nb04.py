"""The checkers of notebook 04's exercises (the policy gradient): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise, seeded_cases
from rlhf_lab.rl.policy_gradient import exact_gradient, mean_baseline, reinforce_loss


def _cases(n: int = 4, k: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Seeded (logits, rewards) pairs on which a student's function is compared with ours."""
    return seeded_cases(4, n, k)


@exercise("04.1")
def _exact_gradient(answer) -> tuple[bool, str]:
    """A function (logits, rewards) -> grad of E[r] with respect to the logits, (K,)."""
    for logits, rewards in _cases():
        want = exact_gradient(logits, rewards)
        got = torch.as_tensor(answer(logits.clone(), rewards.clone()), dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-8):
            return False, (f"for logits {logits.numpy().round(2)} expected {want.numpy().round(4)}, "
                           f"got {got.numpy().round(4)}")
    return True, "pi * (r - E[r]): arms better than average gain probability"


@exercise("04.2")
def _reinforce_loss(answer) -> tuple[bool, str]:
    """A function (logps, rewards, baseline) -> the scalar REINFORCE loss of eq. (3)."""
    for logits, rewards in _cases():
        logps, b = torch.log_softmax(logits, -1), rewards.mean().item()
        want = reinforce_loss(logps, rewards, b)[0].item()
        got = float(answer(logps, rewards, b))
        if math.isclose(got, -want, rel_tol=1e-6) and abs(want) > 1e-9:
            return False, "the sign is flipped: optimisers minimise, so the loss is -(R - b) log pi"
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            return False, f"expected {want:.5f}, got {got:.5f} (mean over the batch of -(R - b) log pi)"
    return True, "minimising -(R - b) log pi raises the probability of better-than-baseline samples"


@exercise("04.3")
def _loo_baseline(answer) -> tuple[bool, str]:
    """A function rewards (B,) -> leave-one-out mean baseline (B,), whole batch one group."""
    for _, rewards in _cases():
        want = mean_baseline(rewards)
        got = torch.as_tensor(answer(rewards.clone()), dtype=torch.float64)
        if got.shape == want.shape and torch.allclose(got, torch.full_like(want, rewards.mean().item())):
            return False, "that is the plain mean, which includes r_i itself and so depends on the sample"
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-8):
            return False, (f"for rewards {rewards.numpy().round(3)} expected {want.numpy().round(4)}, "
                           f"got {got.numpy().round(4)}")
    return True, "b_i does not depend on y_i, so the estimator stays unbiased"


SEQUENCE_PROBS = (0.5, 0.2, 0.1, 0.9)
"""Token probabilities pi(y_t | x, y_<t) of a four-token completion, for exercise 04.4."""


@exercise("04.4")
def _sequence_logprob(answer) -> tuple[bool, str]:
    """log pi(y | x) of a completion whose tokens had probabilities SEQUENCE_PROBS."""
    want = math.fsum(math.log(p) for p in SEQUENCE_PROBS)
    if math.isclose(float(answer), want, abs_tol=1e-4):
        return True, f"log pi(y | x) = sum_t log pi(y_t | ...) = {want:.4f} = log of {math.exp(want):.4f}"
    if math.isclose(float(answer), want / len(SEQUENCE_PROBS), abs_tol=1e-4):
        return False, "that is the mean per token; the sequence's log-probability is the sum"
    return False, "add the logs of the token probabilities"
