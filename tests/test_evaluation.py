import math

import pytest
import torch

from rlhf_lab.evaluation import calibration, correlation, pair_margins, pairwise_accuracy, worst_pairs
from rlhf_lab.reward.train import RankedGroup


class LengthReward:
    """A stand-in reward model: r = number of characters. Enough to check the bookkeeping."""

    def score(self, prompts, completions):
        return torch.tensor([float(len(c)) for c in completions])


GROUPS = [RankedGroup("a", "x", ("long one", "mid", "s"), (0, 1, 2)),      # length agrees: 3 right
          RankedGroup("b", "x", ("s", "longest"), (0, 1))]                  # length disagrees: 1 wrong


def test_margins_and_accuracy_by_hand():
    margins = pair_margins(LengthReward(), GROUPS)
    assert margins.tolist() == [5.0, 7.0, 2.0, -6.0]
    assert pairwise_accuracy(LengthReward(), GROUPS) == 0.75
    worst = worst_pairs(LengthReward(), GROUPS, n=1)[0]
    assert (worst["chosen"], worst["rejected"], worst["margin"]) == ("s", "longest", -6.0)


def test_calibration_bins_cover_all_pairs():
    cal = calibration(LengthReward(), GROUPS, n_bins=4)
    assert sum(cal["count"]) == 4
    assert all(0 <= p <= 1 for p in cal["predicted"]) and all(0 <= o <= 1 for o in cal["observed"])


def test_correlation_by_hand():
    c = correlation([1, 2, 3, 4], [2, 4, 6, 8])
    assert c["pearson"] == pytest.approx(1.0) and c["spearman"] == pytest.approx(1.0)
    c = correlation([1, 2, 3, 4], [1, 4, 9, 100])          # monotone, not linear
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] < 1.0
    assert correlation([1, 2, 2, 3], [3, 2, 2, 1])["spearman"] == pytest.approx(-1.0)   # ties
    with pytest.raises(ValueError, match="equal length"):
        correlation([1, 2, 3], [1, 2])


# ---- over-optimisation -------------------------------------------------------------------------

def test_best_of_n_kl_formula_against_monte_carlo():
    """log n - (n - 1)/n against a Monte-Carlo estimate of KL(pi_bon || pi) on a small categorical."""
    import math

    from rlhf_lab.evaluation import best_of_n_kl, exact_best_of_n_kl

    g = torch.Generator().manual_seed(0)
    K = 200
    probs = torch.softmax(0.3 * torch.randn(K, generator=g), -1)
    proxy = torch.randn(K, generator=g)                     # distinct values: no ties
    assert best_of_n_kl(1) == 0.0
    for n in (2, 4, 16):
        draws = torch.multinomial(probs, 200_000 * n, replacement=True, generator=g).reshape(-1, n)
        best = torch.gather(draws, 1, proxy[draws].argmax(1, keepdim=True)).squeeze(1)
        freq = torch.bincount(best, minlength=K).double() / best.numel()
        keep = freq > 0
        mc = float((freq[keep] * (freq[keep].log() - probs.double()[keep].log())).sum())
        exact = exact_best_of_n_kl(probs, proxy, n)
        assert mc == pytest.approx(exact, abs=0.03)          # the sampler and the exact formula agree
        assert exact <= best_of_n_kl(n) + 1e-9                 # the analytic value is an upper bound ...
        assert exact == pytest.approx(best_of_n_kl(n), abs=0.05)   # ... tight when no outcome is likely
        assert best_of_n_kl(n) == pytest.approx(math.log(n) - (n - 1) / n)


def test_best_of_n_curve_estimator():
    from rlhf_lab.evaluation import best_of_n_curve

    proxy = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    gold = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    c = best_of_n_curve(proxy, gold, [1, 2, 4])
    assert c["gold"][0] == pytest.approx(2.5)                 # n = 1: the plain mean
    assert c["gold"][2] == pytest.approx(4.0)                 # n = N: the best by proxy
    # n = 2 by brute force over the 6 pairs
    from itertools import combinations
    pairs = list(combinations(range(4), 2))
    want = sum(gold[0, max(p, key=lambda i: proxy[0, i])].item() for p in pairs) / len(pairs)
    assert c["gold"][1] == pytest.approx(want)
    with pytest.raises(ValueError):
        best_of_n_curve(proxy, gold, [5])


