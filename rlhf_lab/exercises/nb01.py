"""The checkers of notebook 01's exercises (the RL recap): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import numpy as np
import torch
from transformers import AutoConfig

from rlhf_lab.exercises.registry import exercise, seeded_cases
from rlhf_lab.lm.models import resolve
from rlhf_lab.rl.bandit import expected_regret, gradient_bandit_update
from rlhf_lab.rl.mdp import ChainMDP, policy_values


def _cases(n: int = 4, k: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, means) pairs, seeded, for comparing a student's function with ours."""
    return seeded_cases(1, n, k)


@exercise("01.1")
def _expected_regret(answer) -> tuple[bool, str]:
    """A function (probs, means) -> expected regret of the policy."""
    for logits, means in _cases():
        probs = torch.softmax(logits, -1)
        want, got = expected_regret(probs, means).item(), float(answer(probs, means))
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            return False, f"for probs {probs.numpy().round(3)} and means {means.numpy().round(3)} you give {got:.4f}"
    return True, "regret = best mean minus the policy's expected reward"


@exercise("01.2")
def _gradient_bandit_update(answer) -> tuple[bool, str]:
    """A function (logits, action, reward, baseline, lr) -> new logits, eq. 2.12."""
    for i, (logits, _) in enumerate(_cases()):
        args = (logits.clone(), i % logits.numel(), 1.5 - i, 0.25 * i, 0.1)
        want, got = gradient_bandit_update(*args), torch.as_tensor(answer(*args), dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-8):
            return False, (f"for action {args[1]}, reward {args[2]}, baseline {args[3]} you give "
                           f"{got.numpy().round(4)}; which preferences should a pull move?")
    return True, "the pulled arm moves by lr (R - b)(1 - pi_a), every other arm by -lr (R - b) pi_j"


@exercise("01.3")
def _action_spaces(answer) -> tuple[bool, str]:
    """The number of distinct completions the tiny model can write within a budget of 2 new tokens, a
    completion ending at EOS (nothing follows an EOS)."""
    cfg = AutoConfig.from_pretrained(resolve("tiny")[1])
    v = cfg.vocab_size
    want = 1 + (v - 1) * v          # EOS at once, or a non-EOS token followed by any token
    if int(answer) == want and float(answer) == want:
        return True, f"{want:,} completions in two tokens: the bandit's action space grows as n_vocab^T"
    if int(answer) in (v ** 2, v + v ** 2):
        return False, "close: what can follow a first token that is EOS?"
    return False, "count by the first token: either it ends the completion, or a second token follows"


def _random_mdp(seed: int, S: int = 4, A: int = 2):
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(S, A, S, generator=g, dtype=torch.float64)
    pi = torch.rand(S, A, generator=g, dtype=torch.float64)
    return (torch.randn(S, generator=g, dtype=torch.float64), P / P.sum(-1, keepdim=True),
            torch.randn(S, A, generator=g, dtype=torch.float64), pi / pi.sum(-1, keepdim=True))


@exercise("01.4")
def _bellman_backup(answer) -> tuple[bool, str]:
    """A function (V, P, R, pi, gamma) -> one Bellman expectation backup of V, shape (S,)."""
    for seed, gamma in ((0, 0.9), (1, 0.5), (2, 1.0)):
        V, P, R, pi = _random_mdp(seed)
        want = (pi * (R + gamma * P @ V)).sum(-1)
        got = torch.as_tensor(answer(V.numpy(), P.numpy(), R.numpy(), pi.numpy(), gamma), dtype=torch.float64)
        if got.shape != want.shape:
            return False, f"answer with one value per state, shape {tuple(want.shape)}; you give shape {tuple(got.shape)}"
        if not torch.allclose(got, want, atol=1e-9):
            return False, f"on a random 4-state MDP (gamma = {gamma}) you give {got.numpy().round(4)}"
    return True, "applied again and again to any V (gamma < 1), the backup converges to V^pi"


@exercise("01.5")
def _expected_steps(answer) -> tuple[bool, str]:
    """The exact expected number of steps of an episode from state 0 of section 4's chain under its policy."""
    counting = ChainMDP(n=6, slip=0.1, step_cost=-1.0, goal=0.0, gamma=1.0)   # a reward of 1 for every step
    want = policy_values(counting, np.tile([0.3, 0.7], (6, 1)))[0]
    got = float(answer)
    if math.isclose(got, want, rel_tol=1e-4):
        return True, f"{want:.4f} steps: a value function counts whatever the reward counts"
    if abs(got - want) < 0.1 * want:
        return False, "close, but a sample average is not the expectation: solve for it exactly"
    return False, "not the exact value yet: a value function can count more than rewards"
