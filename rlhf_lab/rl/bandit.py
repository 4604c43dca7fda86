"""Reinforcement learning in its smallest form: a k-armed bandit, and the language model as a bandit.

The RL loop (Sutton and Barto 2018, ch. 3): in state s_t the agent samples an action a_t ~ pi_theta(a_t | s_t), the
environment returns the next state s_{t+1} and a reward r_t, and learning seeks
max_theta E_{pi_theta}[R]. A k-armed bandit has a single state and episodes of one step,
so the policy is just a categorical distribution over arms, pi = softmax(H), and the
*gradient bandit algorithm* (Sutton & Barto 2018, §2.8, eq. 2.12) learns it:

    H_{t+1} = H_t + alpha (R_t - b_t) (onehot(A_t) - pi_t),                       (2.12)

which is REINFORCE (Williams 1992) with a baseline b_t, the average of the rewards seen
so far; notebook 04 derives why it climbs the gradient of E[R].

RLHF treats the language model the same way (InstructGPT, Ouyang et al. 2022, §3.5:
"a bandit environment which presents a random customer prompt and expects a response to
the prompt. Given the prompt and response, it produces a reward determined by the reward
model and ends the episode"). `LanguageBandit` is that environment, with a gold judge of
the review world as the reward; `token_steps` shows the finer, token-level view in which
each token is an action and the next state is the prompt plus the tokens so far.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from rlhf_lab.config import validate_config
from rlhf_lab.lm.generation import sample
from rlhf_lab.world.reviews import Prompt, judge_completion

# ---- the k-armed bandit ---------------------------------------------------------------


@dataclass
class Bandit:
    """k arms; pulling arm a pays a reward ~ N(means[a], noise^2) (Sutton & Barto's testbed, §2.3)."""

    means: list[float]
    """Expected reward q*(a) of each arm; the learner never sees them."""
    noise: float = 1.0
    """Standard deviation of a pull's reward around its arm's mean."""

    @classmethod
    def gaussian(cls, k: int = 10, seed: int = 0, offset: float = 0.0, noise: float = 1.0) -> "Bandit":
        """Means drawn from N(offset, 1), as in the 10-armed testbed (offset 4 in §2.8's experiment)."""
        rng = random.Random(seed)
        return cls([offset + rng.gauss(0.0, 1.0) for _ in range(k)], noise)

    @property
    def k(self) -> int:
        return len(self.means)

    @property
    def best_arm(self) -> int:
        return max(range(self.k), key=self.means.__getitem__)

    def pull(self, arm: int, rng: random.Random) -> float:
        """One reward for ``arm``; ``rng`` makes runs reproducible."""
        return rng.gauss(self.means[arm], self.noise)


def gradient_bandit_update(logits: torch.Tensor, action: int, reward: float, baseline: float,
                           lr: float) -> torch.Tensor:
    """Sutton & Barto eq. 2.12: H + lr (R - b)(onehot(a) - softmax(H)). logits (K,) -> new logits (K,).

    (onehot(a) - pi) is grad_H log pi(a): the step is one-sample REINFORCE (notebook 04).
    """
    probs = torch.softmax(logits, -1)
    return logits + lr * (reward - baseline) * (F.one_hot(torch.tensor(action), logits.shape[-1]) - probs)


def expected_regret(probs: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """max_a q*(a) - sum_a pi(a) q*(a): the reward lost per step by not always pulling the best arm.
    probs, means: (..., K) -> (...)."""
    means = torch.as_tensor(means, dtype=probs.dtype)
    return means.max(-1).values - (probs * means).sum(-1)


@dataclass
class BanditConfig:
    """The gradient bandit algorithm on one `Bandit`."""

    steps: int = 1000
    """Pulls (one per step; each is an episode of length one)."""
    lr: float = 0.1
    """Step size alpha of eq. 2.12."""
    baseline: bool = True
    """Subtract the average of the rewards so far (b_t); False uses b_t = 0."""
    seed: int = 0
    """Seeds the pulls and the policy's draws."""

    def __post_init__(self):
        validate_config(self, {"steps": ">=1", "lr": ">0", "seed": ">=0"})


@dataclass
class BanditHistory:
    """Per step: what the learner did and how good its policy was."""

    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)
    """pi_t over the arms *before* step t's update, (steps, K)."""
    regret: list[float] = field(default_factory=list)
    """Expected regret of pi_t (see `expected_regret`)."""
    wall_time_s: float = 0.0

    @property
    def cumulative_regret(self) -> list[float]:
        out, total = [], 0.0
        for r in self.regret:
            total += r
            out.append(total)
        return out


def train_bandit(bandit: Bandit, cfg: BanditConfig | None = None,
                 on_step: Callable[[int, BanditHistory], None] | None = None) -> BanditHistory:
    """Learn pi = softmax(H) from H = 0 with eq. 2.12; ``on_step(t, history)`` after each step."""
    cfg = cfg or BanditConfig()
    rng = random.Random(cfg.seed)
    logits = torch.zeros(bandit.k, dtype=torch.float64)
    means = torch.tensor(bandit.means, dtype=torch.float64)
    hist, average, start = BanditHistory(), 0.0, time.perf_counter()
    for t in range(cfg.steps):
        probs = torch.softmax(logits, -1)
        action = rng.choices(range(bandit.k), weights=probs.tolist())[0]   # a_t ~ pi(. | s)
        reward = bandit.pull(action, rng)                                  # the environment answers
        baseline = average if cfg.baseline else 0.0                        # mean of r_1 .. r_{t-1}
        logits = gradient_bandit_update(logits, action, reward, baseline, cfg.lr)
        average += (reward - average) / (t + 1)
        hist.actions.append(action)
        hist.rewards.append(reward)
        hist.probs.append(probs.tolist())
        hist.regret.append(expected_regret(probs, means).item())
        if on_step is not None:
            on_step(t, hist)
    hist.wall_time_s = time.perf_counter() - start
    return hist


# ---- the language model as a bandit ---------------------------------------------------


def gold_reward(prompt: Prompt, completion: str) -> float:
    """The review world's gold score r*(x, y) of one completion (`world.judge_completion`)."""
    return judge_completion(prompt, completion).gold


class LanguageBandit:
    """The language model as a bandit (InstructGPT, §3.5): a random prompt is the state, a completion is the action,
    a reward function scores it and the episode ends."""

    def __init__(self, prompts: list[Prompt], reward_fn: Callable[[Prompt, str], float] = gold_reward,
                 seed: int = 0):
        if not prompts:
            raise ValueError("LanguageBandit needs at least one prompt")
        self.prompts, self.reward_fn = list(prompts), reward_fn
        self.rng = random.Random(seed)
        self.state: Prompt | None = None

    def reset(self) -> Prompt:
        """Start an episode: present a random prompt (the state s)."""
        self.state = self.rng.choice(self.prompts)
        return self.state

    def step(self, completion: str) -> tuple[float, bool]:
        """Take the action (the whole completion); return (reward, done). done is always True."""
        if self.state is None:
            raise RuntimeError("call reset() before step(): the episode has no prompt yet")
        reward, self.state = self.reward_fn(self.state, completion), None
        return reward, True


@dataclass
class Episode:
    """One episode of the `LanguageBandit`: state, action, reward, and the policy's log pi(action | state)."""

    state: Prompt
    action: str
    reward: float
    logprob: float
    """log pi(y | x) = sum of the completion's token log-probs, at the sampling temperature."""
    n_tokens: int
    """Actions of the token-level view: generated tokens, EOS included."""


def play(env: LanguageBandit, model, tokenizer, n: int, temperature: float = 0.7,
         max_new_tokens: int = 48) -> list[Episode]:
    """Run ``n`` episodes: n prompts from ``env.reset()``, one batched sample of the policy, ``env.step`` each."""
    states = [env.reset() for _ in range(n)]
    out = sample(model, tokenizer, [s.text for s in states], max_new_tokens=max_new_tokens,
                 temperature=temperature)
    episodes = []
    for i, state in enumerate(states):
        env.state = state          # the episodes were started together; finish each in turn
        reward, done = env.step(out.completions[i])
        assert done
        episodes.append(Episode(state, out.completions[i], reward, out.logprobs[i].sum().item(),
                                int(out.completion_mask[i].sum())))
    return episodes


@dataclass
class TokenStep:
    """One step of the token-level view: state = prompt + tokens so far, action = the next token."""

    t: int
    state: str
    action: str
    prob: float
    """pi(action | state) at the sampling temperature."""
    reward: float
    """0 before the last token; the completion's reward at the last one."""


def token_steps(samples, tokenizer, row: int, reward: float) -> list[TokenStep]:
    """The episode of completion ``row`` of a `generation.Samples`, one `TokenStep` per generated token.

    The state text is decoded from the prompt and the tokens before t; the final reward
    arrives with the last token (EOS, or the last one within the budget).
    """
    prompt = tokenizer.decode(samples.prompt_ids[row][samples.prompt_mask[row].bool()])
    n = int(samples.completion_mask[row].sum())
    ids = samples.completion_ids[row, :n].tolist()
    steps = []
    for t in range(n):
        steps.append(TokenStep(t, prompt + tokenizer.decode(ids[:t]), tokenizer.decode([ids[t]]),
                               math.exp(samples.logprobs[row, t].item()), reward if t == n - 1 else 0.0))
    return steps
