"""Notebook 03: the reward model."""
import math

import torch
import torch.nn.functional as F


def equal_reward_gradients():
    """At equal rewards every pair's -log sigmoid(r_w - r_l) has derivative -1/2 in r_w and +1/2 in r_l; the
    loss is their mean over C(9, 2) = 36 pairs. The best wins 8 pairs: 8 (-1/2) / 36 = -1/9; the middle wins 4
    and loses 4: 0; the worst loses 8: +1/9."""
    return -1 / 9, 0.0, 1 / 9


def plackett_luce_nll(rewards, ranking):
    """-log P(ranking): the first is picked among all K with softmax probability, the next among the rest, ..."""
    r = rewards[list(ranking)]
    return -sum(r[i] - torch.logsumexp(r[i:], 0) for i in range(len(r)))


SOLUTIONS = {"03.1": equal_reward_gradients, "03.2": lambda: plackett_luce_nll,
             "03.3": lambda: 1 / (1 + math.exp(-(1.3 - 0.2)))}
WRONG = {
    "03.1": [("signs flipped", lambda: (1 / 9, 0.0, -1 / 9)),
             ("summed over pairs, not averaged", lambda: (-4.0, 0.0, 4.0))],
    "03.2": [("the log-likelihood, not its negative", lambda: lambda r, k: -plackett_luce_nll(r, k)),
             ("only the best against the worst", lambda: lambda r, k: -F.logsigmoid(r[k[0]] - r[k[-1]]))],
    "03.3": [("a coin flip", lambda: 0.5), ("the difference itself", lambda: 1.1)],
}
