"""A small Markov decision process, to name the quantities that PPO's value head and GAE are built on.

A bandit has one state and one step. A language model writing a response takes many steps, and
credit has to flow from the reward at the end back to every token. The standard quantities
(Sutton and Barto 2018, chapters 3-4), on a chain of states that a cell can solve exactly:

* the **return** from step t, G_t = r_t + gamma r_{t+1} + gamma^2 r_{t+2} + ...;
* the **state value** V^pi(s) = E_pi[G_t | s_t = s] and the **action value** Q^pi(s, a) = E_pi[G_t | s_t = s, a_t = a];
* the **advantage** A^pi(s, a) = Q^pi(s, a) - V^pi(s): how much better action a is than the policy's average;
* the **Bellman equation** V^pi(s) = sum_a pi(a|s) [r(s, a) + gamma sum_s' P(s'|s, a) V^pi(s')], linear in V, so
  V^pi = (I - gamma P_pi)^-1 r_pi; and its optimality form, solved by value iteration;
* the **TD residual** delta_t = r_t + gamma V(s_{t+1}) - V(s_t), whose expectation given (s_t, a_t) is the
  advantage when V = V^pi: the one-step estimate that GAE averages (notebook 05).

`ChainMDP`: states 0..n-1 in a row, the last one a goal that ends the episode with ``goal`` reward;
action 0 steps left, 1 right, and with probability ``slip`` the step goes the other way; every step
costs ``step_cost``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChainMDP:
    n: int = 6
    slip: float = 0.1
    step_cost: float = 0.05
    goal: float = 1.0
    gamma: float = 0.9

    def __post_init__(self):
        if self.n < 2:
            raise ValueError(f"a chain needs at least 2 states, got n={self.n}")
        if not 0 <= self.slip <= 1 or not 0 <= self.gamma <= 1:
            raise ValueError(f"slip and gamma are probabilities in [0, 1], got slip={self.slip}, gamma={self.gamma}")

    @property
    def terminal(self) -> int:
        return self.n - 1

    def model(self) -> tuple[np.ndarray, np.ndarray]:
        """P (S, A, S'): transition probabilities; R (S, A): expected reward of a step. The terminal
        state has no outgoing probability (its value is 0)."""
        S = self.n
        P, R = np.zeros((S, 2, S)), np.zeros((S, 2))
        for s in range(S - 1):
            for a, direction in ((0, -1), (1, +1)):
                for move, p in ((direction, 1 - self.slip), (-direction, self.slip)):
                    s2 = min(max(s + move, 0), S - 1)
                    P[s, a, s2] += p
                    R[s, a] += p * (self.goal if s2 == self.terminal else 0.0)
                R[s, a] -= self.step_cost
        return P, R

    def step(self, s: int, a: int, rng: np.random.Generator, P: np.ndarray | None = None) -> tuple[int, float, bool]:
        """One sampled step: (next state, reward, episode over). ``P``: `model`'s, if already made."""
        P = self.model()[0] if P is None else P
        s2 = int(rng.choice(self.n, p=P[s, a]))
        reward = (self.goal if s2 == self.terminal else 0.0) - self.step_cost
        return s2, reward, s2 == self.terminal


def policy_values(mdp: ChainMDP, pi: np.ndarray) -> np.ndarray:
    """V^pi for the policy ``pi`` (S, A), by solving the Bellman expectation equation (a linear system)."""
    P, R = mdp.model()
    pi = np.asarray(pi, dtype=float)
    if pi.shape != R.shape or not np.allclose(pi.sum(1), 1) or (pi < 0).any():
        raise ValueError(f"pi must be ({mdp.n}, 2) with rows that are distributions, got shape {pi.shape}")
    P_pi, r_pi = np.einsum("sa,sat->st", pi, P), (pi * R).sum(1)
    live = np.arange(mdp.n) != mdp.terminal
    V = np.zeros(mdp.n)
    A = np.eye(live.sum()) - mdp.gamma * P_pi[np.ix_(live, live)]
    V[live] = np.linalg.solve(A, r_pi[live])
    return V


def q_values(mdp: ChainMDP, V: np.ndarray) -> np.ndarray:
    """Q(s, a) = r(s, a) + gamma sum_s' P(s'|s, a) V(s') (S, A); 0 at the terminal state."""
    P, R = mdp.model()
    Q = R + mdp.gamma * P @ V
    Q[mdp.terminal] = 0.0
    return Q


def value_iteration(mdp: ChainMDP, tol: float = 1e-10, max_iterations: int = 10_000) -> tuple[np.ndarray, np.ndarray, int]:
    """V*, a greedy optimal policy (S, A) and the number of sweeps, by V <- max_a [r + gamma P V]."""
    V = np.zeros(mdp.n)
    for it in range(1, max_iterations + 1):
        new = q_values(mdp, V).max(1)
        new[mdp.terminal] = 0.0
        if np.abs(new - V).max() < tol:
            V = new
            break
        V = new
    else:
        raise RuntimeError(f"value iteration did not converge in {max_iterations} sweeps (gamma = {mdp.gamma})")
    pi = np.eye(2)[q_values(mdp, V).argmax(1)]
    return V, pi, it


def sample_episodes(mdp: ChainMDP, pi: np.ndarray, start: int, episodes: int, seed: int = 0,
                    max_steps: int = 1_000) -> list[list[tuple[int, int, float, int]]]:
    """Episodes from ``start`` under ``pi``, each a list of (s, a, r, s') steps."""
    rng, (P, _) = np.random.default_rng(seed), mdp.model()
    out = []
    for _ in range(episodes):
        s, steps = start, []
        for _ in range(max_steps):
            a = int(rng.choice(2, p=pi[s]))
            s2, r, done = mdp.step(s, a, rng, P)
            steps.append((s, a, r, s2))
            s = s2
            if done:
                break
        out.append(steps)
    return out


def discounted_return(rewards, gamma: float) -> float:
    """G_0 = sum_t gamma^t r_t."""
    return float(sum(r * gamma ** t for t, r in enumerate(rewards)))
