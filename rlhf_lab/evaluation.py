"""Measuring a learned reward against the truth: accuracy, calibration, correlation with gold.

A reward model r_phi is a proxy for what labelers want. The review world's gold judge
plays the labelers' latent reward r* (notebook 00), so the proxy can be checked:

* calibration: Bradley-Terry predicts p(a > b) = sigmoid(r_a - r_b); among pairs given
  probability p, a fraction p should really be preferred (reliability diagram);
* correlation of r_phi with r* on fresh samples (Pearson, and Spearman on ranks, since
  only the order of rewards matters to a ranking);
* the pairs it gets most wrong, to read.

Gao et al. (2022) measure over-optimisation the same way: proxy and gold side by side. The beta
sweep that does not fit a notebook's minutes is a committed table (`load_frontier`).
"""
from __future__ import annotations

import math
import random

import torch

from rlhf_lab.config import data_dir, fork_rng, set_seed
from rlhf_lab.lm.generation import sample, sample_groups, token_logprobs
from rlhf_lab.reward.train import as_groups
from rlhf_lab.utils.artefacts import ArtefactError, read_json
from rlhf_lab.world.judges import summarise
from rlhf_lab.world.reviews import judge_many


def _flat_pairs(groups):
    """(prompt, winner text, loser text) for every ranked pair of preference records or ranked groups."""
    return [(g.prompt, g.completions[w], g.completions[l]) for g in as_groups(groups) for w, l in g.pairs()]


def pair_margins(rm, groups) -> torch.Tensor:
    """r(x, y_w) - r(x, y_l) for every ranked pair of ``groups`` (records or ranked groups). (N,).

    Each completion is scored once (K forwards per prompt, as in training), then the
    C(K, 2) margins are read off those K rewards, in the order of `_flat_pairs`.
    """
    groups = as_groups(groups)
    rewards = rm.score([g.prompt for g in groups for _ in g.completions], [c for g in groups for c in g.completions])
    margins, start = [], 0
    for g in groups:
        margins += [rewards[start + w] - rewards[start + l] for w, l in g.pairs()]
        start += len(g.completions)
    if not margins:
        raise ValueError("no ranked pairs to evaluate")
    return torch.stack(margins)


def pairwise_accuracy(rm, groups) -> float:
    """Fraction of ranked pairs where r_phi prefers the labeler's winner."""
    return (pair_margins(rm, groups) > 0).float().mean().item()


