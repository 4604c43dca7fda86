"""The checkers of notebook 05's exercises (PPO with a KL penalty): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.rl.ppo import gae, per_token_rewards
from rlhf_lab.rl.trust_region import clipped_objective_curve


@exercise("05.1")
def _per_token_reward(answer) -> tuple[bool, str]:
    """The GAE advantages (3 floats) with gamma = lam = 1 and V = 0 of a 3-token response with
    kl = (0.2, -0.1, 0.3), reward-model score 1.5 and beta = 0.1."""
    rewards, _ = per_token_rewards(torch.tensor([1.5]), torch.tensor([[0.2, -0.1, 0.3]]), torch.ones(1, 3), 0.1)
    want, _ = gae(rewards, torch.zeros(1, 3), torch.ones(1, 3), 1.0, 1.0)
    got = torch.as_tensor(answer, dtype=torch.float32).reshape(-1)
    if got.shape == (3,) and torch.allclose(got, want[0], atol=1e-4):
        return True, "each token is credited with the score and the KL penalties from it to the end"
    if got.shape != (3,):
        return False, "answer with one advantage per token, three numbers"
    if torch.allclose(got, rewards[0], atol=1e-4):
        return False, "those are the per-token rewards; with V = 0 an advantage is a return"
    return False, "with gamma = lam = 1 and V = 0, what does the GAE sum add up at each token?"


@exercise("05.2")
def _gae_exercise(answer) -> tuple[bool, str]:
    """A function (rewards (T,), values (T,), gamma, lam, last_value) -> advantages (T,) for one episode that the
    token budget cut off: the state after the last token is not terminal and last_value estimates V there."""
    gen = torch.Generator().manual_seed(5)
    for gamma, lam, last in ((1.0, 0.95, 0.0), (0.9, 0.5, 0.7), (1.0, 1.0, -0.4), (0.99, 0.0, 1.3)):
        r, v = torch.randn(6, generator=gen, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
        nxt = torch.cat([v[1:], torch.tensor([last], dtype=torch.float64)])
        want, acc = torch.zeros(6, dtype=torch.float64), 0.0
        for t in reversed(range(6)):
            acc = (r[t] + gamma * nxt[t] - v[t]) + gamma * lam * acc
            want[t] = acc
        got = torch.as_tensor(answer(r.clone(), v.clone(), gamma, lam, last), dtype=torch.float64).reshape(-1)
        if got.shape != (6,) or not torch.allclose(got, want, atol=1e-6):
            if last == 0.0:
                return False, f"a finished episode (last_value = 0), gamma={gamma}, lam={lam}: you give {got.numpy().round(3)}"
            return False, f"gamma={gamma}, lam={lam}, last_value={last}: you give {got.numpy().round(3)}"
    return True, "lam = 1 gives the return (bootstrapped with last_value) minus V; lam = 0 the one-step TD error"


@exercise("05.3")
def _clip_exercise(answer) -> tuple[bool, str]:
    """((objective, slope in rho) at rho = 0.85, (objective, slope) at rho = 1.15) of one token's clipped
    surrogate min(rho A, clip(rho, 1 - eps, 1 + eps) A) with eps = 0.1 and A = -2."""
    rho = torch.tensor([0.85, 1.15], dtype=torch.float64)
    _, objective, slope = clipped_objective_curve(rho, -2.0, eps=0.1)
    want = [(objective[i].item(), slope[i].item()) for i in range(2)]
    try:
        got = [(float(a), float(b)) for a, b in answer]
    except (TypeError, ValueError):
        return False, "answer with two (objective, slope) pairs: ((o, s), (o, s))"
    if len(got) == 2 and all(math.isclose(g, w, abs_tol=1e-6) for gp, wp in zip(got, want) for g, w in zip(gp, wp)):
        return True, ("below the band with A < 0 the token is clipped and pulls no further; above it the min keeps the "
                      "unclipped, worse term, with its full slope")
    if len(got) == 2 and all(math.isclose(gp[0], wp[0], abs_tol=1e-6) for gp, wp in zip(got, want)):
        return False, "the objectives are right; a slope is the derivative in rho, zero where the clipped term is taken"
    return False, "which of the two terms does the min take at each rho, when A is negative?"
