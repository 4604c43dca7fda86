"""Critic-free RL from K samples per prompt: RLOO, GRPO and Dr. GRPO, as pure functions on tensors.

PPO (`rlhf_lab.rl.ppo`) learns a value function to tell a good response from a lucky one. With K
responses to the same prompt x the other K - 1 responses already say what is typical for x, so the
critic can go (TRL's GRPOTrainer and RLOOTrainer work this way). For a (P, K) matrix of rewards,
P prompts and K = ``num_generations`` completions each:

    RLOO (Ahmadian et al. 2024, "Back to Basics", eq. 6; Kool et al. 2019):
        A_i = r_i - 1/(K-1) sum_{j != i} r_j = K/(K-1) (r_i - mean_j r_j)                     (1)
    an unbiased baseline: r_j for j != i does not depend on y_i, so E[grad log pi(y_i) b_i] = 0
    (notebook 04's leave-one-out baseline, now per prompt group).

    GRPO (Shao et al. 2024, DeepSeekMath, eq. 3 and §4.1.2):
        A_i = (r_i - mean_j r_j) / (std_j r_j + eps)                                          (2)
    the std rescales each group: a prompt whose K answers barely differ (too easy or too hard)
    gets advantages as large as one whose answers differ a lot.

    Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like training", §3.1):
        A_i = r_i - mean_j r_j                                                                (3)
    no std (the difficulty bias goes), and the loss is summed over tokens and divided by a
    constant, not by each response's length (the length bias goes, see `aggregate`).

Every token t of response i gets the advantage A_i. The loss is PPO's clipped surrogate per token,
rho_t = pi_theta(y_t) / pi_old(y_t) (Schulman et al. 2017, eq. 7), optionally plus beta * KL in the
loss (GRPO, with the k3 estimator, Shao et al. eq. 4) or with the KL in the reward before the
advantages (PPO's and RLOO's way, `rlhf_lab.rl.ppo.per_token_rewards`):

    l_t = -min(rho_t A_i, clip(rho_t, 1 - epsilon, 1 + epsilon) A_i) [+ beta k_t]             (4)

and `aggregate` averages l_t the way each paper does: "grpo" (mean over each response's tokens,
then over responses; GRPO eq. 3), "dapo" (mean over all tokens of the batch; Yu et al. 2025, DAPO
eq. 8; TRL's "dapo"), "dr_grpo" (sum over all tokens / (responses x max_completion_length);
Liu et al. eq. 6). The KL estimators k1, k2, k3 (Schulman 2020, "Approximating KL divergence") are
`kl_estimate` of `rlhf_lab.rl.ppo`. Names follow TRL's GRPOConfig: ``num_generations``, ``beta``,
``epsilon``, ``loss_type``, ``scale_rewards``.
"""
from __future__ import annotations

import math

import torch

from rlhf_lab.config import fork_rng, set_seed
from rlhf_lab.lm.generation import position_ids_from_mask, sample
from rlhf_lab.rl.ppo import kl_estimate, masked_mean

ADVANTAGES = ("rloo", "grpo", "dr_grpo")
LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
STD_EPS = 1e-4   # TRL's GRPOTrainer adds 1e-4 to the group std


