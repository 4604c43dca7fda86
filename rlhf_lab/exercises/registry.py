"""Checked exercises: each notebook ends with exercises whose answers `check` verifies.

    from rlhf_lab.exercises.registry import check
    check("00.1", my_answer)

Notebook NN's checkers live in `rlhf_lab.exercises.nbNN` (the find-the-bug ones in
`rlhf_lab.exercises.bug_checks`) and register themselves with the ``@exercise("NN.k")`` decorator;
`check` imports that module the first time one of its exercises is asked for.

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

import torch

_CHECKS: dict[str, Callable[[Any], tuple[bool, str]]] = {}


def checker_module(name: str) -> str:
    """The module that holds exercise ``name``'s checker: "05.2" -> rlhf_lab.exercises.nb05, "bug.3" ->
    rlhf_lab.exercises.bug_checks (notebook 05's find-the-bug exercises)."""
    notebook = name.split(".")[0]
    return "rlhf_lab.exercises." + ("bug_checks" if notebook == "bug" else f"nb{notebook}")


def exercise(name: str):
    """Register a checker ``f(answer) -> (ok, message)`` under ``name`` (e.g. "00.1")."""
    def wrap(f):
        _CHECKS[name] = f
        return f
    return wrap


def check(name: str, answer: Any) -> bool:
    """Check ``answer`` for exercise ``name``; prints the verdict and returns it."""
    if name not in _CHECKS:
        try:   # the checkers register themselves when their module is first imported
            importlib.import_module(checker_module(name))
        except ModuleNotFoundError as err:
            if err.name != checker_module(name):   # a checker module that fails to import is a bug: say so
                raise
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


def close(got, want, tol: float) -> bool:
    """Whether the numbers ``got`` match ``want`` one by one to ``tol``, as many of them as there are."""
    return len(got) == len(want) and all(math.isclose(g, w, abs_tol=tol) for g, w in zip(got, want))


def seeded_cases(seed: int, n: int, k: int) -> list[tuple]:
    """n seeded pairs of float64 vectors of length k (the first scaled by 1..n), for comparing
    a student's function with the reference on the same inputs."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(k, generator=g, dtype=torch.float64) * (i + 1),
             torch.randn(k, generator=g, dtype=torch.float64)) for i in range(n)]
