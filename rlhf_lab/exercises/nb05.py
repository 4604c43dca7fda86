"""The checkers of notebook 05's exercises (PPO with a KL penalty): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.rl.ppo import gae, per_token_rewards


@exercise("05.1")
def _per_token_reward(answer) -> tuple[bool, str]:
    """The rewards (list of 3 floats) of a 3-token response with kl = (0.2, -0.1, 0.3),
    score 1.5 and beta 0.1."""
    want, _ = per_token_rewards(torch.tensor([1.5]), torch.tensor([[0.2, -0.1, 0.3]]), torch.ones(1, 3), 0.1)
    got = torch.as_tensor(answer, dtype=torch.float32).reshape(-1)
    if got.shape == (3,) and torch.allclose(got, want[0], atol=1e-4):
        return True, "the KL is paid at every token, the score only at the last"
    if got.shape == (3,) and torch.allclose(got, want[0] + torch.tensor([1.5, 1.5, 0.0]), atol=1e-4):
        return False, "the score is added once, at the last token, not at every token"
    return False, f"r_t = -beta kl_t, plus the score at the last token; expected {want[0].numpy().round(3)}"


@exercise("05.2")
def _gae_exercise(answer) -> tuple[bool, str]:
    """A function (rewards (T,), values (T,), gamma, lam) -> advantages (T,) for one episode."""
    gen = torch.Generator().manual_seed(5)
    for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (1.0, 1.0), (0.99, 0.0)):
        r, v = torch.randn(6, generator=gen), torch.randn(6, generator=gen)
        want, _ = gae(r[None], v[None], torch.ones(1, 6), gamma, lam)
        got = torch.as_tensor(answer(r.clone(), v.clone(), gamma, lam), dtype=torch.float32).reshape(-1)
        if got.shape != (6,) or not torch.allclose(got, want[0], atol=1e-4):
            return False, (f"gamma={gamma}, lam={lam}: expected {want[0].numpy().round(3)}, got "
                           f"{got.numpy().round(3)} (is V = 0 after the last token?)")
    return True, "lam = 1 gives the Monte-Carlo return minus V; lam = 0 the one-step TD error"


@exercise("05.3")
def _clip_exercise(answer) -> tuple[bool, str]:
    """The per-token surrogate min(rho A, clip(rho) A) for rho = 1.5, A = 2 and for rho = 0.5, A = 2, eps 0.2."""
    want = (min(1.5 * 2, 1.2 * 2), min(0.5 * 2, 0.8 * 2))
    got = tuple(float(a) for a in answer)
    if all(math.isclose(g, w, abs_tol=1e-6) for g, w in zip(got, want)) and len(got) == 2:
        return True, "above 1 + eps the gain is capped; below 1 - eps with A > 0 the min keeps the unclipped (worse) term"
    return False, f"expected {want}: min(rho A, clip(rho, 0.8, 1.2) A)"
