"""The critic-free estimators and losses of rlhf_lab.rl.group_rl, against slow loops and hand values."""
import math

import pytest
import torch

from rlhf_lab.rl import group_rl as g
from rlhf_lab.rl.ppo import kl_estimate


def _slow(rewards, method, valid=None, eps=g.STD_EPS):
    """Eqs. (1)-(3), one group and one completion at a time."""
    out = torch.zeros_like(rewards, dtype=torch.float64)
    for p in range(rewards.shape[0]):
        idx = [i for i in range(rewards.shape[1]) if valid is None or valid[p, i]]
        if len(idx) < 2:
            continue
        vals = [float(rewards[p, i]) for i in idx]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        for i in idx:
            others = [float(rewards[p, j]) for j in idx if j != i]
            r = float(rewards[p, i])
            out[p, i] = {"rloo": r - sum(others) / len(others), "grpo": (r - mean) / (std + eps),
                         "dr_grpo": r - mean}[method]
    return out


@pytest.mark.parametrize("method", g.ADVANTAGES)
def test_advantages_match_a_slow_loop(method):
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randn(6, 4, generator=gen)
    valid = torch.rand(6, 4, generator=gen) > 0.25
    valid[0] = True
    valid[1] = torch.tensor([True, False, False, False])          # one valid completion: no baseline
    for v in (None, valid):
        torch.testing.assert_close(g.group_advantages(rewards, method, v).double(), _slow(rewards, method, v),
                                   rtol=1e-5, atol=1e-6)
    assert (g.group_advantages(rewards, method, valid)[~valid] == 0).all()


def test_advantages_by_hand():
    r = torch.tensor([[1.0, 2.0, 3.0, 6.0]])                        # mean 3, sample std sqrt(14/3)
    torch.testing.assert_close(g.group_advantages(r, "rloo"), torch.tensor([[-8 / 3, -4 / 3, 0.0, 4.0]]))
    torch.testing.assert_close(g.group_advantages(r, "dr_grpo"), torch.tensor([[-2.0, -1.0, 0.0, 3.0]]))
    std = math.sqrt(14 / 3)
    torch.testing.assert_close(g.group_advantages(r, "grpo"),
                               torch.tensor([[-2.0, -1.0, 0.0, 3.0]]) / (std + g.STD_EPS))
    # RLOO is the centred reward times K / (K - 1)
    torch.testing.assert_close(g.group_advantages(r, "rloo"), g.group_advantages(r, "dr_grpo") * 4 / 3)


@pytest.mark.parametrize("method", g.ADVANTAGES)
def test_a_group_of_equal_rewards_has_zero_advantage_and_no_nan(method):
    r = torch.tensor([[0.7, 0.7, 0.7, 0.7], [1.0, -1.0, 0.0, 0.0]])
    adv = g.group_advantages(r, method)
    assert torch.isfinite(adv).all() and (adv[0] == 0).all() and (adv[1] != 0).any()


def test_advantage_inputs_are_checked():
    with pytest.raises(ValueError, match="prompts, K"):
        g.group_advantages(torch.zeros(4))
    with pytest.raises(ValueError, match="advantage method"):
        g.group_advantages(torch.zeros(2, 2), "ppo")
    with pytest.raises(FloatingPointError):
        g.group_advantages(torch.tensor([[1.0, float("nan")]]))


