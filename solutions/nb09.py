"""Notebook 09: rewards a program can check."""
import math
import re

from rlhf_lab.exercises.nb09 import GROUP_SIZES, P_PASS
from rlhf_lab.world.specs import films_named


def zero_advantage_shares():
    """A group teaches nothing when its K rewards are equal: all pass (p^K) or all fail ((1-p)^K), disjoint
    events for K >= 1, so the share is p^K + (1-p)^K."""
    return tuple(P_PASS ** k + (1 - P_PASS) ** k for k in GROUP_SIZES)


def concentration():
    """pass@k of a prompt passed with probability p is 1 - (1-p)^k; a policy's is the average over its prompts.
    A: 0.5 everywhere. B: half its prompts at 0.9, half at 0.1: the same pass@1, a lower pass@8."""
    a1, a8 = 0.5, 1 - 0.5 ** 8
    b1 = 0.5 * 0.9 + 0.5 * 0.1
    b8 = 0.5 * (1 - 0.1 ** 8) + 0.5 * (1 - 0.9 ** 8)
    return a1, a8, b1, b8


def sentence_verifier():
    """Finished: the last non-space character ends a sentence. Sentences: count the . ! and ? marks."""
    def at_most(text, n):
        text = text.rstrip()
        marks = len(re.findall(r"[.!?]", text))
        return bool(text) and text[-1] in ".!?" and 1 <= marks <= n
    return at_most


def title_fix():
    """The broken check accepts any film whose title contains the asked one or is contained in it: "Paper Monsoon"
    for "The Paper Monsoon". A title is copied or it is not: compare with ==."""
    return lambda title, text: all(t == title for t in films_named(text))


def pass_at_k_fix():
    """1 - (1 - c/n)^k draws the k samples with replacement; pass@k is about k distinct samples of the n: the
    chance that a subset of k holds no passing one is C(n-c, k) / C(n, k)."""
    return lambda n, c, k: 1.0 - math.comb(n - c, k) / math.comb(n, k)


SOLUTIONS = {"09.1": zero_advantage_shares, "09.2": concentration, "09.3": sentence_verifier, "09.4": title_fix,
             "09.5": pass_at_k_fix}
WRONG = {
    "09.1": [("only the all-pass groups", lambda: tuple(P_PASS ** k for k in GROUP_SIZES)),
             ("a dict instead of a tuple", lambda: dict(zip(GROUP_SIZES, zero_advantage_shares()))),
             ("only the all-fail groups", lambda: tuple((1 - P_PASS) ** k for k in GROUP_SIZES))],
    "09.2": [("pass@k taken as k times pass@1, capped at 1", lambda: (0.5, 1.0, 0.5, 1.0)),
             ("B's pass@8 from its average pass rate", lambda: (0.5, 1 - 0.5 ** 8, 0.5, 1 - 0.5 ** 8))],
    "09.3": [("sentences split on '.' only", lambda: lambda t, n: t.rstrip().endswith(".") and 1 <= t.count(".") <= n),
             ("unfinished reviews accepted", lambda: lambda t, n: 1 <= len(re.findall(r"[.!?]", t)) <= n)],
    "09.4": [("case-insensitive containment", lambda: lambda title, text: title.lower() in text.lower()),
             ("the title must appear somewhere", lambda: lambda title, text: title in text),
             ("case-insensitive equality", lambda: lambda title, text: all(t.lower() == title.lower()
                                                                           for t in films_named(text))),
             ("at most one film, and that one", lambda: lambda title, text: films_named(text) in ([], [title]))],
    "09.5": [("the broken estimator unchanged", lambda: lambda n, c, k: 1 - (1 - c / n) ** k),
             ("pass@1 for every k", lambda: lambda n, c, k: c / n)],
}
