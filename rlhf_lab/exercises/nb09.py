"""The checkers of notebook 09's exercises (rewards a program can check): `rlhf_lab.exercises.registry.check`
runs them. The two find-the-bug exercises' broken functions are in `rlhf_lab.exercises.bugs` (section 09)."""
from __future__ import annotations

import math
import random

from rlhf_lab.verifiable import pass_at_k
from rlhf_lab.exercises.registry import close, exercise
from rlhf_lab.world.reviews import ReviewWorld
from rlhf_lab.world.specs import films_named

P_PASS, GROUP_SIZES = 0.8, (4, 8)
"""Exercise 09.1: a policy that passes a prompt with probability P_PASS; groups of K = 4 and K = 8."""
POLICIES = {"A": [(1.0, 0.5)], "B": [(0.5, 0.9), (0.5, 0.1)]}
"""Exercise 09.2: (share of prompts, pass probability on them) for two policies with the same pass@1."""


def _zero_advantage_share(p: float, k: int) -> float:
    return p ** k + (1 - p) ** k


@exercise("09.1")
def _zero_std_exercise(answer) -> tuple[bool, str]:
    """The expected share of groups whose K 0/1 rewards are all equal (no gradient), for K = 4 and K = 8."""
    want = [_zero_advantage_share(P_PASS, k) for k in GROUP_SIZES]
    if isinstance(answer, dict):
        return False, "answer with a tuple of two numbers: (K = 4, K = 8)"
    got = tuple(float(x) for x in answer)
    if len(got) != 2:
        return False, "answer with two shares between 0 and 1: (K = 4, K = 8)"
    if close(got, want, 5e-4):
        return True, (f"{want[0]:.4f} of the groups teach nothing at K = 4, {want[1]:.4f} at K = 8: a policy that "
                      "already passes most of its prompts starves a group method of signal, and larger groups help")
    if close(got, [P_PASS ** k for k in GROUP_SIZES], 5e-4):
        return False, "a group can be uniform in two ways"
    return False, "the K samples of a prompt are independent; a group gives no gradient when all K rewards are equal"


def _pass_at(policy: str, k: int) -> float:
    return sum(w * (1 - (1 - p) ** k) for w, p in POLICIES[policy])


@exercise("09.2")
def _concentration_exercise(answer) -> tuple[bool, str]:
    """(pass@1 of A, pass@8 of A, pass@1 of B, pass@8 of B), in expectation over the samples."""
    want = [_pass_at("A", 1), _pass_at("A", 8), _pass_at("B", 1), _pass_at("B", 8)]
    if isinstance(answer, dict):
        return False, "answer with a tuple of four numbers: (A's pass@1, A's pass@8, B's pass@1, B's pass@8)"
    got = tuple(float(x) for x in answer)
    if len(got) != 4:
        return False, "answer with four numbers: (A's pass@1, A's pass@8, B's pass@1, B's pass@8)"
    if close(got, want, 5e-3):
        return True, (f"the same pass@1 ({want[0]:.2f}) and pass@8 {want[1]:.3f} against {want[3]:.3f}: pass@k at "
                      "large k measures how many prompts a policy can solve at all, not how often")
    if close(got[:2], want[:2], 5e-3):
        return False, "A is right; B's pass@8 is an average over its two kinds of prompt of each kind's pass@8"
    return False, "pass@k of one prompt is the chance that at least one of k independent samples passes"


def _finished_and_short(text: str, n: int) -> bool:
    ends = [c for c in text if c in ".!?"]
    return bool(text.strip()) and text.rstrip()[-1] in ".!?" and 1 <= len(ends) <= n


def _sentence_cases() -> list[tuple[str, int]]:
    world, rng = ReviewWorld(0), random.Random(9)
    cases = [(world.review(rng).text, n) for n in (1, 2, 3) for _ in range(30)]
    cases += [("The plot is dull", 1), ("", 1), ("The plot is dull. The acting", 2), ("Wow! Great!", 1),
              ("Wow! Great!", 2), ("Is it good? No.", 2), ("   ", 3), ("The plot is dull.  ", 1)]
    return cases


