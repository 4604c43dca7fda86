"""The checkers of notebook 01's exercises (the RL recap): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch
from transformers import AutoConfig

from rlhf_lab.exercises.registry import exercise, seeded_cases
from rlhf_lab.lm.models import resolve
from rlhf_lab.rl.bandit import expected_regret, gradient_bandit_update


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
            return False, (f"for probs {probs.numpy().round(3)} and means {means.numpy().round(3)} "
                           f"expected {want:.4f}, got {got:.4f}")
    return True, "regret = best mean minus the policy's expected reward"


@exercise("01.2")
def _gradient_bandit_update(answer) -> tuple[bool, str]:
    """A function (logits, action, reward, baseline, lr) -> new logits, eq. 2.12."""
    for i, (logits, _) in enumerate(_cases()):
        args = (logits.clone(), i % logits.numel(), 1.5 - i, 0.25 * i, 0.1)
        want, got = gradient_bandit_update(*args), torch.as_tensor(answer(*args), dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-8):
            return False, (f"for action {args[1]}, reward {args[2]}, baseline {args[3]} expected "
                           f"{want.numpy().round(4)}, got {got.numpy().round(4)}; "
                           "every arm moves, not only the one pulled")
    return True, "the pulled arm moves by lr (R - b)(1 - pi_a), every other arm by -lr (R - b) pi_j"


@exercise("01.3")
def _action_spaces(answer) -> tuple[bool, str]:
    """(actions at one token step, distinct two-token completions) for the tiny model."""
    v = AutoConfig.from_pretrained(resolve("tiny")[1]).vocab_size
    if tuple(answer) == (v, v ** 2):
        return True, f"{v:,} actions per token, {v ** 2:,} two-token completions: the bandit's action space explodes"
    return False, "one token step chooses among all n_vocab tokens; a two-token completion is a pair of them"
