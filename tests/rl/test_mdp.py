"""The chain MDP of notebook 01: Bellman values, Monte-Carlo returns, TD residuals and value iteration agree."""
import numpy as np
import pytest

from rlhf_lab.rl import mdp


@pytest.fixture
def line():
    return mdp.ChainMDP(n=6, slip=0.1, step_cost=0.05, goal=1.0, gamma=0.9)


def _backup(line, V, pi):
    P, R = line.model()
    new = (pi * (R + line.gamma * P @ V)).sum(1)
    new[line.terminal] = 0.0
    return new


def test_the_linear_solve_is_the_fixed_point_of_the_bellman_backup(line):
    pi = np.random.default_rng(0).dirichlet([1, 1], size=line.n)
    V = np.zeros(line.n)
    for _ in range(2000):
        V = _backup(line, V, pi)
    assert np.allclose(mdp.policy_values(line, pi), V, atol=1e-9)


def test_advantages_average_to_zero_under_the_policy_and_q_is_one_step_of_v(line):
    pi = np.tile([0.3, 0.7], (line.n, 1))
    V = mdp.policy_values(line, pi)
    Q = mdp.q_values(line, V)
    assert np.allclose((pi * (Q - V[:, None])).sum(1), 0, atol=1e-12)
    assert np.allclose((pi * Q).sum(1), V)


def test_the_sampled_returns_average_to_the_value(line):
    pi = np.tile([0.3, 0.7], (line.n, 1))
    V = mdp.policy_values(line, pi)
    for start in (0, 3):
        G = np.array([mdp.discounted_return([r for _, _, r, _ in e], line.gamma)
                      for e in mdp.sample_episodes(line, pi, start, 3000, seed=start)])
        assert abs(G.mean() - V[start]) < 4 * G.std(ddof=1) / np.sqrt(len(G))


def test_value_iteration_finds_the_best_policy(line):
    V_star, pi_star, sweeps = mdp.value_iteration(line)
    assert (pi_star[:-1].argmax(1) == 1).all() and sweeps > 1
    assert np.allclose(mdp.policy_values(line, pi_star), V_star, atol=1e-8)      # the greedy policy earns V*
    for seed in range(5):                                                         # and no policy earns more
        pi = np.random.default_rng(seed).dirichlet([1, 1], size=line.n)
        assert (mdp.policy_values(line, pi) <= V_star + 1e-9).all()


def test_a_reward_of_one_per_step_counts_the_steps():
    counting = mdp.ChainMDP(n=3, slip=0.0, step_cost=-1.0, goal=0.0, gamma=1.0)
    assert mdp.policy_values(counting, np.tile([0.0, 1.0], (3, 1)))[0] == pytest.approx(2.0)


def test_bad_chains_and_policies_are_clear_errors(line):
    with pytest.raises(ValueError, match="at least 2"):
        mdp.ChainMDP(n=1)
    with pytest.raises(ValueError, match="slip"):
        mdp.ChainMDP(slip=1.5)
    with pytest.raises(ValueError, match="distributions"):
        mdp.policy_values(line, np.ones((line.n, 2)))
