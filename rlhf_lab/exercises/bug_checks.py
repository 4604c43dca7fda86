"""The references and checkers of notebook 05's find-the-bug exercises (`rlhf_lab.exercises.bugs`), for
instructors: what each bug is, and the fix `check("bug.n", ...)` compares a student's with.

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
"""
from __future__ import annotations

import math

import torch

from rlhf_lab.exercises.bugs import _mask_topk
from rlhf_lab.exercises.registry import exercise

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


# ---- the checkers ---------------------------------------------------------------------------

def _compare(answer, reference, cases) -> tuple[bool, str]:
    for args in cases:
        got, want = answer(*args), reference(*args)
        got = torch.as_tensor(got)
        if got.shape != want.shape or not torch.allclose(got.to(want.dtype), want, atol=1e-5, equal_nan=False):
            shown = ", ".join(f"{tuple(a.shape)}" if torch.is_tensor(a) else repr(a) for a in args)
            return False, f"on inputs ({shown}) you give {got.flatten()[:6].tolist()}"
    return True, ""


def _logit_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 30, generator=g) * s, torch.randint(0, 30, (16,), generator=g)) for s in (1.0, 3.0)], g


@exercise("bug.1")
def _temperature(answer):
    cases, _ = _logit_cases(1)
    ok, msg = _compare(answer, _logprobs, [(z, y, t) for z, y in cases for t in (0.7, 1.0, 1.3)])
    return ok, msg or "log-probs of the distribution that was sampled, at its temperature"


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
    batch_centred = lambda x, m, s: x - x.mean()                                   # noqa: E731
    batch_whitened = lambda x, m, s: (x - x.mean()) / x.std()                     # noqa: E731
    for reference in (_scores, centred, batch_centred, batch_whitened):
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
    if not torch.isfinite(weights).all():
        return False, "the loss is not finite on this batch (one of its responses is empty)"
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
