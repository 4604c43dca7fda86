"""Notebook 01: the RL recap, the bandit and the MDP."""
import numpy as np
import torch
from transformers import AutoConfig

from rlhf_lab.lm.models import resolve
from rlhf_lab.rl.mdp import ChainMDP, policy_values


def expected_regret(probs, means):
    """Regret = the best arm's mean minus the policy's expected reward, sum_a pi(a) q*(a)."""
    return means.max() - (probs * means).sum()


def gradient_bandit_update(h, a, r, b, lr):
    """Sutton and Barto eq. 2.12: every preference moves, the pulled one up by (1 - pi_a), the others down by pi_j."""
    return h + lr * (r - b) * (torch.eye(len(h), dtype=h.dtype)[a] - torch.softmax(h, -1))


def two_token_completions():
    """A first token that is EOS ends the completion (1 way); any other first token (V - 1) is followed by any
    of V tokens: 1 + (V - 1) V."""
    v = AutoConfig.from_pretrained(resolve("tiny")[1]).vocab_size
    return 1 + (v - 1) * v


def bellman_backup(V, P, R, pi, gamma):
    """V'(s) = sum_a pi(a|s) [R(s, a) + gamma sum_s' P(s'|s, a) V(s')]."""
    return (pi * (R + gamma * P @ V)).sum(-1)


def expected_steps():
    """With a reward of 1 per step (step cost -1 negated by counting), no goal bonus and gamma = 1, the value of
    state 0 is the expected number of steps: solve the chain exactly."""
    counting = ChainMDP(n=6, slip=0.1, step_cost=-1.0, goal=0.0, gamma=1.0)
    return float(policy_values(counting, np.tile([0.3, 0.7], (6, 1)))[0])


SOLUTIONS = {"01.1": lambda: expected_regret, "01.2": lambda: gradient_bandit_update, "01.3": two_token_completions,
             "01.4": lambda: bellman_backup, "01.5": expected_steps}
WRONG = {
    "01.1": [("against the mean arm, not the best", lambda: lambda p, m: m.max() - m.mean()),
             ("the sign flipped", lambda: lambda p, m: (p * m).sum() - m.max())],
    "01.2": [("only the pulled arm moves", lambda: lambda h, a, r, b, lr: h + lr * (r - b) * torch.eye(len(h), dtype=h.dtype)[a]),
             ("no baseline", lambda: lambda h, a, r, b, lr: h + lr * r * (torch.eye(len(h), dtype=h.dtype)[a] - torch.softmax(h, -1)))],
    "01.3": [("every pair of tokens", lambda: two_token_completions() + AutoConfig.from_pretrained(resolve("tiny")[1]).vocab_size - 1),
             ("the number of actions at one step", lambda: AutoConfig.from_pretrained(resolve("tiny")[1]).vocab_size)],
    "01.4": [("the optimality backup, not the policy's", lambda: lambda V, P, R, pi, g: (R + g * P @ V).max(-1)),
             ("no discount", lambda: lambda V, P, R, pi, g: (pi * (R + P @ V)).sum(-1))],
    "01.5": [("five steps right at 0.7, ignoring slips and the wall", lambda: 5 / 0.7),
             ("a sample average's error", lambda: expected_steps() * 1.05)],
}
