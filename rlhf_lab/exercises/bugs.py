"""Find the bug: one broken function per failure mode of PPO for language models (Huang et al. 2024).

Each bug is a few lines that look right, run without an error, and quietly break training:

1. **log-probs without the sampling temperature**: samples drawn at T = 0.7 scored with log_softmax(z)
   instead of log_softmax(z / T), so the step-0 ratio is not 1 and the KL grows faster than it should;
2. **negative KL from a sampling trick**: samples drawn with top-k but scored under the full softmax,
   so the k1 estimate E[log pi - log pi_ref] is taken over the wrong distribution and can go negative;
3. **EOS conflated with PAD**: a response mask ``tokens != pad_id`` with pad_id == eos_id drops the
   EOS itself, so the token that ends an answer is never scored or trained (the policy never learns to stop);
4. **skipped reward normalisation**: raw reward-model scores with a mean far from 0 against a value
   head that starts at 0, so almost every first advantage has the same sign;
5. **very short generations blowing up the loss**: a per-response mean of token losses divides by the
   response length: an empty response gives NaN, and a 1-token response weighs 24 times a 24-token one.

`symptom(n)` prints what the broken function does; ``check("bug.n", my_fix)`` compares a student's
fix with the reference on inputs that expose the bug (`tests/exercises/test_bugs.py` checks that the broken
function fails and a right fix passes).
"""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.registry import exercise

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


# ---- the references -------------------------------------------------------------------------

def _logprobs(logits, tokens, temperature):
    return torch.log_softmax(logits / temperature, -1).gather(-1, tokens[:, None])[:, 0]


def _topk_logprobs(logits, tokens, top_k):
    return torch.log_softmax(_mask_topk(logits, top_k), -1).gather(-1, tokens[:, None])[:, 0]


def _response_mask(tokens, eos_id, pad_id):
    is_eos = tokens == eos_id
    before_eos = (is_eos.long().cumsum(1) - is_eos.long()) == 0     # every position up to the first EOS
    if eos_id == pad_id:
        return before_eos
    return before_eos & (tokens != pad_id)


def _scores(scores, data_mean, data_std):
    return (scores - data_mean) / data_std


def _loss_mean(token_losses, mask):
    return (token_losses * mask).sum() / mask.sum().clamp(min=1)


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
        ratio = torch.exp(broken_logprobs(logits, tokens, t) - _logprobs(logits, tokens, t))
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
        return (f"EOS and PAD are both id {eos}; responses {tokens.tolist()} get the mask {mask.tolist()}, and "
                "a policy trained with it never learns to end its answers")
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


# ---- the checkers ---------------------------------------------------------------------------

def _compare(answer, reference, cases) -> tuple[bool, str]:
    for args in cases:
        got, want = answer(*args), reference(*args)
        got = torch.as_tensor(got)
        if got.shape != want.shape or not torch.allclose(got.to(want.dtype), want, atol=1e-5, equal_nan=False):
            shown = ", ".join(f"{tuple(a.shape)}" if torch.is_tensor(a) else repr(a) for a in args)
            return False, f"on inputs ({shown}) expected {want.flatten()[:6].tolist()}, got {got.flatten()[:6].tolist()}"
    return True, ""


def _logit_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 30, generator=g) * s, torch.randint(0, 30, (16,), generator=g)) for s in (1.0, 3.0)], g


@exercise("bug.1")
def _temperature(answer):
    cases, _ = _logit_cases(1)
    ok, msg = _compare(answer, _logprobs, [(z, y, t) for z, y in cases for t in (0.7, 1.0, 1.3)])
    return ok, msg or "log-probs of the distribution that was sampled: log_softmax(logits / T)"


@exercise("bug.2")
def _topk(answer):
    cases, g = _logit_cases(2)
    full = []
    for z, _ in cases:
        for k in (1, 5, 30):   # tokens drawn from the top-k, as generation would
            y = torch.multinomial(torch.softmax(_mask_topk(z, k), -1), 1, generator=g)[:, 0]
            full.append((z, y, k))
    ok, msg = _compare(answer, _topk_logprobs, full)
    return ok, msg or "score samples under the distribution they came from (the renormalised top-k)"


@exercise("bug.3")
def _eos_pad(answer):
    tokens = torch.tensor([[5, 7, 9, 0, 0, 0], [4, 4, 0, 0, 0, 0], [8, 3, 2, 6, 1, 2], [0, 0, 0, 0, 0, 0]])
    distinct = torch.tensor([[5, 7, 9, 2, 1, 1], [4, 2, 1, 1, 1, 1], [8, 3, 4, 6, 5, 3]])
    ok, msg = _compare(lambda *a: torch.as_tensor(answer(*a)).bool(), _response_mask,
                       [(tokens, 0, 0), (distinct, 2, 1)])
    return ok, msg or "every token up to and including the first EOS; PAD == EOS cannot tell them apart by id"


@exercise("bug.4")
def _normalise(answer):
    """Centred scores (InstructGPT's own fix: the reward model's bias set so that its scores have mean 0),
    or centred and scaled by the standard deviation: both remove the common sign of the first advantages."""
    g = torch.Generator().manual_seed(4)
    cases = [(m + s * torch.randn(64, generator=g), m, s) for m, s in ((4.0, 3.0), (-2.0, 0.5), (0.0, 1.0))]
    centred = lambda x, m, s: x - m                                                  # noqa: E731
    for reference in (_scores, centred):
        ok, _ = _compare(answer, reference, cases)
        if ok:
            return True, "the scores are centred on the reward model's mean: the first advantages take both signs"
    return False, ("on a reward model whose scores average 4.0 with a spread of 3.0, the first advantages "
                   "(score - V, V = 0 at the start) should be positive about as often as negative")


@exercise("bug.5")
def _short(answer):
    """Any loss that weighs every response token of the batch alike and stays finite: the batch's token mean,
    or a constant normaliser (Dr. GRPO: the sum over tokens divided by a number that does not depend on the
    responses' lengths). Probed token by token: one token's loss at 1, every other at 0."""
    lengths = torch.tensor([24, 1, 0, 7])
    mask = torch.arange(24)[None, :] < lengths[:, None]
    weights = torch.zeros(mask.shape, dtype=torch.float64)
    for i, j in mask.nonzero().tolist() + [(2, 0), (1, 5)]:              # every response token, and two outside
        losses = torch.zeros(mask.shape)
        losses[i, j] = 1.0
        weights[i, j] = float(torch.as_tensor(answer(losses, mask)))
    if not torch.isfinite(weights).all() or not math.isfinite(float(torch.as_tensor(answer(torch.ones(4, 24),
                                                                                               torch.zeros_like(mask))))):
        return False, "the loss is not finite on this batch (one response is empty)"
    inside = weights[mask]
    if weights[~mask].abs().max() > 1e-7:
        return False, "tokens outside the responses (after EOS, or of the empty response) change the loss"
    if inside.min() <= 0 or (inside.max() - inside.min()) > 1e-6 * inside.max():
        short, long = weights[1, 0].item(), weights[0, 0].item()
        return False, (f"a token of the 1-token response weighs {short:.4f} in the loss, a token of the 24-token "
                       f"one {long:.4f}: every token of the batch should weigh the same")
    losses = torch.randn(4, 24, generator=torch.Generator().manual_seed(5))
    if not math.isclose(float(torch.as_tensor(answer(losses, mask))), float((losses * weights).sum()), rel_tol=1e-4,
                        abs_tol=1e-6):
        return False, "the loss should be a weighted sum of the token losses (linear in them)"
    return True, "every token of the batch weighs the same, and an empty response cannot make it NaN"