def group_advantages(rewards: torch.Tensor, method: str = "rloo", valid: torch.Tensor | None = None,
                     eps: float = STD_EPS) -> torch.Tensor:
    """Eqs. (1)-(3): advantages of a (P, K) reward matrix, one row per prompt group. -> (P, K).

    ``valid`` (P, K) bool marks the completions that count (default: all); the others get
    advantage 0 and are left out of their group's mean and std, so a group of k valid
    completions behaves like a group of size k. A group with fewer than 2 valid completions has
    no baseline and gets 0 everywhere, as does a group whose rewards are all equal (the std is 0
    there, and the numerator is exactly 0, so no NaN). The std of GRPO is the sample std
    (divisor k - 1), as in TRL.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (prompts, K), got shape {tuple(rewards.shape)}")
    if method not in ADVANTAGES:
        raise ValueError(f"advantage method must be one of {ADVANTAGES}, got {method!r}")
    r = rewards.float()
    v = torch.ones_like(r, dtype=torch.bool) if valid is None else valid.bool()
    if v.shape != r.shape:
        raise ValueError(f"valid has shape {tuple(v.shape)}, rewards {tuple(r.shape)}")
    if not torch.isfinite(r[v]).all():
        raise FloatingPointError("a reward is NaN or infinite; the advantages would be too")
    vf = v.float()
    k = vf.sum(-1, keepdim=True)
    mean = (r * vf).sum(-1, keepdim=True) / k.clamp(min=1)
    centred = (r - mean) * vf
    if method == "rloo":
        adv = centred * k / (k - 1).clamp(min=1)
    elif method == "grpo":
        std = ((centred ** 2).sum(-1, keepdim=True) / (k - 1).clamp(min=1)).sqrt()
        adv = centred / (std + eps)
    else:
        adv = centred
    return torch.where(k >= 2, adv, torch.zeros_like(adv))


def clipped_token_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                       epsilon: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (4) without the KL: per-token -min(rho A, clip(rho) A) for (B, T) log-probs and (B,)
    advantages (one per response). Returns (loss (B, T), clipped (B, T) bool)."""
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1).to(ratio.dtype)
    unclipped, clipped = -adv * ratio, -adv * ratio.clamp(1 - epsilon, 1 + epsilon)
    return torch.maximum(unclipped, clipped), clipped > unclipped


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, loss_type: str = "grpo",
              max_completion_length: int | None = None) -> torch.Tensor:
    """Average a (B, T) per-token loss over the masked tokens the way ``loss_type`` says.

    "grpo": mean over each response's tokens, then mean over responses (a token of a short
      response weighs more: the length bias Dr. GRPO points out);
    "dapo": mean over all tokens of the batch (every token weighs the same);
    "dr_grpo": sum over all tokens / (B * max_completion_length), a constant (default T).
    Rows without tokens count as 0 in "grpo" and add nothing in the others.
    """
    mask = mask.to(token_loss.dtype)
    if loss_type == "grpo":
        per_row = (token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_row.mean()
    if loss_type == "dapo":
        return masked_mean(token_loss, mask)
    if loss_type == "dr_grpo":
        length = token_loss.shape[-1] if max_completion_length is None else max_completion_length
        return (token_loss * mask).sum() / (token_loss.shape[0] * length)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def group_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None,
               advantages: torch.Tensor, mask: torch.Tensor, epsilon: float = 0.2, beta: float = 0.0,
               kl_estimator: str = "k3", loss_type: str = "grpo",
               max_completion_length: int | None = None) -> tuple[torch.Tensor, dict]:
    """Eq. (4) aggregated: the clipped surrogate plus, with ``beta`` > 0, beta times the per-token
    KL estimate against the reference *in the loss* (GRPO's placement; pass beta = 0 when the KL
    is in the reward). Returns (loss, stats as 0-d tensors: clipfrac, approxkl, ratio, kl)."""
    token_loss, clipped = clipped_token_loss(logprobs, old_logprobs, advantages, epsilon)
    kl = None
    if ref_logprobs is not None:
        kl = kl_estimate(logprobs, ref_logprobs, kl_estimator)
        if beta:
            token_loss = token_loss + beta * kl
    loss = aggregate(token_loss, mask, loss_type, max_completion_length)
    with torch.no_grad():
        log_ratio = logprobs - old_logprobs
        stats = {"clipfrac": masked_mean(clipped.float(), mask), "approxkl": masked_mean(0.5 * log_ratio ** 2, mask),
                 "ratio": masked_mean(log_ratio.exp(), mask),
                 "kl": masked_mean(kl, mask) if kl is not None else torch.zeros((), device=mask.device)}
    return loss, stats


# ---- the KL estimators against the exact KL ---------------------------------------------------

@torch.no_grad()
def kl_estimator_study(policy, reference, tokenizer, prompts, max_new_tokens: int = 24, temperature: float = 0.7,
                       seed: int = 0) -> dict[str, torch.Tensor]:
    """Sample responses from ``policy`` and, at every response token, the exact KL of the two next-token
    distributions, sum_v pi(v) log(pi(v) / pi_ref(v)) at ``temperature``, beside the three estimates
    k1, k2, k3 of the sampled token (`ppo.kl_estimate`). Returns flat (tokens,) tensors "exact", "k1",
    "k2", "k3": the estimators' bias and variance are their difference from "exact" and their spread;
    "response" says which response each token is from (`estimator_bias`).
    Summed over a response, each estimates KL(pi || pi_ref) of whole responses."""
    device = next(policy.parameters()).device
    with fork_rng():
        set_seed(seed)
        s = sample(policy, tokenizer, [p.text if hasattr(p, "text") else p for p in prompts],
                   max_new_tokens=max_new_tokens, temperature=temperature, device=device)
    ids = torch.cat([s.prompt_ids, s.completion_ids], 1).to(device)
    attn = torch.cat([s.prompt_mask, s.completion_mask], 1).to(device)
    start, mask = s.prompt_ids.shape[1], s.completion_mask.bool().to(device)
    logp = {}
    for name, model in (("policy", policy), ("reference", reference)):
        logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)).logits
        logp[name] = torch.log_softmax(logits[:, start - 1:-1].float() / temperature, -1)
    exact = (logp["policy"].exp() * (logp["policy"] - logp["reference"])).sum(-1)
    tok = ids[:, start:].unsqueeze(-1)
    lp, lq = logp["policy"].gather(-1, tok).squeeze(-1), logp["reference"].gather(-1, tok).squeeze(-1)
    out = {"exact": exact[mask].cpu(), "response": torch.arange(ids.shape[0], device=device)[:, None].expand_as(mask)[mask].cpu()}
    for e in ("k1", "k2", "k3"):
        out[e] = kl_estimate(lp, lq, e)[mask].cpu()
    return out


def estimator_bias(study: dict[str, torch.Tensor], estimator: str) -> tuple[float, float]:
    """The mean error per token of ``estimator`` against the exact KL, and its standard error with the
    tokens of one response counted together (they are not independent): the responses' summed errors
    are the independent units, so se = sqrt(R / (R - 1) * sum_r (E_r - n_r m)^2) / N."""
    err, resp = (study[estimator] - study["exact"]).double(), study["response"]
    R = int(resp.max()) + 1
    totals = torch.zeros(R, dtype=torch.float64).index_add_(0, resp, err)
    counts = torch.zeros(R, dtype=torch.float64).index_add_(0, resp, torch.ones_like(err))
    keep, m = counts > 0, err.mean().item()
    totals, counts, n = totals[keep], counts[keep], len(err)
    r = len(totals)
    se = math.sqrt(r / max(r - 1, 1) * ((totals - counts * m) ** 2).sum().item()) / n
    return m, se
