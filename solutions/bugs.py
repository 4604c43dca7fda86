"""Notebook 05's find-the-bug exercises: the fixes, with what each bug was."""
import torch


def logprobs(logits, tokens, temperature):
    """Bug 1: the samples came from softmax(logits / T); score them under that distribution."""
    return torch.log_softmax(logits / temperature, -1).gather(-1, tokens[:, None])[:, 0]


def topk_logprobs(logits, tokens, top_k):
    """Bug 2: the samples came from the renormalised top-k; score them under it."""
    kth = logits.topk(top_k, -1).values[:, -1:]
    masked = logits.masked_fill(logits < kth, float("-inf"))
    return torch.log_softmax(masked, -1).gather(-1, tokens[:, None])[:, 0]


def response_mask(tokens, eos_id, pad_id):
    """Bug 3: with PAD == EOS the id cannot say which is which: keep every token up to and including the
    first EOS (and, if PAD differs, drop PAD)."""
    is_eos = (tokens == eos_id).long()
    keep = (is_eos.cumsum(1) - is_eos) == 0
    return keep if eos_id == pad_id else keep & (tokens != pad_id)


def scores(s, data_mean, data_std):
    """Bug 4: normalise the scores with the reward model's statistics on its data (InstructGPT centres them)."""
    return (s - data_mean) / data_std


def loss_mean(token_losses, mask):
    """Bug 5: weigh every token of the batch alike: the batch's token mean."""
    return (token_losses * mask).sum() / mask.sum()


SOLUTIONS = {"bug.1": lambda: logprobs, "bug.2": lambda: topk_logprobs, "bug.3": lambda: response_mask,
             "bug.4": lambda: scores, "bug.5": lambda: loss_mean}
WRONG = {
    "bug.1": [("the log-probs divided by T", lambda: lambda z, y, t: torch.log_softmax(z, -1).gather(-1, y[:, None])[:, 0] / t),
              ("the logits multiplied by T", lambda: lambda z, y, t: torch.log_softmax(z * t, -1).gather(-1, y[:, None])[:, 0])],
    "bug.2": [("the full softmax (the bug itself)", lambda: lambda z, y, k: torch.log_softmax(z, -1).gather(-1, y[:, None])[:, 0]),
              ("the logits divided by k", lambda: lambda z, y, k: torch.log_softmax(z / k, -1).gather(-1, y[:, None])[:, 0])],
    "bug.3": [("everything before the first PAD", lambda: lambda t, eos, pad: (t == pad).long().cumsum(1) == 0),
              ("every token that is not PAD (the bug)", lambda: lambda t, eos, pad: t != pad)],
    "bug.4": [("scaled, not centred", lambda: lambda s, m, sd: s / sd),
              ("multiplied by the std", lambda: lambda s, m, sd: (s - m) * sd)],
    "bug.5": [("lengths clamped at 1, still per response", lambda: lambda x, m: ((x * m).sum(1) / m.sum(1).clamp(min=1)).mean()),
              ("tokens past EOS counted", lambda: lambda x, m: x.mean())],
}
