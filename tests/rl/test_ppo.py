"""The maths of PPO for language models: KL estimators, per-token rewards, GAE, clipped losses, beta."""
import math

import pytest
import torch

from rlhf_lab.rl import ppo


def gae_loop(rewards, values, gamma, lam):
    """The obvious reference: one episode, a Python loop over its tokens, V = 0 after the end."""
    T, adv, last = len(rewards), [0.0] * len(rewards), 0.0
    for t in reversed(range(T)):
        next_value = values[t + 1] if t + 1 < T else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def test_gae_matches_loop_on_ragged_batch():
    g = torch.Generator().manual_seed(0)
    lengths = [5, 1, 3, 7]
    rewards, values = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    mask = torch.zeros(4, 7)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (1.0, 1.0), (0.99, 0.0)):
        adv, ret = ppo.gae(rewards, values, mask, gamma, lam)
        for i, n in enumerate(lengths):
            want = gae_loop(rewards[i, :n].tolist(), values[i, :n].tolist(), gamma, lam)
            torch.testing.assert_close(adv[i, :n], torch.tensor(want), rtol=1e-5, atol=1e-6)
            assert adv[i, n:].abs().sum() == 0 and ret[i, n:].abs().sum() == 0   # padding stays 0
        torch.testing.assert_close(ret, (adv + values) * mask)


def test_gae_hand_example():
    # two tokens, gamma 1, lam 0.5: delta_1 = 1 - 0.5 = 0.5, delta_0 = 0 + 0.5 - 0.2 = 0.3
    adv, ret = ppo.gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.5]]), torch.ones(1, 2), 1.0, 0.5)
    torch.testing.assert_close(adv, torch.tensor([[0.3 + 0.5 * 0.5, 0.5]]))
    torch.testing.assert_close(ret, torch.tensor([[0.75, 1.0]]))
    # lam = 1, gamma = 1: the advantage is the sum of future rewards minus V (Monte Carlo)
    adv, _ = ppo.gae(torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3), 1.0, 1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.6 - 1.0, 0.5 - 2.0, 0.3 - 3.0]]))


def test_kl_estimators_hand_values_and_limits():
    logp, ref = torch.tensor([[-1.0, -2.0, -0.5]]), torch.tensor([[-1.5, -1.0, -0.5]])
    k1 = ppo.kl_estimate(logp, ref, "k1")
    k3 = ppo.kl_estimate(logp, ref, "k3")
    torch.testing.assert_close(k1, torch.tensor([[0.5, -1.0, 0.0]]))
    r = torch.exp(ref - logp)    # pi_ref / pi
    torch.testing.assert_close(k3, (r - 1) - torch.log(r))
    assert k3[0, 0].item() == pytest.approx(math.exp(-0.5) - 1 + 0.5)
    assert (k3 >= 0).all() and k3[0, 2] == 0 and k1[0, 2] == 0   # pi = pi_ref: both 0; k3 never negative
    assert (k1 < 0).any()                                          # a single k1 sample can be negative
    torch.testing.assert_close(ppo.kl_estimate(logp, ref, "k2"), 0.5 * (ref - logp) ** 2)   # (log r)^2 / 2
    with pytest.raises(ValueError, match="k4"):
        ppo.kl_estimate(logp, ref, "k4")


def test_kl_estimators_are_unbiased_on_a_categorical():
    """Both estimators average to the exact KL when the tokens are sampled from pi itself."""
    g = torch.Generator().manual_seed(1)
    p, q = torch.softmax(torch.randn(6, generator=g), -1), torch.softmax(torch.randn(6, generator=g), -1)
    exact = (p * (p.log() - q.log())).sum()
    x = torch.multinomial(p, 400_000, replacement=True, generator=g)
    for est in ("k1", "k3"):
        mc = ppo.kl_estimate(p.log()[x], q.log()[x], est).mean()
        assert mc.item() == pytest.approx(exact.item(), abs=0.01)