def calibration(rm, groups, n_bins: int = 8, seed: int = 0) -> dict[str, list[float]]:
    """Reliability of p(a > b) = sigmoid(r_a - r_b) on the ranked pairs of ``groups``.

    Each pair is shown in a random orientation (a, b) so that predictions cover (0, 1).
    Returns per non-empty bin: ``predicted`` (mean p), ``observed`` (fraction where a won),
    ``count``, and ``stderr``: the binomial standard error of the observed fraction if the model were
    calibrated (sqrt(p (1 - p) / count)). A calibrated model has observed within a few stderr of predicted.
    """
    margins = pair_margins(rm, groups)
    rng = random.Random(seed)
    flip = torch.tensor([rng.random() < 0.5 for _ in range(len(margins))])
    a_won = (~flip).float()                       # unflipped: a is the winner
    p = torch.sigmoid(torch.where(flip, -margins, margins))
    edges = torch.linspace(0, 1, n_bins + 1)
    out = {"predicted": [], "observed": [], "count": [], "stderr": []}
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p >= lo) & ((p < hi) | (hi == 1))
        if inside.any():
            mean, n = p[inside].mean().item(), int(inside.sum())
            out["predicted"].append(mean)
            out["observed"].append(a_won[inside].mean().item())
            out["count"].append(n)
            out["stderr"].append(math.sqrt(mean * (1 - mean) / n))
    return out


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank), for Spearman's correlation."""
    order = torch.argsort(x)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = torch.arange(len(x), dtype=torch.float64)
    for value in torch.unique(x):
        tie = x == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def correlation(x, y) -> dict[str, float]:
    """Pearson and Spearman correlation of two equal-length sequences of numbers."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"need two sequences of equal length >= 3, got {len(x)} and {len(y)}")
    pearson = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    spearman = torch.corrcoef(torch.stack([_ranks(x), _ranks(y)]))[0, 1].item()
    return {"pearson": pearson, "spearman": spearman}


def gold_correlation(rm, prompts, completions) -> dict[str, float]:
    """Correlation of r_phi with the gold judge on (world Prompt, completion) pairs."""
    gold = [s.gold for s in judge_many(prompts, completions)]
    proxy = rm.score([p.text for p in prompts], list(completions))
    return {**correlation(proxy, gold), "proxy": proxy.tolist(), "gold": gold}


def worst_pairs(rm, groups, n: int = 5) -> list[dict]:
    """The ``n`` ranked pairs r_phi gets most wrong (most negative margin), for reading."""
    margins = pair_margins(rm, groups)
    pairs = _flat_pairs(groups)
    order = torch.argsort(margins)[:n].tolist()
    return [{"prompt": pairs[i][0], "chosen": pairs[i][1], "rejected": pairs[i][2],
             "margin": margins[i].item()} for i in order]


# ---- a policy against the truth: gold, proxy and KL on held-out prompts ------------------------

@torch.no_grad()
def evaluate_policy(policy, reference, tokenizer, prompts, reward_fn=None, seed: int = 0,
                    temperature: float = 0.7, max_new_tokens: int = 24, batch_size: int = 64) -> dict:
    """Sample one response per held-out prompt from ``policy`` and measure it three ways.

    * gold: the review world's judge r*(x, y), which no training step ever saw;
    * score: the proxy ``reward_fn(prompt_texts, completions)`` (a reward model's `score`), if given;
    * kl: KL(pi || pi_ref) per response, estimated by sum_t log pi(y_t) - log pi_ref(y_t) on the
      sampled tokens, both at ``temperature`` (the k1 estimator, unbiased because y ~ pi).

    The same ``seed`` before and after training draws with the same random numbers. Returns a
    dict of means (gold, gold_stderr, score, kl, length, finished and `world.summarise`'s rates),
    "by_kind" (`world.summarise` of the opening and of the instruction prompts separately) and
    per-response lists under "completions", "golds", "scores", "kls".
    """
    with fork_rng():   # the caller's random stream (a training run) is left as it was
        set_seed(seed)
        return _evaluate_policy(policy, reference, tokenizer, prompts, reward_fn, temperature, max_new_tokens,
                                batch_size)


def _evaluate_policy(policy, reference, tokenizer, prompts, reward_fn, temperature, max_new_tokens, batch_size):
    completions, kls, lengths, finished = [], [], [], []
    device = next(policy.parameters()).device
    for i in range(0, len(prompts), batch_size):
        texts = [p.text for p in prompts[i:i + batch_size]]
        s = sample(policy, tokenizer, texts, max_new_tokens=max_new_tokens, temperature=temperature, device=device)
        start = s.prompt_ids.shape[1]
        # both log-probs from the same full forward, so that the reference against itself is exactly 0
        # (the sampler's own, from the KV cache, differ from a full forward's by float rounding)
        own = token_logprobs(policy, s.input_ids, s.attention_mask, start, temperature)
        ref = token_logprobs(reference, s.input_ids, s.attention_mask, start, temperature)
        completions += s.completions
        kls += ((own - ref) * s.completion_mask).sum(-1).tolist()
        lengths += s.completion_mask.sum(-1).tolist()
        finished += s.finished.tolist()
    golds = judge_many(prompts, completions)
    scores = torch.as_tensor(reward_fn([p.text for p in prompts], completions)).tolist() if reward_fn is not None else []
    gold = torch.tensor([g.gold for g in golds])
    kinds = sorted({p.kind for p in prompts})
    by_kind = {k: summarise([g for g, p in zip(golds, prompts) if p.kind == k]) for k in kinds}
    out = {**summarise(golds), "gold_stderr": (gold.std() / len(gold) ** 0.5).item(), "by_kind": by_kind,
           "score": sum(scores) / len(scores) if scores else float("nan"),
           "kl": sum(kls) / len(kls), "length": sum(lengths) / len(lengths),
           "finished": sum(finished) / len(finished)}
    return {**out, "completions": completions, "golds": gold.tolist(), "scores": scores, "kls": kls}


# ---- reward over-optimisation (Gao et al. 2022) ------------------------------------------------

def best_of_n_kl(n) -> float:
    """KL(pi_bon || pi) = log n - (n - 1) / n of best-of-n sampling (Stiennon et al. 2020, App. G.3;
    Gao et al. 2022, eq. 1). Exact for a continuous proxy (no ties); an upper bound otherwise."""
    return math.log(n) - (n - 1) / n


def exact_best_of_n_kl(probs: torch.Tensor, proxy: torch.Tensor, n: int) -> float:
    """The exact KL(pi_bon || pi) on a categorical with distinct proxy rewards: the best of n draws is
    outcome a with probability F(a)^n - F(a-)^n, F the CDF of pi in proxy order. (K,), (K,) -> float."""
    order = torch.argsort(proxy)
    cdf = torch.cumsum(probs[order].double(), 0)
    bon = cdf ** n - torch.cat([cdf.new_zeros(1), cdf[:-1]]) ** n
    p = probs[order].double()
    keep = bon > 0
    return float((bon[keep] * (bon[keep].log() - p[keep].log())).sum())


def best_of_n_curve(proxy: torch.Tensor, gold: torch.Tensor, ns) -> dict[str, list[float]]:
    """Expected gold and proxy score of best-of-n for each n, from N >= n samples per prompt.

    proxy, gold: (P, N), N samples of each of P prompts. Instead of drawing subsets, the unbiased
    estimator over all C(N, n) subsets is used (as in Gao et al. 2022): the sample of proxy rank i
    (1 = lowest) is the best of a random n-subset with probability C(i - 1, n - 1) / C(N, n).
    Returns {"n", "kl", "gold", "proxy"} lists, means over prompts.
    """
    P, N = proxy.shape
    order = torch.argsort(proxy, dim=1)
    proxy_sorted, gold_sorted = torch.gather(proxy, 1, order).double(), torch.gather(gold, 1, order).double()
    out = {"n": [], "kl": [], "gold": [], "proxy": []}
    for n in ns:
        if not 1 <= n <= N:
            raise ValueError(f"n must be between 1 and the {N} samples per prompt, got {n}")
        w = torch.tensor([math.comb(i, n - 1) for i in range(N)], dtype=torch.float64) / math.comb(N, n)
        out["n"].append(n), out["kl"].append(best_of_n_kl(n))
        out["gold"].append(float((gold_sorted * w).sum(1).mean()))
        out["proxy"].append(float((proxy_sorted * w).sum(1).mean()))
    return out


GAO_FORMS = {"bon": "d (alpha - beta d)", "rl": "d (alpha - beta log d)"}


def fit_gao(kl, gain, form: str = "bon") -> dict[str, float]:
    """Least-squares fit of Gao et al. (2022, eq. 2-3) to gold gains over the initial policy.

    d = sqrt(KL); best-of-n: R(d) = d (alpha - beta d); RL: R(d) = d (alpha - beta log d).
    Both are linear in (alpha, beta), so the fit is one lstsq with no intercept (R(0) = 0).
    Returns alpha, beta, r2 (of the gains) and d_peak, the d where the fitted curve peaks.
    """
    d = torch.as_tensor(kl, dtype=torch.float64).clamp(min=0).sqrt()
    y = torch.as_tensor(gain, dtype=torch.float64)
    if form == "bon":
        X = torch.stack([d, -d ** 2], 1)
    elif form == "rl":
        X = torch.stack([d, -d * torch.log(d.clamp(min=1e-12))], 1)
    else:
        raise ValueError(f"form must be one of {sorted(GAO_FORMS)}, got {form!r}")
    coef = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    alpha, beta = coef.tolist()
    pred = X @ coef
    ss_res, ss_tot = float(((y - pred) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    if form == "bon":
        peak = alpha / (2 * beta) if beta > 0 else float("inf")
    else:   # d/dd [alpha d - beta d log d] = alpha - beta (log d + 1) = 0
        peak = math.exp(alpha / beta - 1) if beta > 0 else float("inf")
    return {"alpha": alpha, "beta": beta, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"), "d_peak": peak}


def gao_curve(d, alpha: float, beta: float, form: str = "bon"):
    """The fitted R(d) of `fit_gao` at the points d (a tensor or list); for plotting."""
    d = torch.as_tensor(d, dtype=torch.float64)
    return alpha * d - beta * (d ** 2 if form == "bon" else d * torch.log(d.clamp(min=1e-12)))


@torch.no_grad()
def sample_n(model, tokenizer, prompts, n: int, max_new_tokens: int = 48, temperature: float = 0.7,
             seed: int = 0, batch_rows: int = 256) -> dict:
    """N samples per prompt (the pool best-of-n picks from) and their gold scores, without touching the
    caller's random stream. Returns {"completions": P lists of n strings, "gold": (P, n) tensor}."""
    completions = sample_groups(model, tokenizer, [p.text for p in prompts], n, max_new_tokens, temperature, seed,
                                batch_rows)["completions"]
    gold = [[g.gold for g in judge_many([p] * n, row)] for p, row in zip(prompts, completions)]
    return {"completions": completions, "gold": torch.tensor(gold)}


def score_samples(reward_fn, prompts, completions, batch_size: int = 256) -> torch.Tensor:
    """A proxy's scores of `sample_n`'s completions: (P, n), one batched call per ``batch_size`` rows."""
    flat_p = [p.text for p, row in zip(prompts, completions) for _ in row]
    flat_c = [c for row in completions for c in row]
    scores = torch.cat([reward_fn(flat_p[i:i + batch_size], flat_c[i:i + batch_size]).float().cpu()
                        for i in range(0, len(flat_c), batch_size)])
    return scores.reshape(len(completions), -1)


# ---- the beta frontier: `python -m benchmarks.beta_frontier`'s table ---------------------------

def load_frontier(path=None) -> dict:
    """The committed PPO sweep over beta and seeds (default data/beta_frontier.json): {"sft": held-out
    point of the SFT model, "runs": [{"beta", "seed", "final", "path", "curves"}], "meta"}."""
    path = data_dir() / "beta_frontier.json" if path is None else path
    hint = "Rebuild it with `python -m benchmarks.beta_frontier` (about 7 minutes on 2 cores)."
    table = read_json(path, what="beta-frontier table", hint=hint)
    missing = [k for k in ("sft", "runs", "meta") if k not in table]
    if missing or not table["runs"]:
        raise ArtefactError(f"{path} has no {missing or 'runs'} field: it is not a beta-frontier table. {hint}")
    return table


def load_table(name: str, keys: tuple[str, ...] = ("runs", "meta")) -> dict:
    """A committed measurement table, data/<name>.json (notebook 10 reads length_bias, ensembles, rm_properties),
    checked for ``keys``; the error says how to rebuild it: ``python -m benchmarks.<name>``."""
    path = data_dir() / f"{name}.json"
    hint = f"Rebuild it with `python -m benchmarks.{name}` (its docstring says how long that takes)."
    table = read_json(path, what=f"{name} table", hint=hint)
    missing = [k for k in keys if k not in table]
    if missing:
        raise ArtefactError(f"{path} has no {', '.join(missing)} field: it is not the {name} table. {hint}")
    return table


def mean_se(xs) -> tuple[float, float]:
    """Mean and standard error of the mean (nan for a single value)."""
    x = torch.tensor([float(v) for v in xs], dtype=torch.float64)
    se = (x.std() / math.sqrt(len(x))).item() if len(x) > 1 else float("nan")
    return x.mean().item(), se


def frontier_by_beta(table: dict, key: str) -> dict[float, tuple[float, float]]:
    """{beta: (mean, standard error over seeds)} of ``key`` ("gold", "score", "kl", ...) of the final
    held-out points, betas in increasing order."""
    betas = sorted({r["beta"] for r in table["runs"]})
    return {b: mean_se([r["final"][key] for r in table["runs"] if r["beta"] == b]) for b in betas}


def gold_at_kl(path: list[dict], kl: float, start: dict | None = None, key: str = "gold") -> float:
    """``key`` along one run's held-out path (its checkpoints, after ``start``, the SFT point at KL 0),
    read at ``kl`` by linear interpolation between checkpoints: the run stopped early the first time it
    had drifted that far. nan if it never did."""
    points = ([start] if start is not None else []) + list(path)
    for a, b in zip(points, points[1:]):
        lo, hi = sorted((a["kl"], b["kl"]))
        if lo <= kl <= hi:
            w = 0.0 if hi == lo else (kl - a["kl"]) / (b["kl"] - a["kl"])
            return a[key] + w * (b[key] - a[key])
    return float("nan")


def length_controlled(values, lengths, groups) -> dict:
    """Each group's mean of ``values`` at the pooled mean length, as length-controlled win rates do (Dubois et al.
    2024): one least-squares slope b of value on length *within* the groups (each group keeps its own level, so a
    group that is both longer and worse does not lend its gap to the slope), then per group
    mean value + b * (pooled mean length - the group's mean length). Returns {"slope": b, group: value}."""
    v, n = torch.as_tensor(values, dtype=torch.float64), torch.as_tensor(lengths, dtype=torch.float64)
    if not len(v) == len(n) == len(groups) or len(v) < 2:
        raise ValueError(f"values, lengths and groups must have one entry per sample (at least 2): got {len(v)}, "
                         f"{len(n)} and {len(groups)}")
    masks = {g: torch.tensor([x == g for x in groups]) for g in dict.fromkeys(groups)}
    dv, dn = v.clone(), n.clone()
    for mask in masks.values():
        dv[mask], dn[mask] = v[mask] - v[mask].mean(), n[mask] - n[mask].mean()
    if (dn ** 2).sum() == 0:
        raise ValueError("every sample has its group's mean length: length cannot be regressed out within groups")
    slope = (dv * dn).sum() / (dn ** 2).sum()
    out = {"slope": slope.item()}
    for g, mask in masks.items():
        out[g] = (v[mask].mean() + slope * (n.mean() - n[mask].mean())).item()
    return out
