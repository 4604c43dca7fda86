"""Notebook 05: PPO with a KL penalty."""
import torch


def advantages():
    """Rewards: -beta kl_t at each token, plus the score at the last: (-0.02, 0.01, 1.5 - 0.03 = 1.47). With
    gamma = lam = 1 and V = 0 an advantage is the return from t on: (1.46, 1.48, 1.47)."""
    r = [-0.1 * 0.2, 0.1 * 0.1, 1.5 - 0.1 * 0.3]
    return [sum(r[t:]) for t in range(3)]


def gae_bootstrapped(rewards, values, gamma, lam, last_value):
    """delta_t = r_t + gamma V(s_{t+1}) - V(s_t), with V(s_T) = last_value; A_t = delta_t + gamma lam A_{t+1}."""
    T, adv, acc = len(rewards), torch.zeros_like(values), 0.0
    for t in reversed(range(T)):
        next_value = values[t + 1] if t + 1 < T else last_value
        acc = rewards[t] + gamma * next_value - values[t] + gamma * lam * acc
        adv[t] = acc
    return adv


def clipped_points():
    """A = -2, eps = 0.1: at rho = 0.85 the terms are -1.7 and clip(0.85) A = 0.9 (-2) = -1.8; the min is the
    clipped -1.8, flat in rho (slope 0). At rho = 1.15: -2.3 against 1.1 (-2) = -2.2; the min is the unclipped
    -2.3, slope A = -2."""
    return (-1.8, 0.0), (-2.3, -2.0)


SOLUTIONS = {"05.1": advantages, "05.2": lambda: gae_bootstrapped, "05.3": clipped_points}
WRONG = {
    "05.1": [("the per-token rewards", lambda: [-0.02, 0.01, 1.47]),
             ("the score at every token", lambda: [1.48, 1.51, 1.47])],
    "05.2": [("ignores last_value (a finished episode)", lambda: lambda r, v, g, l, last: gae_bootstrapped(r, v, g, l, 0.0)),
             ("one-step TD errors whatever lam", lambda: lambda r, v, g, l, last: gae_bootstrapped(r, v, g, 0.0, last))],
    "05.3": [("the unclipped terms", lambda: ((-1.7, -2.0), (-2.3, -2.0))),
             ("clipped on both sides", lambda: ((-1.8, 0.0), (-2.2, 0.0)))],
}
