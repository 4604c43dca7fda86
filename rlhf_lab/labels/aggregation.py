"""From pairwise comparisons to one scale: Elo, Bradley-Terry, and how much labelers agree.

A comparison is a pair (winner, loser) of hashable items (completions, models, ...).

* **Elo** (Elo 1978; the rating system of chess, one way to turn comparisons into a scalar
  reward signal) updates two ratings after every game. With expected score
  E_w = 1 / (1 + 10^((R_l - R_w) / 400)), the winner gains K (1 - E_w) and the loser loses
  the same. Each update uses the ratings as they are *now*, so the result depends on the
  order of the games: the reason LMSYS Chatbot Arena (Chiang et al. 2024) replaced
  online Elo by a Bradley-Terry fit.
* **Bradley-Terry** (Bradley & Terry 1952) models P(i beats j) = sigmoid(theta_i - theta_j)
  and fits theta by maximum likelihood over all comparisons at once,

      max_theta  sum_{(w, l)} log sigmoid(theta_w - theta_l) - (lambda / 2) ||theta||^2,

  which depends on the comparisons only through their counts, not their order. The small
  ridge term keeps the maximum finite when an item never loses. theta is in nats of log-odds;
  400 / ln 10 * theta is on the Elo scale. This is the loss of the reward model in notebook
  03 with one free parameter per completion instead of a network.
* **Agreement** between two rankings of the same K items: the share of the C(K, 2) pairs they
  order alike, and Kendall's tau = (concordant - discordant) / C(K, 2) = 2 * agreement - 1.
  InstructGPT §3.4 reports labelers agreeing with each other on 72.6% of comparisons.
* **Intransitive triples**: a > b, b > c and c > a by majority. One ranking never has one;
  pooled labelers (Condorcet's paradox) and independent A/B judgments can.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import combinations
from typing import Hashable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_lab.labels.store import ranking_to_pairs

ELO_SCALE = 400 / math.log(10)   # Elo points per nat of log-odds


def elo_update(r_winner: float, r_loser: float, k_factor: float = 32.0) -> tuple[float, float]:
    """One Elo game: both ratings move by K (1 - E_w), E_w = 1 / (1 + 10^((r_l - r_w) / 400))."""
    expected = 1 / (1 + 10 ** ((r_loser - r_winner) / 400))
    delta = k_factor * (1 - expected)
    return r_winner + delta, r_loser - delta


def elo_ratings(comparisons: Iterable[tuple[Hashable, Hashable]], k_factor: float = 32.0,
                initial: float = 1000.0) -> dict:
    """Sequential Elo ratings after playing ``comparisons`` in the given order."""
    ratings: dict = defaultdict(lambda: initial)
    for w, l in comparisons:
        ratings[w], ratings[l] = elo_update(ratings[w], ratings[l], k_factor)
    return dict(ratings)


def bradley_terry(comparisons: Iterable[tuple[Hashable, Hashable]], l2: float = 0.01,
                  max_iter: int = 200) -> dict:
    """Maximum-likelihood Bradley-Terry strengths theta (nats, mean 0) of every item.

    Full-batch L-BFGS in float64 on the ridge-regularised log-likelihood (module docstring);
    the objective is strictly concave, so the answer is unique and independent of the order
    of ``comparisons`` (up to floating-point rounding, ~1e-9).
    """
    counts = Counter((w, l) for w, l in comparisons)
    if not counts:
        return {}
    items = sorted({x for pair in counts for x in pair}, key=repr)
    index = {x: i for i, x in enumerate(items)}
    pairs = sorted(counts, key=lambda p: (index[p[0]], index[p[1]]))   # order-free summation
    w = torch.tensor([index[p[0]] for p in pairs])
    lo = torch.tensor([index[p[1]] for p in pairs])
    n = torch.tensor([counts[p] for p in pairs], dtype=torch.float64)
    t = _fit_bt(torch.zeros(len(items), dtype=torch.float64), lambda th: (n * F.logsigmoid(th[w] - th[lo])).sum(),
                l2, max_iter)
    t = t - t.mean()
    return {x: float(t[i]) for x, i in index.items()}


def bradley_terry_groups(wins: torch.Tensor, l2: float = 0.01, max_iter: int = 200) -> torch.Tensor:
    """Bradley-Terry strengths of K items in each of G independent groups at once.

    wins: (G, K, K), wins[g, a, b] = how often a beat b in group g. Returns theta (G, K), mean 0
    per group: the maximiser of sum n_ab log sigmoid(theta_a - theta_b) - l2/2 ||theta||^2, which
    separates by group, so one L-BFGS run over all G*K strengths fits every group (`bradley_terry`
    is the same fit for one group of any hashable items; `pooling.consensus` fits a class's rankings).
    """
    wins = wins.to(torch.float64)
    t = _fit_bt(torch.zeros(wins.shape[:2], dtype=torch.float64),
                lambda th: (wins * F.logsigmoid(th[:, :, None] - th[:, None, :])).sum(), l2, max_iter)
    return t - t.mean(1, keepdim=True)


def _fit_bt(theta: torch.Tensor, log_likelihood, l2: float, max_iter: int) -> torch.Tensor:
    """Maximise log_likelihood(theta) - l2/2 ||theta||^2 with full-batch L-BFGS (float64, strictly concave)."""
    theta = theta.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=max_iter, tolerance_grad=1e-10,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        nll = -log_likelihood(theta) + 0.5 * l2 * theta.square().sum()
        nll.backward()
        return nll

    opt.step(closure)
    return theta.detach()


def kendall_tau(a: Sequence[int], b: Sequence[int]) -> float:
    """Kendall's tau between two best-to-worst rankings of the same K items, in [-1, 1]."""
    if sorted(a) != sorted(b):
        raise ValueError(f"rankings {list(a)} and {list(b)} do not order the same items")
    pos_a, pos_b = {x: i for i, x in enumerate(a)}, {x: i for i, x in enumerate(b)}
    concordant = discordant = 0
    for x, y in combinations(list(a), 2):
        same = (pos_a[x] - pos_a[y]) * (pos_b[x] - pos_b[y]) > 0
        concordant += same
        discordant += not same
    return (concordant - discordant) / max(1, concordant + discordant)


def pairwise_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of the C(K, 2) pairs that two rankings of the same items order alike: (1 + tau) / 2."""
    return (1 + kendall_tau(a, b)) / 2


def agreement(records_a, records_b) -> dict:
    """Agreement and mean Kendall tau of two labelers over the prompts both ranked (same completions).

    Rankings are compared by completion text, so two records of one prompt whose completions
    come in another order still compare correctly. Returns n_prompts, agreement, tau.
    """
    by_prompt = {r.prompt_id: r for r in records_a}
    agree, taus = [], []
    for rb in records_b:
        ra = by_prompt.get(rb.prompt_id)
        if ra is None or set(ra.completions) != set(rb.completions):
            continue
        a = [ra.completions[i] for i in ra.ranking]
        b = [rb.completions[i] for i in rb.ranking]
        idx = {t: i for i, t in enumerate(a)}
        tau = kendall_tau(list(range(len(a))), [idx[t] for t in b])
        taus.append(tau)
        agree.append((1 + tau) / 2)
    if not taus:
        return {"n_prompts": 0, "agreement": float("nan"), "tau": float("nan")}
    return {"n_prompts": len(taus), "agreement": float(np.mean(agree)), "tau": float(np.mean(taus))}


def agreement_matrix(records, labelers: list[str] | None = None):
    """(labelers, agreement matrix, tau matrix) over every pair of labelers in ``records``."""
    by_labeler: dict[str, list] = defaultdict(list)
    for r in records:
        by_labeler[r.labeler].append(r)
    names = labelers or sorted(by_labeler)
    agree, tau = np.ones((len(names), len(names))), np.ones((len(names), len(names)))
    for i, j in combinations(range(len(names)), 2):
        res = agreement(by_labeler[names[i]], by_labeler[names[j]])
        agree[i, j] = agree[j, i] = res["agreement"]
        tau[i, j] = tau[j, i] = res["tau"]
    return names, agree, tau


def comparisons_from_records(records) -> list[tuple[str, str]]:
    """(winner, loser) items "<prompt_id>/<completion index>" from each record's C(K, 2) pairs."""
    return [(f"{r.prompt_id}/{w}", f"{r.prompt_id}/{l}") for r in records for w, l in ranking_to_pairs(r.ranking)]


def majority(comparisons: Iterable[tuple[Hashable, Hashable]]) -> set[tuple[Hashable, Hashable]]:
    """Edges (a, b) where a beat b more often than b beat a (equal counts give no edge)."""
    counts = Counter(comparisons)
    return {(a, b) for (a, b), n in counts.items() if n > counts.get((b, a), 0)}


def intransitive_triples(comparisons: Iterable[tuple[Hashable, Hashable]]) -> list[tuple]:
    """The 3-cycles a > b > c > a of the majority preferences, each listed once."""
    edges = majority(comparisons)
    beats: dict = defaultdict(set)
    for a, b in edges:
        beats[a].add(b)
    cycles = set()
    for a, b in edges:
        for c in beats[b]:
            if a in beats[c]:
                cycles.add(min((a, b, c), (b, c, a), (c, a, b), key=repr))   # one rotation per cycle
    return sorted(cycles, key=repr)
