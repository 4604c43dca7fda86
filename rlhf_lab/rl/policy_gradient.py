"""The policy gradient: grad E[R] = E[R grad log pi], its Monte-Carlo estimate, baselines, REINFORCE.

The reward of RLHF is not differentiable in theta: a completion y is *sampled* from
pi_theta(. | x) and a judge reads its text. The log-derivative trick (Williams 1992,
"REINFORCE"; Sutton et al. 2000, the policy gradient theorem) moves the gradient onto
the log-probability of the sample, which is differentiable:

    grad_theta E_{y ~ pi_theta}[R(y)] = sum_y R(y) grad pi_theta(y)
                                      = sum_y R(y) pi_theta(y) grad log pi_theta(y)
                                      = E_{y ~ pi_theta}[R(y) grad log pi_theta(y)].        (1)

Subtracting a baseline b that does not depend on the sampled y leaves (1) unchanged,
since E[grad log pi] = grad sum_y pi(y) = grad 1 = 0, and can lower its variance a lot:

    grad E[R] = E[(R(y) - b) grad log pi_theta(y)].                                         (2)

For a language model, log pi(y | x) = sum_t log pi(y_t | x, y_<t) (`rlhf_lab.lm.generation`),
so the loss whose gradient is minus (2) is the REINFORCE loss, minimised by gradient descent:

    L(theta) = -1/B sum_i (R_i - b_i) log pi_theta(y_i | x_i).                              (3)

The module has three parts: the exact gradient and the estimator on a small categorical
distribution (where both can be computed and compared); baselines; and REINFORCE on a
language model with a gold judge of the review world as the reward (`train_reinforce`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from rlhf_lab.config import set_seed, validate_config
from rlhf_lab.utils.progress import progress_bar
from rlhf_lab.lm.generation import Samples, sample, sequence_logprob, token_logprobs
from rlhf_lab.utils.guard import check_parameters, check_step
from rlhf_lab.world.reviews import Prompt, judge_many
from rlhf_lab.world.judges import summarise

# ---- the categorical check: exact gradient vs Monte-Carlo ------------------------------

def expected_reward(logits: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """J(theta) = E_{a ~ softmax(logits)}[r_a] = sum_a pi(a) r_a. logits, rewards: (K,) -> scalar.

    Differentiable in ``logits``: the exact expectation, possible only because K is small.
    """
    return (torch.softmax(logits, -1) * rewards).sum()


def exact_gradient(logits: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """grad_logits J = pi * (r - E[r]), the closed form of the gradient of `expected_reward`. (K,) -> (K,).

    From d pi_a / d z_j = pi_a (1[a = j] - pi_j): sum_a r_a pi_a (1[a=j] - pi_j) = pi_j (r_j - sum_a pi_a r_a).
    """
    probs = torch.softmax(logits, -1)
    return probs * (rewards - (probs * rewards).sum())


def score_function(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """grad_logits log pi(a_i) = onehot(a_i) - pi, one row per sample. logits (K,), actions (N,) -> (N, K).

    The softmax normaliser contributes the "- pi": log pi(a) = z_a - logsumexp(z).
    """
    probs = torch.softmax(logits, -1)
    return F.one_hot(actions, logits.shape[-1]).to(probs.dtype) - probs


def reinforce_gradient_samples(logits: torch.Tensor, rewards: torch.Tensor, actions: torch.Tensor,
                               baseline: torch.Tensor | float | None = None) -> torch.Tensor:
    """One-sample estimates g_i = (r_{a_i} - b_i) grad log pi(a_i) of eq. (2). Returns (N, K).

    logits, rewards: (K,); actions: (N,) sampled from softmax(logits); baseline: None (b = 0),
    a float, or (N,) with b_i independent of a_i. The N-sample estimate is ``g.mean(0)``.
    """
    r = rewards[actions]                                  # (N,) the reward each sample received
    b = torch.zeros_like(r) if baseline is None else torch.as_tensor(baseline, dtype=r.dtype).expand_as(r)
    return (r - b)[:, None] * score_function(logits, actions)


def estimator_variance(per_sample: torch.Tensor) -> float:
    """Total variance (trace of the covariance) of one-sample gradient estimates (N, K) -> float.

    The variance of the N-sample mean is this divided by N.
    """
    return per_sample.var(0, unbiased=True).sum().item()


# ---- baselines ------------------------------------------------------------------------

def mean_baseline(rewards: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
    """Leave-one-out mean reward: b_i = mean of the *other* rewards of i's group. (B,) -> (B,).

    Rows of one group (e.g. k samples of the same prompt) are consecutive; ``group_size``
    None makes the whole batch one group. Leaving r_i out keeps b_i independent of y_i,
    so eq. (2) stays unbiased (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline
    for free!"; RLOO in Ahmadian et al. 2024). Including r_i would shrink the gradient by (k-1)/k.
    """
    k = rewards.numel() if group_size is None else group_size
    if k < 2 or rewards.numel() % k:
        raise ValueError(f"need groups of at least 2 rewards that divide the batch; got {rewards.numel()} "
                         f"rewards and group_size={group_size}")
    groups = rewards.reshape(-1, k)
    return ((groups.sum(-1, keepdim=True) - groups) / (k - 1)).reshape(rewards.shape)


def learned_baseline(rewards: torch.Tensor, lr: float = 0.05, init: float = 0.0) -> torch.Tensor:
    """A learned value v, trained online on (R - v)^2 / 2: b_i = v before it sees r_i. (N,) -> (N,).

    v <- v + lr (r_i - v) after each reward, so b_i depends on r_1 .. r_{i-1} only and
    eq. (2) stays unbiased; v tends to E[R], the value of the (single) state.
    """
    out, v = [], float(init)
    for r in rewards.tolist():
        out.append(v)
        v += lr * (r - v)
    return torch.tensor(out, dtype=rewards.dtype, device=rewards.device).reshape(rewards.shape)


# ---- REINFORCE on sequences -----------------------------------------------------------

def reinforce_loss(logps: torch.Tensor, rewards: torch.Tensor,
                   baseline: torch.Tensor | float | None = None) -> tuple[torch.Tensor, dict]:
    """L = -mean_i (R_i - b_i) log pi(y_i | x_i), eq. (3): its gradient is minus the estimate of (2).

    logps: (B,) differentiable sequence log-probs (`sequence_logprobs`); rewards: (B,);
    baseline: None, a float or (B,). Advantages are detached: the reward is a number, not
    a function of theta. Returns (loss, stats) with stats as plain floats.
    """
    rewards = rewards.to(logps.dtype)
    advantages = rewards - (0.0 if baseline is None else torch.as_tensor(baseline, dtype=logps.dtype))
    advantages = advantages.detach()
    loss = -(advantages * logps).mean()
    stats = {"reward": rewards.mean().item(), "logp": logps.detach().mean().item(),
             "advantage_std": advantages.std().item() if advantages.numel() > 1 else 0.0}
    return loss, stats


def sequence_logprobs(model, samples: Samples, temperature: float = 1.0, reduction: str = "sum") -> torch.Tensor:
    """log pi(y | x) of each sampled completion from one forward pass, differentiable. Returns (B,).

    The sum of `generation.token_logprobs` over the completion ("sum": the exact
    log-probability; "mean": divided by the length, which changes the estimator).
    """
    token_logps = token_logprobs(model, samples.input_ids, samples.attention_mask,
                                 start=samples.prompt_ids.shape[1], temperature=temperature)
    return sequence_logprob(token_logps, samples.completion_mask, reduction=reduction)


def gold_rewards(prompts: list[Prompt], completions: list[str]) -> torch.Tensor:
    """The review world's gold score r*(x, y) of each completion, (B,). Any callable with this
    signature can replace it (notebook 05 uses a learned reward model)."""
    return torch.tensor([s.gold for s in judge_many(prompts, completions)], dtype=torch.float32)


@dataclass
class ReinforceConfig:
    """REINFORCE on a language model (eq. 3), the bandit view: one reward per completion.

    The update is plain SGD on the clipped gradient: every step has length ``lr`` in the
    direction of the estimate. Adam, which rescales each coordinate, also amplifies the
    noise of parameters that one batch barely touches (embeddings of rarely sampled
    tokens); with the same budget it raised the reward on some seeds and not on others.
    """

    seed: int = 0
    """Seeds prompt order and sampling."""
    steps: int = 20
    """Optimizer steps (one batch of fresh samples each: on-policy)."""
    batch_size: int = 8
    """Prompts per step."""
    samples_per_prompt: int = 4
    """Completions per prompt (k); the "mean" baseline leaves one out within each prompt's k."""
    lr: float = 0.1
    """SGD step size; with clipping, the length of each step in parameter space."""
    max_grad_norm: float = 1.0
    """Gradient clipping (the sum of ~20 token log-probs has a gradient norm of about 2 to 15)."""
    baseline: str = "mean"
    """"none" (b = 0), "mean" (leave-one-out mean of the prompt's k rewards) or "learned"
    (a value v of the mean reward, v <- v + 0.3 (batch mean - v) after each step)."""
    reduction: str = "sum"
    """"sum" of token log-probs (the exact log pi(y | x) of eq. 3) or "mean" (length-normalised)."""
    temperature: float = 0.7
    """Sampling temperature; the log-probs divide the logits by the same T."""
    max_new_tokens: int = 48
    """Token budget of a completion."""

    def __post_init__(self):
        validate_config(self, {"seed": ">=0", "steps": ">=1", "batch_size": ">=1", "samples_per_prompt": ">=1",
                               "lr": ">0", "max_grad_norm": ">0", "baseline": ("none", "mean", "learned"),
                               "reduction": ("sum", "mean"), "temperature": ">0", "max_new_tokens": ">=1"})

    @classmethod
    def tiny(cls) -> "ReinforceConfig":
        """The embedded model on 2 CPU cores: 20 steps of 32 completions, about 8 s."""
        return cls()

    @classmethod
    def gpu(cls) -> "ReinforceConfig":
        """GPT-2 (124M) on one GPU: more prompts per step, smaller steps (not tuned on a GPU yet)."""
        return cls(steps=40, batch_size=32, lr=0.05)


@dataclass
class ReinforceHistory:
    """One entry per step: what `train_reinforce` did, for plots and tests."""

    steps: list[int] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    """Mean reward of the step's samples (before the update)."""
    loss: list[float] = field(default_factory=list)
    logp: list[float] = field(default_factory=list)
    """Mean log pi(y | x) of the step's samples."""
    length: list[float] = field(default_factory=list)
    """Mean completion length in tokens."""
    grad_norm: list[float] = field(default_factory=list)
    """Gradient norm before clipping."""
    wall_time_s: float = 0.0


def train_reinforce(model, tokenizer, prompts: list[Prompt], cfg: ReinforceConfig | None = None,
                    reward_fn: Callable[[list[Prompt], list[str]], torch.Tensor] = gold_rewards,
                    on_step: Callable[[ReinforceHistory], None] | None = None,
                    progress: bool = True) -> ReinforceHistory:
    """Train ``model`` in place with REINFORCE (eq. 3) on ``prompts``; returns the history.

    Each step draws ``batch_size`` prompts, samples ``samples_per_prompt`` completions of
    each at ``temperature``, scores them with ``reward_fn``, and takes one SGD step on
    the loss of `reinforce_loss`. Dropout is off (eval mode), as in RLHF (Huang et al. 2024).
    ``on_step(history)`` is called after every step (a live plot).
    """
    cfg = cfg or ReinforceConfig.tiny()
    if cfg.baseline not in ("none", "mean", "learned"):
        raise ValueError(f"baseline must be 'none', 'mean' or 'learned', got {cfg.baseline!r}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model is frozen (a reference copy?); load the policy with role='policy'")
    set_seed(cfg.seed)
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist, value, start = ReinforceHistory(), 0.0, time.perf_counter()
    for step in progress_bar(range(cfg.steps), desc="REINFORCE", disable=not progress):
        batch = [prompts[i] for i in torch.randint(len(prompts), (cfg.batch_size,), generator=gen).tolist()]
        samples = sample(model, tokenizer, [p.text for p in batch], max_new_tokens=cfg.max_new_tokens,
                         temperature=cfg.temperature, num_samples=cfg.samples_per_prompt)
        rows = [p for p in batch for _ in range(cfg.samples_per_prompt)]   # the prompt of each sample
        rewards = reward_fn(rows, samples.completions).to(samples.logprobs.device)
        if cfg.baseline == "mean":
            baseline = mean_baseline(rewards, cfg.samples_per_prompt)
        else:
            baseline = value if cfg.baseline == "learned" else None
        logps = sequence_logprobs(model, samples, cfg.temperature, cfg.reduction)     # (B * k,)
        loss, stats = reinforce_loss(logps, rewards, baseline)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm).item()
        # checked before the step, so a NaN reward or an overflowed log-prob never reaches the parameters
        check_step(loss.item(), grad_norm, "the REINFORCE", f"at step {step + 1} of {cfg.steps}",
                   f"a reward of NaN or inf, or log-probs that overflowed: lower lr (={cfg.lr}) or check the reward "
                   f"function")
        opt.step()
        value += 0.3 * (stats["reward"] - value)   # the learned value: b for the next step, never this one
        hist.steps.append(step)
        hist.reward.append(stats["reward"])
        hist.loss.append(loss.item())
        hist.logp.append(stats["logp"])
        hist.length.append(samples.completion_mask.sum(-1).float().mean().item())
        hist.grad_norm.append(grad_norm)
        if on_step is not None:
            on_step(hist)
    check_parameters(model, "the policy's", f"after {cfg.steps} REINFORCE steps", f"lower lr (={cfg.lr})")
    hist.wall_time_s = time.perf_counter() - start
    return hist


@dataclass
class GoldEvaluation:
    """One completion per held-out prompt and its gold scores."""

    completions: list[str]
    gold: list[float]
    summary: dict[str, float]
    """`world.summarise` of the scores: gold, sentiment, well_formed_rate, on_topic_rate, ..."""

    @property
    def stderr(self) -> float:
        """Standard error of the mean gold score."""
        n = len(self.gold)
        mean = sum(self.gold) / n
        return math.sqrt(sum((g - mean) ** 2 for g in self.gold) / (n - 1) / n)


@torch.no_grad()
def evaluate_gold(model, tokenizer, prompts: list[Prompt], seed: int = 0, temperature: float = 0.7,
                  max_new_tokens: int = 48, batch_size: int = 64) -> GoldEvaluation:
    """Sample one completion per prompt with a fixed seed and judge it. Use the same seed (and
    held-out prompts) before and after training, so both sides draw with the same random numbers."""
    set_seed(seed)
    completions = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        completions += sample(model, tokenizer, [p.text for p in chunk], max_new_tokens=max_new_tokens,
                              temperature=temperature).completions
    scores = judge_many(prompts, completions)
    return GoldEvaluation(completions, [s.gold for s in scores], summarise(scores))
