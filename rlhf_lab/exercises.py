"""Checked exercises: each notebook ends with exercises whose answers `check` verifies.

    from rlhf_lab.exercises import check
    check("00.1", my_answer)

A module registers its own checkers with the ``@exercise("NN.k")`` decorator.

`check` prints "correct" or what is off, and never raises, so a notebook with an exercise
still unanswered (``None``) runs top to bottom. The expected answers are computed from
the kit itself (the model's config, the gold judges), not typed in, so they stay true
when the model is rebuilt. As in spinningup's exercises, a function answer is compared
with the reference on several inputs with ``allclose``.
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Callable

_CHECKS: dict[str, Callable[[Any], tuple[bool, str]]] = {}
# Each notebook's checkers live next to the code they check (one concept, one module);
# `check` imports that module the first time one of its exercises is asked for.
_MODULES = {"01": "bandit", "02": "preferences", "03": "reward", "04": "policy_gradient",
            "05": "ppo", "06": "dpo", "07": "evaluation", "08": "group_rl", "bu": "bugs"}


def exercise(name: str):
    """Register a checker ``f(answer) -> (ok, message)`` under ``name`` (e.g. "00.1")."""
    def wrap(f):
        _CHECKS[name] = f
        return f
    return wrap


def check(name: str, answer: Any) -> bool:
    """Check ``answer`` for exercise ``name``; prints the verdict and returns it."""
    if name not in _CHECKS and name[:2] in _MODULES:
        importlib.import_module(f"rlhf_lab.{_MODULES[name[:2]]}")
    if name not in _CHECKS:
        raise KeyError(f"no exercise {name!r}; known: {sorted(_CHECKS)}")
    if answer is None:
        print(f"exercise {name}: not answered yet (replace None with your answer)")
        return False
    try:
        ok, message = _CHECKS[name](answer)
    except Exception as err:  # a student's function may fail in any way: say how
        ok, message = False, f"your answer raised {type(err).__name__}: {err}"
    print(f"exercise {name}: {'correct' if ok else 'not yet'}" + (f": {message}" if message else ""))
    return ok


def seeded_cases(seed: int, n: int, k: int) -> list[tuple]:
    """n seeded pairs of float64 vectors of length k (the first scaled by 1..n), for comparing
    a student's function with the reference on the same inputs."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(k, generator=g, dtype=torch.float64) * (i + 1),
             torch.randn(k, generator=g, dtype=torch.float64)) for i in range(n)]


# ---- notebook 00 ------------------------------------------------------------------------

@exercise("00.1")
def _unembedding_sizes(answer) -> tuple[bool, str]:
    """(parameters of the tiny model's unembedding without bias, parameters of a reward head with bias)."""
    from transformers import AutoConfig

    from .models import resolve

    cfg = AutoConfig.from_pretrained(resolve("tiny")[1])
    expected = (cfg.n_embd * cfg.vocab_size, cfg.n_embd + 1)
    if tuple(answer) == expected:
        return True, f"n_emb x n_vocab = {expected[0]:,} weights become n_emb + 1 = {expected[1]}"
    return False, "the unembedding maps n_emb -> n_vocab; the reward head maps n_emb -> 1 and has a bias"


@exercise("00.2")
def _fraction_well_formed(answer) -> tuple[bool, str]:
    """A function texts -> fraction judged well-formed (world.well_formed >= WELL_FORMED_THRESHOLD)."""
    from .world import WELL_FORMED_THRESHOLD, well_formed

    cases = [
        ["The plot is brilliant.", "The plot is", "good good good good good."],
        ["I watched it twice and the soundtrack is lovely!"],
        ["", "dull dull dull", "The acting is not bad, but the ending drags."],
    ]
    for texts in cases:
        expected = sum(well_formed(t) >= WELL_FORMED_THRESHOLD for t in texts) / len(texts)
        got = answer(texts)
        if not math.isclose(float(got), expected, abs_tol=1e-9):
            return False, f"for {texts!r} expected {expected:.3f}, got {got}"
    return True, ""


@exercise("00.3")
def _frozen_reference(answer) -> tuple[bool, str]:
    """A frozen copy of a model: no parameter requires a gradient, and it is in eval mode."""
    params = list(answer.parameters())
    if any(p.requires_grad for p in params):
        return False, "some parameters still require gradients (see requires_grad_)"
    if answer.training:
        return False, "the copy is in training mode: dropout would make pi_0 random (call .eval())"
    return True, "pi_0 stays fixed for the whole of RLHF"
