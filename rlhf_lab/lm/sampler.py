"""The decode loop behind `rlhf_lab.lm.generation.sample`: ancestral sampling that keeps only what RL needs.

RL needs each sampled token and its log-prob log softmax(logits_t / T)[y_t], nothing else. The loop
here keeps exactly those two numbers per row and step, never the (B, T, V) logits of every step
that transformers' ``generate(output_logits=True)`` stacks (512 x 48 x 50,257 floats, about 5 GB,
for GPT-2 at batch 512), and it stops computing a row once the row has emitted EOS:

* **eager** (the default): a dynamic KV cache, the unembedding on the last position only, and when a quarter of the rows still computed have
  finished, the cache and the batch are cut down to the live rows (``Cache.batch_select_indices``);
  the loop ends when every row has finished.
* **static** (``static=True``, with ``compile=True`` on a GPU): one preallocated cache of
  prompt + budget columns and a decode step whose shapes never change, so that ``torch.compile``
  can capture it in a CUDA graph (one decode step of a 124M model is mostly kernel launches). Rows
  that finished keep being computed (shapes must stay static); the loop still ends when all have.

Sampling is the inverse of the CDF, in float64: one uniform number u per row, the token is the
first whose cumulative probability exceeds u. That is the categorical distribution softmax(logits / T)
exactly (float64 sums of 50,257 float32 probabilities are off by about 1e-12), without
``torch.multinomial``'s exponential draw per vocabulary entry, which on a CPU costs several times
more a step for GPT-2's vocabulary (`python -m benchmarks.sampler` prints both, and docs/benchmarks.md). Every step draws u for
every row of the batch, finished or not, so a row's tokens depend only on the seed and on the row,
not on when the other rows finish: the eager and the static loop draw the same tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import StaticCache

COMPACT_BELOW = 0.75
"""The eager loop drops finished rows once the live ones are fewer than this share of the rows computed."""


@dataclass
class Decoded:
    """What the loop returns: (B, T) tokens (PAD after a row's EOS) and their log-probs (0 there)."""

    tokens: torch.Tensor
    logprobs: torch.Tensor


def sample_from_logits(logits: torch.Tensor, temperature: float, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row from softmax(logits / T) by the inverse CDF of the uniform ``u`` (b,) in [0, 1).

    Returns (tokens (b,), their log-probs (b,) in float32). A token of probability 0 (a logit of
    -inf, such as a suppressed PAD) is never drawn.
    """
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    cdf = logp.double().exp().cumsum(-1)
    total = cdf[:, -1:]
    target = torch.minimum(u.double()[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    tokens = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _positions(prompt_mask: torch.Tensor) -> torch.Tensor:
    return (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)


def decode(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int, temperature: float,
           eos_id: int, pad_id: int, use_cache: bool = True, static: bool = False, step_fn=None) -> Decoded:
    """Sample up to ``max_new_tokens`` after left-padded prompts (B, P). ``static`` uses a preallocated
    cache and fixed shapes; ``step_fn`` replaces ``model`` for its decode steps (a compiled forward).
    ``use_cache=False`` re-reads the whole prefix at every step (what the cache saves, benchmarks/ppo.py).

    The loop runs in inference mode (no autograd bookkeeping on its many small operations); the
    tensors it returns are copies made outside it, so that a training step may use them."""
    with torch.inference_mode():
        out = _decode(model, prompt_ids, prompt_mask, max_new_tokens, temperature, eos_id, pad_id, use_cache,
                      static, step_fn)
    return Decoded(out.tokens.clone(), out.logprobs.clone())


def _decode(model, prompt_ids, prompt_mask, max_new_tokens, temperature, eos_id, pad_id, use_cache, static,
            step_fn) -> Decoded:
    batch, width = prompt_ids.shape
    device = prompt_ids.device
    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device)
    if static:
        return _decode_static(model, step_fn or model, prompt_ids, prompt_mask, tokens, logprobs, temperature, eos_id)
    rows = torch.arange(batch, device=device)          # the original row of each row still computed
    live = torch.ones(batch, dtype=torch.bool, device=device)
    ids, mask, cache = prompt_ids, prompt_mask, None
    positions = _positions(prompt_mask)
    feed = ids
    body, head = model.base_model, model.get_output_embeddings()   # the head on the last position only
    for t in range(max_new_tokens):
        out = body(input_ids=feed, attention_mask=mask, position_ids=positions[:, -feed.shape[1]:],
                   past_key_values=cache, use_cache=use_cache)
        cache = out.past_key_values if use_cache else None
        u = torch.rand(batch, device=device)[rows]
        token, logp = sample_from_logits(head(out.last_hidden_state[:, -1]), temperature, u)
        token = torch.where(live, token, pad_id)
        tokens[rows, t], logprobs[rows, t] = token, torch.where(live, logp, 0.0)
        live = live & (token != eos_id)
        if t + 1 == max_new_tokens or not bool(live.any()):
            break
        if live.sum() < COMPACT_BELOW * len(rows):
            keep = live.nonzero().squeeze(-1)
            rows, live, token, mask, positions = rows[keep], live[keep], token[keep], mask[keep], positions[keep]
            ids = ids[keep]
            if cache is not None:
                cache.batch_select_indices(keep)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        ids = torch.cat([ids, token[:, None]], dim=1)
        feed = token[:, None] if use_cache else ids
    return Decoded(tokens, logprobs)


def _static_cache(model, batch: int, length: int, device) -> StaticCache:
    """A static KV cache for (batch, length), made once per shape and model and emptied for each call:
    a CUDA graph replays on the same cache tensors, so a fresh cache per call would be captured anew."""
    caches = model.__dict__.setdefault("_rlhf_lab_static_caches", {})
    key = (batch, length, str(device), torch.is_autocast_enabled(torch.device(device).type))
    if key in caches:
        caches[key].reset()
    else:
        caches[key] = StaticCache(config=model.config, max_cache_len=length)
    return caches[key]


def _decode_static(model, step_fn, prompt_ids, prompt_mask, tokens, logprobs, temperature, eos_id) -> Decoded:
    """The static-shape loop: a cache and a mask of P + T columns allocated once; every decode step
    feeds (B, 1) tokens at one cache position, the same shapes each time."""
    batch, width = prompt_ids.shape
    steps, device = tokens.shape[1], prompt_ids.device
    cache = _static_cache(model, batch, width + steps, device)
    mask = torch.zeros((batch, width + steps), dtype=prompt_mask.dtype, device=device)
    mask[:, :width] = prompt_mask
    positions = _positions(prompt_mask)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    logits, position = out.logits[:, -1], positions[:, -1:]
    live = torch.ones(batch, dtype=torch.bool, device=device)
    for t in range(steps):
        token, logp = sample_from_logits(logits, temperature, torch.rand(batch, device=device))
        token = torch.where(live, token, tokens[:, t])     # tokens is PAD-filled
        tokens[:, t], logprobs[:, t] = token, torch.where(live, logp, 0.0)
        live = live & (token != eos_id)
        if t + 1 == steps or not bool(live.any()):
            break
        mask[:, width + t] = 1
        position = position + 1
        logits = step_fn(input_ids=token[:, None], attention_mask=mask, position_ids=position, past_key_values=cache,
                         use_cache=True).logits[:, -1]
    return Decoded(tokens, logprobs)
