"""Notebook 02: preference data."""
from rlhf_lab.labels.aggregation import elo_update


def ranking_from_pairs(pairs):
    """The best item wins K - 1 pairs, the next K - 2, ..., the worst none: sort by wins."""
    items = {x for p in pairs for x in p}
    wins = {i: 0 for i in items}
    for w, _ in pairs:
        wins[w] += 1
    return sorted(items, key=lambda i: -wins[i])


def kendall_tau(a, b):
    """(concordant - discordant) / C(K, 2), comparing the items' positions in the two rankings."""
    pa, pb = {x: i for i, x in enumerate(a)}, {x: i for i, x in enumerate(b)}
    items, c, d = list(a), 0, 0
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            s = (pa[items[i]] - pa[items[j]]) * (pb[items[i]] - pb[items[j]])
            c, d = c + (s > 0), d + (s < 0)
    return (c - d) / (len(items) * (len(items) - 1) / 2)


def elo(r_w, r_l, k):
    """E_w = 1 / (1 + 10^((r_l - r_w) / 400)); the winner gains k (1 - E_w), the loser loses as much."""
    e = 1 / (1 + 10 ** ((r_l - r_w) / 400))
    return r_w + k * (1 - e), r_l - k * (1 - e)


def _tau_of_sequences(a, b):
    n = len(a)
    s = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i in range(n) for j in range(i + 1, n))
    d = sum((a[i] - a[j]) * (b[i] - b[j]) < 0 for i in range(n) for j in range(i + 1, n))
    return (s - d) / (n * (n - 1) / 2)


SOLUTIONS = {"02.1": lambda: ranking_from_pairs, "02.2": lambda: kendall_tau, "02.3": lambda: elo}
WRONG = {
    "02.1": [("worst first", lambda: lambda pairs: list(reversed(ranking_from_pairs(pairs)))),
             ("order of first appearance", lambda: lambda pairs: list(dict.fromkeys(x for p in pairs for x in p)))],
    "02.2": [("the share of agreeing pairs, not tau", lambda: lambda a, b: (kendall_tau(a, b) + 1) / 2),
             ("the lists compared element by element, as scipy.stats.kendalltau(a, b) does", lambda: _tau_of_sequences)],
    "02.3": [("a fixed step of k / 2", lambda: lambda w, l, k: (w + k / 2, l - k / 2)),
             ("only the winner's new rating", lambda: lambda w, l, k: (elo_update(w, l, k)[0],))],
}
