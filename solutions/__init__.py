"""Worked solutions to the course's exercises, for instructors (not shown in the notebooks).

Each module ``nbNN`` holds, for every exercise of notebook NN (``bugs`` for notebook 05's find-the-bug ones),
``SOLUTIONS[id]``: a function of no arguments that returns a right answer, written the way a student would
work it out, with the reasoning in its docstring; and ``WRONG[id]``: plausible wrong answers, each with the
mistake it stands for. `tests/exercises/test_solutions.py` checks every solution with `check` and every wrong
answer against it, for every exercise the notebooks ask.
"""
import importlib

MODULES = ("nb00", "nb01", "nb02", "nb03", "nb04", "nb05", "nb06", "nb07", "nb08", "nb09", "nb10", "bugs")


def collect() -> tuple[dict, dict]:
    """(SOLUTIONS, WRONG) of every module, merged."""
    solutions, wrong = {}, {}
    for name in MODULES:
        module = importlib.import_module(f"solutions.{name}")
        solutions.update(module.SOLUTIONS)
        wrong.update(module.WRONG)
    return solutions, wrong
