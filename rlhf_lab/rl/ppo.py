"""PPO for language models: the KL-penalised reward, GAE, the clipped losses, the KL controller.

The RL objective of RLHF (Ziegler et al. 2019, eq. 2; Stiennon et al. 2020, eq. 1) keeps
the policy pi near the frozen SFT baseline pi_ref:

    R(x, y) = r_phi(x, y) - beta log(pi(y | x) / pi_ref(y | x))

with log pi(y | x) = sum_t log pi(y_t | x, y_<t). Spread over the tokens, the reward of
token t is (Huang et al. 2024, "The N Implementation Details of RLHF with PPO"; TRL)

    r_t = -beta kl_t + [t = last] r_phi(x, y),      kl_t = log pi(y_t | s_t) - log pi_ref(y_t | s_t)   (1)

a KL penalty at every token and the reward-model score at the last one. Each completion
is one episode of T actions (tokens); the value V(s_t) of the state before token t gives
the advantages by generalised advantage estimation (Schulman et al. 2016, eq. 16):

    delta_t = r_t + gamma V(s_{t+1}) - V(s_t),     A_t = sum_l (gamma lam)^l delta_{t+l}     (2)

and PPO (Schulman et al. 2017, eq. 7) maximises the clipped surrogate, with rho_t the
ratio pi_theta / pi_old of the token's probability under the policy being updated and
the policy that sampled it:

    L_clip = E_t[min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)]                      (3)

Everything here is a pure function on tensors of shape (B, T) (B episodes, T response
tokens) with a (B, T) mask that is 1 on the response's tokens (up to and including EOS)
and 0 after it. The training loop that uses them is `rlhf_lab.rl.ppo_trainer`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_lab.config import ConfigError, validate_config

# ---- masked statistics --------------------------------------------------------------------

def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (all of them, or along ``dim``)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of ``x`` over the masked positions (a scalar)."""
    mean = masked_mean(x, mask)
    n = mask.sum().clamp(min=2)
    return ((x - mean) ** 2 * mask).sum() / (n - 1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked positions; ``shift_mean=False`` keeps the mean (only
    rescales), as TRL does for rewards. Masked-out positions are set to 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var[returns - values] / Var[returns] over the masked tokens: 1 is a perfect critic,
    0 one no better than a constant, negative one worse than a constant."""
    var_returns = masked_var(returns, mask)
    if var_returns.item() < 1e-12:
        return float("nan")
    return (1 - masked_var(returns - values, mask) / var_returns).item()


# ---- the reward of eq. (1) ----------------------------------------------------------------

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from the sampled tokens' log-probs. (B, T) -> (B, T).

    With log r = log pi_ref(y_t) - log pi(y_t) and y_t ~ pi (Schulman 2020, "Approximating KL
    divergence"):
      k1 = -log r                 unbiased, but a single sample can be negative;
      k2 = (log r)^2 / 2          biased (its mean is KL only to second order), never negative, low variance;
      k3 = (r - 1) - log r        also unbiased, never negative, lower variance when pi ~ pi_ref.
    Both are 0 where pi = pi_ref. Only samples from pi itself make them unbiased: sampling
    with top-k or a minimum length, or a log-prob at another temperature, breaks that, and
    k1's batch mean can then go negative.
    """
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio ** 2
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"kl estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Column of the last 1 of each row of a right-padded mask (B, T) -> (B,); 0 for an empty row."""
    return (mask.long().sum(-1) - 1).clamp(min=0)


def per_token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                      beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (1): r_t = -beta kl_t at every response token, plus the score at the last one.

    scores: (B,) reward-model score of each response; kl, mask: (B, T).
    Returns (rewards (B, T), non_score_rewards (B, T) = -beta kl_t), both 0 where mask is 0.
    """
    mask = mask.to(kl.dtype)
    non_score = -beta * kl * mask
    rewards = non_score.clone()
    rows = torch.arange(kl.shape[0], device=kl.device)
    rewards[rows, last_index(mask)] += scores.to(kl.dtype)
    return rewards, non_score


# ---- GAE, eq. (2) ----------------------------------------------------------------------------

def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, eq. (2), for right-padded episodes. (B, T) -> (B, T), (B, T).

    values[:, t] = V(s_t), the value of the state before response token t. After the last
    token the episode is over: V = 0 there (positions where mask is 0 count as terminal).
    Returns (advantages, returns) with returns = advantages + values (the value targets),
    both 0 where mask is 0. The loop runs backwards over T and is vectorised over B.
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask


# ---- the losses, eq. (3) ------------------------------------------------------------------

def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float = 0.2) -> tuple[torch.Tensor, dict]:
    """Minus the clipped surrogate of eq. (3), averaged over the masked tokens. (B, T) inputs.

    logprobs: differentiable log pi_theta(y_t | s_t); old_logprobs: the same under the policy
    that sampled (detached). Returns (loss, stats): clipfrac (share of tokens where the
    clipped term was chosen), approxkl (mean of (log rho)^2 / 2, the size of the update),
    ratio (mean rho), as 0-d tensors on the inputs' device (a training loop reads them after
    its last minibatch instead of waiting for the device at every one).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():   # 0-d tensors: reading them (float(), f-strings) is left to the caller
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
                 "approxkl": masked_mean(0.5 * log_ratio ** 2, mask),
                 "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float = 0.2) -> tuple[torch.Tensor, dict]:
    """Clipped value loss 1/2 max((V - R)^2, (clip(V, V_old +- eps) - R)^2), mean over masked tokens.

    The new values may move at most ``cliprange_value`` from the rollout's values before
    the loss stops rewarding the move (Huang et al. 2024, detail 10; TRL's ``cliprange_value``).
    Returns (loss, stats) with the share of tokens where the clipped term was larger (a 0-d tensor).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((loss_clipped > loss_unclipped).float(), mask)}
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H(pi(. | s_t)) = -sum_v p_v log p_v of each row of logits (..., V) -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


# ---- beta: fixed or adaptive (Ziegler et al. 2019, §2.2) --------------------------------------

class FixedKLController:
    """beta stays at its initial value (TRL's default, 0.05)."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value


class AdaptiveKLController:
    """Ziegler et al. 2019, §2.2: move beta so that the KL tracks a target.

        e = clip(KL / target - 1, -0.2, 0.2),     beta <- beta (1 + e n_steps / horizon)

    A KL above the target raises beta (a stronger leash), one below lowers it. n_steps is
    the number of episodes since the last update; horizon sets how fast beta reacts.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ValueError(f"the adaptive KL controller needs target > 0 and horizon > 0, got {target}, {horizon}")
        self.value, self.target, self.horizon = float(init_kl_coef), float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon
        return self.value


# ---- the configuration ------------------------------------------------------------------

COMPILE_MODES = ("off", "generate", "all")


@dataclass
class PPOConfig:
    """Every coefficient of a PPO run. Defaults are Huang et al. 2024's and TRL's where one exists."""

    model: str = "tiny"
    """The SFT model: the policy starts from it and the frozen reference pi_ref is a copy of it."""
    reward_model: str = "tiny-rm"
    """The reward model r_phi: "tiny-rm" (shipped, trained on the shipped labels), a folder (one reward model, or an
    ensemble's: notebook 10), or "verifier" (notebook 09's checkable task: the specification's 0/1 verdict,
    `rlhf_lab.world.specs.SpecReward`)."""
    iterations: int = 20
    """PPO iterations: each samples ``batch_size`` episodes and updates the policy on them."""
    batch_size: int = 64
    """Episodes (prompt, response) per iteration."""
    mini_batch_size: int = 32
    """Episodes per gradient step; batch_size / mini_batch_size steps per PPO epoch."""
    ppo_epochs: int = 4
    """Passes over each batch of episodes (4 in the reproductions)."""
    group_by_length: bool = False
    """Minibatches of episodes of similar response length (shuffled order): less padding per step
    when ``padding_free`` is off (padding-free rows have none to save)."""
    padding_free: bool = True
    """Score and update on packed rows without padding (`rollout.pack_episodes`; TRL's name for the
    same idea in its SFT and DPO trainers); False: padded rows, each minibatch trimmed to its widest."""
    lr: float = 1e-4
    """Adam learning rate: 1e-4 for the embedded model; GPT-2 (124M) 1.41e-5, as Ziegler et al. (2019) and
    TRL's GPT-2 sentiment runs use (`gpu()`)."""
    max_grad_norm: float = 1.0
    """Gradient clipping of the whole update."""
    max_new_tokens: int = 24
    """Token budget of a response."""
    temperature: float = 0.7
    """Sampling temperature; every log-prob of the run divides the logits by the same T."""
    unfinished_score: float | None = -1.0
    """Score given to a response with no EOS within the budget instead of r_phi (-1 in the
    reproductions; TRL's ``missing_eos_penalty`` subtracts instead). None scores it with r_phi."""
    score_clip: float | None = None
    """Clip the score to [-score_clip, score_clip] (None: no clipping)."""
    whiten_rewards: bool = False
    """Rescale the per-token rewards to unit std over the batch before GAE (mean kept)."""
    kl_coef: float = 0.05
    """beta of eq. (1), fixed (TRL's default 0.05); the initial beta when ``adaptive_kl``."""
    kl_estimator: str = "k1"
    """Per-token KL in the reward: "k1" (log pi - log pi_ref) or "k3" (non-negative)."""
    adaptive_kl: bool = False
    """Use Ziegler et al.'s adaptive controller instead of a fixed beta (init 0.15 or 0.2 there)."""
    target_kl: float = 6.0
    """Adaptive controller: the KL (nats per response) it steers towards."""
    horizon: int = 10_000
    """Adaptive controller: episodes over which beta can change by a factor of about e^0.2."""
    gamma: float = 1.0
    """Discount of GAE: 1, the episode is one short response."""
    lam: float = 0.95
    """lambda of GAE."""
    whiten_advantages: bool = True
    """Whiten the advantages of each batch (mean 0, std 1)."""
    cliprange: float = 0.2
    """epsilon of the clipped surrogate."""
    cliprange_value: float = 0.2
    """How far the value may move from the rollout's value before its loss is clipped."""
    vf_coef: float = 0.1
    """Weight of the value loss in the total loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (0: none, as in the reproductions)."""
    ptx_coef: float = 0.0
    """PPO-ptx (InstructGPT eq. 2): gamma, the weight of the pre-training log-likelihood in the loss (0: plain PPO)."""
    ptx_batch_size: int = 8
    """PPO-ptx: pre-training documents (the review world's corpus) per minibatch step."""
    value_model: str = "shared"
    """"shared": a value head on the policy's last hidden state (one forward gives logits and
    values); "separate": a value model of its own, initialised from the reward model."""
    bf16: bool = True
    """On CUDA, run forwards under bf16 autocast (log-probs and losses stay in float32)."""
    compile: str = "off"
    """"generate": static KV cache and a torch.compiled decode step; "all": the update's forward too. For GPUs."""
    checkpoint_every: int = 5
    """Iterations between checkpoints when the run has an output folder (0: only at the end)."""
    seed: int = 0
    """Seeds prompt order, sampling, the value head and the minibatch order."""
    device: str | None = None
    """"cpu", "cuda", or None for get_device()."""

    def __post_init__(self):
        validate_config(self, {
            "model": "name", "reward_model": "name", "iterations": ">=1", "batch_size": ">=1",
            "mini_batch_size": ">=1", "ppo_epochs": ">=1", "lr": ">0", "max_grad_norm": ">0",
            "max_new_tokens": ">=1", "temperature": ">0", "score_clip": ">0", "kl_coef": ">=0",
            "kl_estimator": KL_ESTIMATORS, "target_kl": ">0", "horizon": ">=1", "gamma": "[0,1]", "lam": "[0,1]",
            "cliprange": ">0", "cliprange_value": ">0", "vf_coef": ">=0", "ent_coef": ">=0", "ptx_coef": ">=0",
            "ptx_batch_size": ">=1",
            "value_model": ("shared", "separate"), "compile": COMPILE_MODES, "checkpoint_every": ">=0",
            "seed": ">=0"})
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(f"PPOConfig.batch_size ({self.batch_size}) must be a multiple of mini_batch_size "
                              f"({self.mini_batch_size})")

    @property
    def passes(self) -> int:
        """Passes over each batch, the name every RL config answers to (`rlhf_lab.rl.trainer`)."""
        return self.ppo_epochs

    @classmethod
    def tiny(cls) -> "PPOConfig":
        """The embedded model on 2 CPU cores, as notebook 05 runs it: 20 iterations of 32 episodes,
        about 1 s each (the defaults, 64 episodes, are what benchmarks/ppo.py times). The budget is
        the profile's 48 tokens, within which the SFT model finishes its answers: at 24 about a quarter
        of them end unfinished and score `unfinished_score`, which rewards brevity for its own sake and
        lowers the SFT baseline (`python -m benchmarks.ppo_budget` compares the two)."""
        return cls(batch_size=32, mini_batch_size=16, iterations=20, max_new_tokens=48)

    @classmethod
    def gpu(cls) -> "PPOConfig":
        """GPT-2 (124M) on one GPU, with a GPT-2 reward model trained in notebook 03: lr 1.41e-5 (Ziegler et
        al. 2019; TRL's GPT-2 examples), the other coefficients Huang et al. 2024's (not yet tuned on a GPU)."""
        return cls(model="gpt2", reward_model="runs/reward_model", iterations=100, batch_size=128,
                   mini_batch_size=32, lr=1.41e-5, max_new_tokens=48, group_by_length=True)