@exercise("09.3")
def _sentence_verifier_exercise(answer) -> tuple[bool, str]:
    """A function at_most(text, n) -> bool: a finished review of at least 1 and at most n sentences."""
    if not callable(answer):
        return False, "answer with a function at_most(text, n) -> bool"
    for text, n in _sentence_cases():
        want = _finished_and_short(text, n)
        try:
            got = answer(text, n)
        except Exception as err:   # a student's function may fail on a case; say which
            return False, f"it raised {type(err).__name__} on ({text!r}, {n})"
        if got is None:
            return False, f"it returned None for ({text!r}, {n}); return True or False"
        if bool(got) != want:
            return False, f"it answers {bool(got)} for ({text!r}, {n})"
    return True, "it agrees with the reference on the grammar's reviews and the edge cases"


def _title_ok(title: str, text: str) -> bool:
    return all(t == title for t in films_named(text))


TITLE_CASES = [("The Paper Monsoon", 'The ending of "The Paper Monsoon" is dull.'),
               ("The Paper Monsoon", 'The ending of "Paper Monsoon" is dull.'),
               ("The Paper Monsoon", "The ending of the film is dull."),
               ("Paper Monsoon", 'The ending of "The Paper Monsoon" is dull.'),
               ("The Paper Monsoon", 'I saw "The Paper Monsoon" and "Glass Canyon".'),
               ("Glass Canyon", "Glass Canyon has a dull ending."),
               ("Glass Canyon", "Glass Canyon has a dull ending, unlike The Glass Canyon."),
               ("Tower of Ash", 'The "Tower of Ash" ending is dull.'),
               ("Tower of Ash", 'The "Tower of Ashes" ending is dull.'),
               ("The Paper Monsoon", 'The ending of "the paper monsoon" is dull.'),
               ("The Paper Monsoon", '"The Paper Monsoon" ends badly. The Paper Monsoon drags.')]


@exercise("09.4")
def _title_bug_exercise(answer) -> tuple[bool, str]:
    """A fix of bugs.broken_title_check(title, text) -> bool."""
    if not callable(answer):
        return False, "answer with your fixed function title_check(title, text) -> bool"
    for title, text in TITLE_CASES:
        try:
            got = answer(title, text)
        except Exception as err:   # a student's function may fail on a case; say which
            return False, f"it raised {type(err).__name__} for title {title!r} and text {text!r}"
        if got is None:
            return False, f"it returned None for title {title!r}; return True or False"
        if bool(got) != _title_ok(title, text):
            return False, f"it answers {bool(got)} for title {title!r} and text {text!r}"
    return True, "every film a review names must be the one asked for, letter for letter"


@exercise("09.5")
def _pass_at_k_bug_exercise(answer) -> tuple[bool, str]:
    """A fix of bugs.broken_pass_at_k(n, c, k) -> float."""
    if not callable(answer):
        return False, "answer with your fixed function pass_at_k(n, c, k) -> float"
    for n, c, k in [(4, 2, 4), (10, 3, 4), (64, 1, 1), (64, 0, 16), (64, 64, 8), (20, 5, 10), (100, 7, 50)]:
        try:
            got = answer(n, c, k)
            if got is None:
                return False, "it returned None; return the estimate, a number between 0 and 1"
            got = float(got)
        except Exception as err:
            return False, f"it raised {type(err).__name__} for n={n}, c={c}, k={k}"
        if not math.isclose(got, pass_at_k(n, c, k), abs_tol=1e-6):
            return False, f"it gives {got:.4f} for n={n}, c={c}, k={k}"
    return True, "unbiased: it counts the subsets of k of the n samples that hold a passing one"
