"""From the policy gradient to PPO: the surrogate's gradient at rho = 1, importance sampling, clipping."""
import torch

from rlhf_lab.rl import trust_region as tr


def test_at_the_old_policy_the_surrogates_give_the_policy_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, generator=g)
    actions = torch.multinomial(torch.softmax(logits, -1), 64, replacement=True, generator=g)
    advantages = torch.randn(64, generator=g)
    grads = tr.gradients_at_old_policy(logits, actions, advantages)
    torch.testing.assert_close(grads["surrogate"], grads["policy_gradient"], rtol=0, atol=1e-7)
    torch.testing.assert_close(grads["clipped"], grads["policy_gradient"], rtol=0, atol=1e-7)
    # and by hand: grad log softmax(theta)[a] = onehot(a) - softmax(theta)
    p = torch.softmax(logits, -1)
    by_hand = (advantages[:, None] * (torch.nn.functional.one_hot(actions, 7) - p)).mean(0)
    torch.testing.assert_close(grads["policy_gradient"], by_hand, rtol=0, atol=1e-6)


def test_importance_sampling_is_exact_in_expectation():
    g = torch.Generator().manual_seed(1)
    old, new, a = torch.randn(5, generator=g), torch.randn(5, generator=g), torch.randn(5, generator=g)
    p_old, p_new = torch.softmax(old, -1), torch.softmax(new, -1)
    rho = p_new / p_old
    torch.testing.assert_close((p_old * rho * a).sum(), (p_new * a).sum())   # E_old[rho A] = E_new[A]


def test_the_surrogate_gradient_by_finite_differences_away_from_the_old_policy():
    g = torch.Generator().manual_seed(2)
    old = torch.randn(4, dtype=torch.float64, generator=g)
    actions = torch.tensor([0, 1, 1, 3, 2, 0])
    adv = torch.randn(6, dtype=torch.float64, generator=g)
    theta = (old + 0.3 * torch.randn(4, dtype=torch.float64, generator=g)).requires_grad_(True)

    def objective(t):
        return tr.surrogate(torch.log_softmax(t, -1)[actions], torch.log_softmax(old, -1)[actions], adv)

    objective(theta).backward()
    h = 1e-6
    numeric = torch.stack([(objective(theta.detach() + h * e) - objective(theta.detach() - h * e)) / (2 * h)
                           for e in torch.eye(4, dtype=torch.float64)])
    torch.testing.assert_close(theta.grad, numeric, rtol=1e-6, atol=1e-9)


def test_clipping_removes_the_incentive_outside_the_band_but_does_not_bound_the_ratio():
    ratios = torch.tensor([0.5, 0.79, 1.0, 1.19, 1.5, 3.0])
    _, clipped, slope = tr.clipped_objective_curve(ratios, advantage=2.0, eps=0.2)
    assert slope.tolist() == [2.0, 2.0, 2.0, 2.0, 0.0, 0.0]          # A > 0: no push above 1 + eps
    assert clipped[-1] == 2.0 * 1.2                                   # flat, whatever rho is
    _, clipped, slope = tr.clipped_objective_curve(ratios, advantage=-1.0, eps=0.2)
    assert slope.tolist() == [0.0, 0.0, -1.0, -1.0, -1.0, -1.0]       # A < 0: no push below 1 - eps
    assert clipped[-1] == -3.0                                        # a ratio far above 1 still counts in full