def test_per_token_rewards():
    scores = torch.tensor([1.5, -1.0])
    kl = torch.tensor([[0.2, -0.1, 0.3], [0.4, 0.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    rewards, non_score = ppo.per_token_rewards(scores, kl, mask, beta=0.1)
    torch.testing.assert_close(non_score, torch.tensor([[-0.02, 0.01, -0.03], [-0.04, 0.0, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.02, 0.01, 1.47], [-1.04, 0.0, 0.0]]))


def test_policy_loss_hand_values():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))       # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[2.0, 2.0, -1.0]])
    loss, stats = ppo.policy_loss(new, old, adv, torch.ones(1, 3), cliprange=0.2)
    # per token: -min(rho A, clip(rho) A) = -min(3, 2.4), -min(1, 1.6), -min(-1.1, -1.1)
    assert loss.item() == pytest.approx((-2.4 - 1.0 + 1.1) / 3)
    assert float(stats["clipfrac"]) == pytest.approx(1 / 3)
    assert float(stats["ratio"]) == pytest.approx((1.5 + 0.5 + 1.1) / 3)
    # masked tokens do not count
    loss2, _ = ppo.policy_loss(new, old, adv, torch.tensor([[1, 1, 0]]), cliprange=0.2)
    assert loss2.item() == pytest.approx((-2.4 - 1.0) / 2)
    # the gradient stops where the clip is active: d loss / d log rho is 0 for token 0
    new = new.clone().requires_grad_(True)
    ppo.policy_loss(new, old, adv, torch.ones(1, 3), 0.2)[0].backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] != 0


def test_value_loss_hand_values():
    old = torch.tensor([[0.0, 0.0]])
    returns = torch.tensor([[1.0, -1.0]])
    values = torch.tensor([[0.5, 0.1]])
    loss, stats = ppo.value_loss(values, old, returns, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: unclipped (0.5 - 1)^2 = 0.25, clipped (0.2 - 1)^2 = 0.64 -> 0.64
    # token 1: unclipped (0.1 + 1)^2 = 1.21, clipped (0.1 + 1)^2 = 1.21 (inside the range)
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21) / 2)
    assert float(stats["clipfrac"]) == pytest.approx(0.5)


def test_whiten_and_explained_variance():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    w = ppo.whiten(x, mask)
    assert ppo.masked_mean(w, mask).abs() < 1e-6 and ppo.masked_var(w, mask).item() == pytest.approx(1, abs=1e-5)
    assert w[0, 3] == 0
    kept = ppo.whiten(x, mask, shift_mean=False)
    assert ppo.masked_mean(kept, mask).item() == pytest.approx(2.0, abs=1e-5)
    returns = torch.tensor([[1.0, 2.0, 3.0]])
    assert ppo.explained_variance(returns, returns, torch.ones(1, 3)) == pytest.approx(1.0)
    assert ppo.explained_variance(torch.full((1, 3), 2.0), returns, torch.ones(1, 3)) == pytest.approx(0.0)


def test_entropy_from_logits():
    assert ppo.entropy_from_logits(torch.zeros(4)).item() == pytest.approx(math.log(4))
    assert ppo.entropy_from_logits(torch.tensor([0.0, -1e4])).item() == pytest.approx(0.0, abs=1e-6)


def test_adaptive_controller_moves_beta_the_right_way():
    up = ppo.AdaptiveKLController(0.2, target=6.0, horizon=10_000)
    assert up.update(12.0, n_steps=64) > 0.2                 # KL above target: stronger penalty
    # error clipped at +0.2: beta * (1 + 0.2 * 64 / 10000)
    assert up.value == pytest.approx(0.2 * (1 + 0.2 * 64 / 10_000))
    down = ppo.AdaptiveKLController(0.2, target=6.0, horizon=10_000)
    assert down.update(3.0, n_steps=64) == pytest.approx(0.2 * (1 - 0.2 * 64 / 10_000))
    same = ppo.AdaptiveKLController(0.2, target=6.0, horizon=10_000)
    assert same.update(6.0, n_steps=64) == pytest.approx(0.2)
    assert ppo.FixedKLController(0.05).update(100.0, 64) == 0.05
    with pytest.raises(ValueError):
        ppo.AdaptiveKLController(0.2, target=0.0, horizon=10)


def test_config_defaults_and_validation():
    cfg = ppo.PPOConfig()
    assert (cfg.gamma, cfg.lam, cfg.cliprange, cfg.cliprange_value, cfg.vf_coef, cfg.ppo_epochs) == (1.0, 0.95, 0.2, 0.2, 0.1, 4)
    assert cfg.kl_coef == 0.05 and cfg.target_kl == 6.0 and cfg.horizon == 10_000 and cfg.unfinished_score == -1.0
    with pytest.raises(ValueError, match="multiple"):
        ppo.PPOConfig(batch_size=10, mini_batch_size=4)
    with pytest.raises(ValueError, match="kl_estimator"):
        ppo.PPOConfig(kl_estimator="k4")
    with pytest.raises(ValueError, match="value_model"):
        ppo.PPOConfig(value_model="both")