def test_fit_gao_recovers_coefficients():
    from rlhf_lab.evaluation import fit_gao, gao_curve

    kl = torch.linspace(0.1, 9, 12)
    d = kl.sqrt()
    for form, (alpha, beta) in (("bon", (0.5, 0.12)), ("rl", (0.4, 0.2))):
        gain = gao_curve(d, alpha, beta, form)
        fit = fit_gao(kl, gain, form)
        assert fit["alpha"] == pytest.approx(alpha, rel=1e-6) and fit["beta"] == pytest.approx(beta, rel=1e-6)
        assert fit["r2"] == pytest.approx(1.0)
    assert fit_gao(kl, gao_curve(d, 0.5, 0.1, "bon"), "bon")["d_peak"] == pytest.approx(2.5)


def test_the_frontier_table_loads_and_summarises_over_seeds(tmp_path):
    from rlhf_lab.evaluation import frontier_by_beta, load_frontier

    table = load_frontier()                       # the committed one
    by_beta = frontier_by_beta(table, "kl")
    assert list(by_beta) == sorted(by_beta) and all(se >= 0 for _, se in by_beta.values())
    finals = [r["final"]["kl"] for r in table["runs"] if r["beta"] == 0.0]
    assert by_beta[0.0][0] == pytest.approx(sum(finals) / len(finals))
    bad = tmp_path / "frontier.json"
    bad.write_text('{"sft": {}}')
    with pytest.raises(ValueError, match=r"frontier.json has no \['runs', 'meta'\].*benchmarks.beta_frontier"):
        load_frontier(bad)
    bad.write_text('{"sft": ')
    with pytest.raises(ValueError, match="frontier.json is damaged"):
        load_frontier(bad)


def test_gold_at_kl_reads_a_path_where_it_first_drifted_that_far():
    from rlhf_lab.evaluation import gold_at_kl

    sft = {"kl": 0.0, "gold": 0.0}
    path = [{"kl": 2.0, "gold": 0.2}, {"kl": 6.0, "gold": 0.4}, {"kl": 4.0, "gold": 0.1}]
    assert gold_at_kl(path, 1.0, start=sft) == pytest.approx(0.1)
    assert gold_at_kl(path, 5.0, start=sft) == pytest.approx(0.35)     # first crossing, not the way back
    assert gold_at_kl(path, 2.0) == pytest.approx(0.2)
    assert math.isnan(gold_at_kl(path, 7.0, start=sft))


def test_pass_at_k_is_chen_et_al_s_unbiased_estimator():
    import random
    from itertools import combinations

    from rlhf_lab.verifiable import pass_at_k

    for n, c, k in ((5, 0, 1), (5, 5, 3), (10, 3, 1), (10, 3, 4), (12, 1, 12), (7, 2, 6)):
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)            # the slow formula
        assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
        # by enumeration: the share of k-subsets of the n samples that hold a passing one
        samples = [True] * c + [False] * (n - c)
        subsets = list(combinations(range(n), k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(samples[i] for i in s) for s in subsets) / len(subsets))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)                    # pass@1 is the pass rate
    # unbiased: over many draws of n samples from a task that passes with probability p, the mean estimate of
    # pass@k is 1 - (1 - p)^k
    rng, p, n, k = random.Random(0), 0.2, 16, 4
    estimates = [pass_at_k(n, sum(rng.random() < p for _ in range(n)), k) for _ in range(20_000)]
    assert sum(estimates) / len(estimates) == pytest.approx(1 - (1 - p) ** k, abs=0.005)
    # stable where the binomials are huge
    assert 0 < pass_at_k(2000, 1, 1000) == pytest.approx(0.5)


