"""The checkers of notebook 04's exercises (the policy gradient): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise, seeded_cases
from rlhf_lab.rl.policy_gradient import exact_gradient


def _cases(n: int = 4, k: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Seeded (logits, rewards) pairs on which a student's function is compared with ours."""
    return seeded_cases(4, n, k)


def _regularised_objective(logits, rewards, ref_logits, beta):
    """J(z) - beta KL(pi || pi_ref) of a softmax policy over K outcomes."""
    logp, ref = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    return (logp.exp() * (rewards - beta * (logp - ref))).sum()


@exercise("04.1")
def _exact_gradient(answer) -> tuple[bool, str]:
    """A function (logits, rewards, ref_logits, beta) -> the gradient of E_pi[r] - beta KL(pi || pi_ref) with
    respect to the logits, (K,), in closed form."""
    for i, (logits, rewards) in enumerate(_cases()):
        ref_logits, beta = torch.roll(logits, 1) * 0.5, (0.0, 0.1, 0.5, 2.0)[i]
        z = logits.clone().requires_grad_(True)
        want, = torch.autograd.grad(_regularised_objective(z, rewards, ref_logits, beta), z)
        got = torch.as_tensor(answer(logits.clone(), rewards.clone(), ref_logits.clone(), beta), dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-8):
            if got.shape == want.shape and torch.allclose(got, exact_gradient(logits, rewards), atol=1e-8) and beta:
                return False, f"with beta = {beta} the KL term changes the gradient; yours is the one of E[r] alone"
            return False, f"for logits {logits.numpy().round(2)}, beta = {beta} you give {got.numpy().round(4)}"
    return True, "pi_j times (r_j - beta log(pi_j / pi_ref,j)) minus its mean under pi: the KL acts as a reward"


@exercise("04.2")
def _reinforce_loss(answer) -> tuple[bool, str]:
    """A function (logps (B,), ref_logps (B,), rewards (B,), beta) -> a scalar loss whose gradient in logps is
    minus the REINFORCE estimate with the KL-shaped reward R - beta (log pi - log pi_ref), the KL not
    differentiated through (it is part of the reward, as in PPO's)."""
    for logits, rewards in _cases():
        logps = torch.log_softmax(logits, -1).requires_grad_(True)
        ref = torch.log_softmax(0.5 * logits, -1)
        beta = 0.3
        want = -((rewards - beta * (logps - ref)).detach() * logps).mean()
        want_grad, = torch.autograd.grad(want, logps)
        got = answer(logps, ref.clone(), rewards.clone(), beta)
        got_grad, = torch.autograd.grad(torch.as_tensor(got).reshape(()), logps, allow_unused=True)
        if got_grad is None:
            return False, "your loss does not depend on logps: no gradient reaches the policy"
        if torch.allclose(got_grad, -want_grad, atol=1e-8):
            return False, "the sign is flipped: optimisers minimise the loss"
        if not torch.allclose(got_grad, want_grad, atol=1e-8):
            return False, "the gradient in logps differs from REINFORCE's with that reward: is anything differentiated that should not be?"
    return True, "the penalty shapes the reward; only log pi of the sampled outcome carries the gradient"


@exercise("04.3")
def _loo_baseline(answer) -> tuple[bool, str]:
    """A function (logits (K,), rewards (K,)) -> the constant baseline b that minimises the variance (the
    expected squared norm) of the one-sample estimate (R(a) - b) grad_z log pi(a) of a softmax policy."""
    for logits, rewards in _cases():
        pi = torch.softmax(logits, -1)
        g2 = 1 - 2 * pi + (pi ** 2).sum()                    # ||e_a - pi||^2 for each outcome a
        want = float((pi * rewards * g2).sum() / (pi * g2).sum())
        got = float(answer(logits.clone(), rewards.clone()))
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            if math.isclose(got, float((pi * rewards).sum()), rel_tol=1e-6):
                return False, "the mean reward is a good baseline, but not the one of least variance here"
            return False, f"for logits {logits.numpy().round(2)} you give {got:.5f}"
    return True, "a reward average weighted by the squared score: close to the mean reward, not equal to it"


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
    return False, "not the probability of the completion itself, but its log"