def _token_case():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -1.2, 0.0]])
    old = torch.tensor([[-1.1, -1.5, -0.9], [-0.3, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    return logp, old, mask, adv


def test_aggregations_by_hand():
    logp, old, mask, adv = _token_case()
    loss, clipped = g.clipped_token_loss(logp, old, adv, epsilon=0.2)
    # by hand: l = -min(rho A, clip(rho) A)
    hand = torch.zeros(2, 3)
    for b in range(2):
        for t in range(3):
            rho = math.exp(float(logp[b, t] - old[b, t]))
            a = float(adv[b])
            hand[b, t] = -min(rho * a, min(max(rho, 0.8), 1.2) * a)
    torch.testing.assert_close(loss, hand)
    # rho = e^0.4 > 1.2 with A > 0: clipped; rho = e^-0.5 < 0.8 with A > 0: the unclipped term is the smaller
    assert clipped.tolist() == [[False, False, True], [False, False, False]]
    row0, row1 = hand[0].sum() / 3, hand[1, :2].sum() / 2
    torch.testing.assert_close(g.aggregate(hand, mask, "grpo"), (row0 + row1) / 2)
    torch.testing.assert_close(g.aggregate(hand, mask, "dapo"), (hand[0].sum() + hand[1, :2].sum()) / 5)
    torch.testing.assert_close(g.aggregate(hand, mask, "dr_grpo"), (hand[0].sum() + hand[1, :2].sum()) / (2 * 3))
    torch.testing.assert_close(g.aggregate(hand, mask, "dr_grpo", max_completion_length=8),
                               (hand[0].sum() + hand[1, :2].sum()) / 16)
    with pytest.raises(ValueError, match="loss_type"):
        g.aggregate(hand, mask, "mean")


def test_kl_in_the_loss_adds_beta_times_the_estimate():
    logp, old, mask, adv = _token_case()
    ref = logp - 0.3
    base, _ = g.group_loss(logp, old, None, adv, mask, loss_type="dapo")
    with_kl, stats = g.group_loss(logp, old, ref, adv, mask, beta=0.1, kl_estimator="k3", loss_type="dapo")
    k3 = math.exp(-0.3) - 1 + 0.3       # log r = log pi_ref - log pi = -0.3 at every token: (r - 1) - log r
    torch.testing.assert_close(with_kl - base, torch.tensor(0.1 * k3))
    torch.testing.assert_close(stats["kl"], torch.tensor(k3))


def test_k1_k2_k3_against_the_exact_kl_of_a_categorical():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(12, generator=gen), -1)
    q = torch.softmax(torch.randn(12, generator=gen) * 0.5, -1)
    exact = float((p * (p / q).log()).sum())
    x = torch.multinomial(p, 400_000, replacement=True, generator=gen)
    logp, logq = p.log()[x], q.log()[x]
    k = {e: kl_estimate(logp, logq, e) for e in ("k1", "k2", "k3")}
    # exact expectations under p, not Monte Carlo: k1 and k3 are unbiased, k2 is not
    e = {name: float((p * kl_estimate(p.log(), q.log(), name)).sum()) for name in ("k1", "k2", "k3")}
    assert e["k1"] == pytest.approx(exact, rel=1e-5) and e["k3"] == pytest.approx(exact, rel=1e-5)
    assert e["k2"] != pytest.approx(exact, rel=1e-2)
    assert (k["k2"] >= 0).all() and (k["k3"] >= 0).all() and (k["k1"] < 0).any()
    assert float(k["k1"].mean()) == pytest.approx(exact, abs=0.01)
    assert float(k["k3"].std()) < float(k["k1"].std())          # k3's lower variance when q is near p


def test_estimator_bias_counts_a_response_as_one_unit():
    import math

    from rlhf_lab.rl.group_rl import estimator_bias

    # two responses: errors (+1, +1, +1) and (-1): mean +0.5 per token; summed errors 3 and -1
    study = {"exact": torch.zeros(4), "k1": torch.tensor([1.0, 1.0, 1.0, -1.0]), "response": torch.tensor([0, 0, 0, 1])}
    m, se = estimator_bias(study, "k1")
    assert m == 0.5
    # E_r - n_r m = 3 - 1.5 = 1.5 and -1 - 0.5 = -1.5: sqrt(2 / 1 * 4.5) / 4 = 0.75
    assert math.isclose(se, 0.75)
    # the same errors as four independent responses give the smaller, token-level s.e.
    m1, se1 = estimator_bias({**study, "response": torch.arange(4)}, "k1")
    assert m1 == 0.5 and se1 < se