@pytest.mark.parametrize("n, c, k", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_names_a_bad_size(n, c, k):
    from rlhf_lab.verifiable import pass_at_k

    with pytest.raises(ValueError, match=f"got n={n}, c={c}, k={k}"):
        pass_at_k(n, c, k)


def test_pass_at_k_curve_averages_over_prompts():
    from rlhf_lab.verifiable import pass_at_k, pass_at_k_curve

    passes = [[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    curve = pass_at_k_curve(passes, [1, 2, 4])
    assert curve[1] == pytest.approx((0.25 + 0 + 1) / 3)
    assert curve[2] == pytest.approx((pass_at_k(4, 1, 2) + 0 + 1) / 3) and curve[4] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same number of samples per prompt"):
        pass_at_k_curve([[1, 0], [1]], [1])


def test_a_verifier_table_is_checked_and_summarised_over_seeds(tmp_path):
    import json as _json

    from rlhf_lab.utils.artefacts import ArtefactError
    from rlhf_lab.verifiable import by_method, load_verifier_table

    bad = tmp_path / "bad.json"
    bad.write_text(_json.dumps({"runs": []}))
    with pytest.raises(ArtefactError, match="not a verifier-RL table.*python -m benchmarks.verifier_rl"):
        load_verifier_table(bad)
    reading = lambda p1, gold: {"pass_at_k": {"1": p1}, "checks": {"rating": p1}, "gold": gold}
    table = {"meta": {}, "runs": [{"m": reading(0.2, 0.1)}, {"m": reading(0.4, None)}, {"m": reading(0.6, 0.3)}]}
    mean, se = by_method(table, "m", "", 1)
    assert mean == pytest.approx(0.4) and se == pytest.approx(0.2 / 3 ** 0.5)
    assert by_method(table, "m", "checks/rating")[0] == pytest.approx(0.4)
    assert math.isnan(by_method(table, "m", "gold")[0])              # a seed where nothing passed is not a zero


def test_length_controlled_means_remove_a_linear_length_effect():
    from rlhf_lab.evaluation import length_controlled

    # two groups with the same quality; group "long" is 10 tokens longer and length adds 0.1 per token
    lengths = [5, 6, 7, 15, 16, 17]
    values = [0.1 * n for n in lengths]
    out = length_controlled(values, lengths, ["short"] * 3 + ["long"] * 3)
    assert out["slope"] == pytest.approx(0.1) and out["short"] == pytest.approx(out["long"]) == pytest.approx(1.1)
    raw_gap = sum(values[3:]) / 3 - sum(values[:3]) / 3
    assert raw_gap == pytest.approx(1.0)                                   # the raw means differ by the length alone
    # a real quality gap of 0.5 survives whole: the slope comes from within the groups
    shifted = length_controlled([x + (0.5 if i >= 3 else 0) for i, x in enumerate(values)], lengths,
                                ["short"] * 3 + ["long"] * 3)
    assert shifted["slope"] == pytest.approx(0.1) and shifted["long"] - shifted["short"] == pytest.approx(0.5)
    # a longer and worse group with no length effect inside either: nothing to remove (a pooled line would see -0.05)
    flat = length_controlled([1.0, 1.0, 0.5, 0.5], [5, 7, 15, 17], ["a", "a", "b", "b"])
    assert flat == pytest.approx({"slope": 0.0, "a": 1.0, "b": 0.5})
    with pytest.raises(ValueError, match="within groups"):
        length_controlled([1.0, 2.0], [3, 4], ["a", "b"])
    with pytest.raises(ValueError, match="one entry per sample"):
        length_controlled([1.0], [3, 4], ["a", "b"])


def test_a_committed_table_is_read_or_the_error_says_how_to_rebuild_it(tmp_path, monkeypatch):
    from rlhf_lab.evaluation import load_table
    from rlhf_lab.utils.artefacts import ArtefactError

    assert {"runs", "meta"} <= set(load_table("ensembles"))
    monkeypatch.setattr("rlhf_lab.evaluation.data_dir", lambda: tmp_path)
    with pytest.raises(ArtefactError, match="python -m benchmarks.length_bias"):
        load_table("length_bias")
    (tmp_path / "length_bias.json").write_text('{"runs": []}')
    with pytest.raises(ArtefactError, match="no meta field.*python -m benchmarks.length_bias"):
        load_table("length_bias")
