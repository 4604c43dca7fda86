"""Find the bug: five broken functions, one per failure mode of PPO for language models (Huang et al. 2024).

Each is a few lines that look right, run without an error, and quietly break training; `symptom(n)`
measures what broken function ``n`` does on a small example. Finding the cause is the exercise:
``check("bug.n", my_fix)`` compares a fix with a reference on inputs that expose the bug (the references
and checkers are in `rlhf_lab.exercises.bug_checks`, for instructors).
"""
from __future__ import annotations

import torch

from rlhf_lab.world.specs import films_named


# ---- the broken functions, as a student finds them ------------------------------------------

def broken_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probs of sampled ``tokens`` (N,) under ``logits`` (N, V) sampled at ``temperature``. BUG 1."""
    return torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]


def broken_policy_logprobs(logits: torch.Tensor, tokens: torch.Tensor, top_k: int) -> torch.Tensor:
    """Log-probs of ``tokens`` (N,) sampled from the top-k of ``logits`` (N, V). BUG 2."""
    return torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]


def broken_response_mask(tokens: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """(B, T) bool: the response tokens (up to and including EOS) of right-padded responses. BUG 3."""
    return tokens != pad_id


def broken_scores(scores: torch.Tensor, data_mean: float, data_std: float) -> torch.Tensor:
    """The reward-model scores PPO adds at the last token, given the model's mean and std on its data. BUG 4."""
    return scores


def broken_loss_mean(token_losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One loss from (B, T) token losses and their (B, T) response mask. BUG 5."""
    return ((token_losses * mask).sum(1) / mask.sum(1)).mean()


# ---- the symptoms ---------------------------------------------------------------------------

def _toy_policy(seed: int = 0, n: int = 4096, vocab: int = 50):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(vocab, generator=g).mul(2).expand(n, vocab)
    return g, logits


def symptom(n: int) -> str:
    """What bug ``n``'s broken function does, measured on a small example (one line)."""
    g, logits = _toy_policy()
    if n == 1:
        t = 0.7
        tokens = torch.multinomial(torch.softmax(logits / t, -1), 1, generator=g)[:, 0]
        sampler = torch.log_softmax(logits / t, -1).gather(-1, tokens[:, None])[:, 0]   # what the sampler drew with
        ratio = torch.exp(broken_logprobs(logits, tokens, t) - sampler)
        return (f"step 0, policy = sampler: the ratio should be 1 for every token; with the broken log-probs it "
                f"ranges over [{ratio.min():.2f}, {ratio.max():.2f}] (mean {ratio.mean():.2f})")
    if n == 2:
        ref = logits + 0.5 * torch.randn(logits.shape[1], generator=g)
        tokens = torch.multinomial(torch.softmax(_mask_topk(logits, 5), -1), 1, generator=g)[:, 0]
        ref_lp = torch.log_softmax(ref, -1).gather(-1, tokens[:, None])[:, 0]
        wrong = (broken_policy_logprobs(logits, tokens, 5) - ref_lp).mean()
        return (f"top-5 sampling, {len(tokens)} tokens: the k1 KL estimate mean(log pi - log pi_ref) with these "
                f"log-probs is {wrong:+.3f} nats")
    if n == 3:
        eos = pad = 0
        tokens = torch.tensor([[5, 7, 9, eos, pad, pad], [4, 4, eos, pad, pad, pad], [8, 3, 2, 6, 1, 2]])
        mask = broken_response_mask(tokens, eos, pad).long()
        return (f"responses (token ids; the tokenizer's EOS is id {eos}) {tokens.tolist()} get the mask "
                f"{mask.tolist()}, and a policy trained with it never learns to end its answers")
    if n == 4:
        scores = 4.0 + 3.0 * torch.randn(256, generator=g)      # a reward model that was never centred
        adv = broken_scores(scores, 4.0, 3.0) - 0.0               # the value head starts at 0
        return (f"a reward model whose scores average 4.0 on its data: of the first advantages (score - V, "
                f"V = 0 at the start), {float((adv > 0).float().mean()):.0%} are positive")
    if n == 5:
        losses = torch.ones(3, 24, requires_grad=True)
        mask = torch.zeros(3, 24, dtype=torch.bool)
        mask[0, :24], mask[1, :1] = True, True                   # a full answer, a 1-token one, an empty one
        both = broken_loss_mean(losses, mask)
        (grad,) = torch.autograd.grad(broken_loss_mean(losses[:2], mask[:2]), losses)
        return (f"a 24-token, a 1-token and an empty response, every token's loss 1: the loss is "
                f"{float(both.detach()):.3f}; without the empty one, the gradient on the 1-token response's token is "
                f"{float(grad[1, 0] / grad[0, 0]):.0f} times that on each token of the 24-token response")
    raise ValueError(f"bugs are numbered 1 to 5, got {n}")


def _mask_topk(logits, k):
    kth = logits.topk(k, -1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))




# ---- notebook 09: a verifier and an estimator -------------------------------------------------

def broken_title_check(title: str, text: str) -> bool:
    """Whether every film ``text`` names is the film ``title`` asked for (naming none passes). BUG 09.4."""
    return all(t in title or title in t for t in films_named(text))


def broken_pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k of a prompt from n samples of which c passed. BUG 09.5."""
    return 1 - (1 - c / n) ** k


# ---- notebook 10: a conservative reward -------------------------------------------------------

def broken_mean_minus_std(scores: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """The ensemble's mean minus ``lam`` times its spread, one reward per completion of ``scores`` (N members,
    B completions). BUG 10.4."""
    return scores.mean(0) - lam * scores.std()
