"""The checkers of notebook 02's exercises (preference data): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import random

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.labels.aggregation import elo_update, kendall_tau
from rlhf_lab.labels.store import ranking_to_pairs


@exercise("02.1")
def _pairs_exercise(answer) -> tuple[bool, str]:
    """A function pairs -> ranking: the best-first ranking that a complete set of (winner, loser) pairs
    of K items came from, the pairs in any order (the inverse of `ranking_to_pairs`)."""
    rng = random.Random(1)
    for k in (2, 3, 4, 5, 9):
        for _ in range(3):
            ranking = rng.sample(range(k), k)
            pairs = ranking_to_pairs(ranking)
            rng.shuffle(pairs)
            got = answer([tuple(p) for p in pairs])
            if list(got) != ranking:
                return False, f"for the pairs {pairs} (shuffled) you give {list(got)}"
    return True, "the best item wins K - 1 of its pairs, the next K - 2, ..., the worst none"


@exercise("02.2")
def _kendall_exercise(answer) -> tuple[bool, str]:
    """A function (ranking_a, ranking_b) -> Kendall tau, compared with aggregation.kendall_tau."""
    rng = random.Random(2)
    cases = [([0, 1, 2], [0, 1, 2]), ([0, 1, 2], [2, 1, 0]), ([0, 1, 2, 3], [1, 0, 2, 3])]
    cases += [(rng.sample(range(k), k), rng.sample(range(k), k)) for k in (4, 5, 9) for _ in range(3)]
    for a, b in cases:
        expected, got = kendall_tau(a, b), float(answer(list(a), list(b)))
        if abs(got - expected) > 1e-9:
            return False, f"for {a} and {b} you give tau = {got:.4f}"
    return True, "tau = 1 for the same order, -1 for the reverse"


@exercise("02.3")
def _elo_exercise(answer) -> tuple[bool, str]:
    """A function (r_winner, r_loser, k_factor) -> new (r_winner, r_loser), compared with elo_update."""
    for rw, rl, k in ((1000, 1000, 32), (1200, 1000, 32), (900, 1300, 16), (1500, 1500, 10)):
        expected, got = elo_update(rw, rl, k), tuple(map(float, answer(rw, rl, k)))
        if len(got) != 2:
            return False, f"answer with the two new ratings (winner, loser); you give {len(got)} numbers"
        if max(abs(g - e) for g, e in zip(got, expected)) > 1e-6:
            return False, f"for r_w={rw}, r_l={rl}, K={k} you give {got}"
    return True, "an upset (the lower-rated player winning) moves the ratings most"
