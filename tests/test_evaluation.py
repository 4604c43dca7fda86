import math

import pytest
import torch

from rlhf_lab.evaluation import calibration, correlation, pair_margins, pairwise_accuracy, worst_pairs
from rlhf_lab.reward import RankedGroup


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
