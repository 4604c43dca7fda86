"""Sampling completions and scoring them: log pi(y | x) as a sum of token log-probs.

An autoregressive policy factorises over tokens (the log-probability of a sequence is the sum of
the log-probabilities of its tokens, each given the ones before it):

    log pi(y | x) = sum_t log softmax(logits_t / T)[y_t]

with T the sampling temperature. The same T must divide the logits when the log-probs
are computed as when the tokens were sampled, or the KL to the reference in PPO grows
faster than it should (Huang et al., "The N Implementation Details of RLHF with PPO").

Padding follows the course's rule (Huang et al. 2024): PAD is a token of its own, prompts are *left*-padded so that
every completion starts at the same column, and position ids come from the attention
mask (position 0 is the first real token, whatever padding precedes it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlhf_lab.config import bf16_autocast, fork_rng, set_seed
from rlhf_lab.lm.models import context_length
from rlhf_lab.lm.sampler import decode


@dataclass
class Samples:
    """A batch of sampled completions. B = prompts x samples per prompt, P = prompt width, T = new tokens."""

    prompts: list[str]
    """The prompt of each row (repeated for several samples per prompt), length B."""
    completions: list[str]
    """Decoded completion text without special tokens, length B."""
    prompt_ids: torch.Tensor
    """(B, P) left-padded prompt tokens."""
    prompt_mask: torch.Tensor
    """(B, P) 1 on real prompt tokens, 0 on left padding."""
    completion_ids: torch.Tensor
    """(B, T) sampled tokens; PAD after a row's EOS."""
    completion_mask: torch.Tensor
    """(B, T) 1 on generated tokens up to and including EOS, 0 after."""
    logprobs: torch.Tensor
    """(B, T) log pi(y_t | x, y_<t) at the sampling temperature; 0 where completion_mask is 0."""
    finished: torch.Tensor
    """(B,) True where the completion ended with EOS within the budget."""

    @property
    def input_ids(self) -> torch.Tensor:
        """(B, P + T) prompt and completion side by side."""
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        """(B, P + T) mask of prompt and completion."""
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only: left padding does not shift them. (B, L) -> (B, L)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_prompts(tokenizer, prompts: list[str], device, max_length: int | None = None, multiple_of: int = 1):
    """Tokenise and left-pad prompts; a prompt longer than ``max_length`` is an error naming it.
    ``multiple_of`` rounds the width up (fewer distinct shapes for a compiled model).

    Returns ``(input_ids, attention_mask)``, each (B, P).
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string; wrap it: [prompt]")
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    for i, row in enumerate(rows):
        if len(row) == 0:
            raise ValueError(f"prompt {i} is empty after tokenisation: {prompts[i]!r}")
        if max_length is not None and len(row) > max_length:
            raise ValueError(
                f"prompt {i} is {len(row)} tokens long but the model allows at most {max_length} prompt tokens "
                f"(context minus the new-token budget): {prompts[i][:60]!r}... Shorten it or lower max_new_tokens."
            )
    width = max(len(r) for r in rows)
    width = -(-width // multiple_of) * multiple_of
    if max_length is not None:
        width = min(width, max(max_length, max(len(r) for r in rows)))
    return left_pad(rows, tokenizer.pad_token_id, device, width)


def left_pad(rows: list[list[int]], pad_id: int, device, width: int | None = None):
    """Token rows as (input_ids, attention_mask), each (B, width), padded on the left."""
    width = width or max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def token_logprobs(model, input_ids, attention_mask, start: int, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs of ``input_ids[:, start:]`` from one forward pass.

    input_ids, attention_mask: (B, L), prompt left-padded in columns < start.
    Returns (B, L - start): log softmax(logits / T) of each token given everything before it.
    Positions where attention_mask is 0 are set to 0.
    """
    logits = model.get_output_embeddings()(response_states(model, input_ids, attention_mask, start))
    logp = logprobs_from_logits(logits, input_ids[:, start:], temperature)
    return logp * attention_mask[:, start:]


def response_states(model, input_ids, attention_mask, start: int) -> torch.Tensor:
    """The last hidden states (B, L - start, d) that predict ``input_ids[:, start:]``.

    Column t predicts token t + 1, so these are columns start - 1 ... L - 2. Only they go
    through the unembedding: the prompt's logits (B, P, V) are never needed.
    """
    h = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                         position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
    return h[:, start - 1:-1]


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / T)[token] in float32: logits (B, T, V), tokens (B, T) -> (B, T)."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return torch.gather(logp, 2, tokens[..., None]).squeeze(-1)


def sequence_logprob(token_logps: torch.Tensor, mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """log pi(y | x) from token log-probs (B, T) and mask (B, T): "sum" (the exact log-probability
    of the sequence) or "mean" (per-token average, length-normalised). Returns (B,)."""
    total = (token_logps * mask).sum(-1)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / mask.sum(-1).clamp(min=1)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def _compiled_step(model, device):
    """The model's decode step under ``torch.compile`` (CUDA graphs on a GPU), compiled once per model."""
    step = getattr(model, "_rlhf_lab_compiled_step", None)
    if step is None:
        gpu = torch.device(device).type == "cuda"
        step = torch.compile(model.forward, mode="reduce-overhead" if gpu else "default", dynamic=False)
        model._rlhf_lab_compiled_step = step
    return step


def sample(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, temperature: float = 1.0,
           num_samples: int = 1, device=None, use_cache: bool = True, compile: bool = False,
           bf16: bool = True) -> Samples:
    """Sample ``num_samples`` completions per prompt in one batched call.

    Pure ancestral sampling at temperature T (no top-k or top-p: both make the
    sampling distribution differ from pi, and the KL estimate can then go negative).
    The loop is `rlhf_lab.lm.sampler.decode`: a KV cache, each step's log softmax(logits / T)
    read for the sampled token only, and finished rows dropped from the computation. Seed with
    ``set_seed`` before calling for reproducible samples. ``use_cache=False`` recomputes the whole
    prefix at every step (only for measuring what the cache saves, in benchmarks/ppo.py).

    ``compile=True`` decodes with a static KV cache (preallocated, fixed shapes) and a
    ``torch.compile``d decode step (CUDA graphs on a GPU, where one decode step of a small
    model is mostly kernel-launch time). Prompts are left-padded to a multiple of 32 tokens so
    that few shapes are compiled. The first call compiles (tens of seconds); on a CPU it does
    not pay off. ``bf16``: the forward passes under bf16 autocast on a GPU that supports it
    (`rlhf_lab.config.bf16_autocast`; float32 on a CPU and on older GPUs), log-probs in float32.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature}); sampling at T=0 is greedy decoding")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    device = device or next(model.parameters()).device
    context = context_length(model.config)
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device, max_length=context - max_new_tokens,
                                             multiple_of=32 if compile else 1)
    prompt_ids = prompt_ids.repeat_interleave(num_samples, dim=0)
    prompt_mask = prompt_mask.repeat_interleave(num_samples, dim=0)
    with bf16_autocast(device, bf16):
        out = decode(model, prompt_ids, prompt_mask, max_new_tokens, temperature, tokenizer.eos_token_id,
                     tokenizer.pad_token_id, use_cache=use_cache, static=compile,
                     step_fn=_compiled_step(model, device) if compile else None)
    completion_ids = out.tokens
    is_eos = completion_ids == tokenizer.eos_token_id
    # mask: tokens up to and including the first EOS (PAD afterwards)
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    completion_mask = (~after_eos).long()
    finished = is_eos.any(-1)
    texts = tokenizer.batch_decode(completion_ids * completion_mask + tokenizer.pad_token_id * (1 - completion_mask),
                                   skip_special_tokens=True)
    return Samples(
        prompts=[p for p in prompts for _ in range(num_samples)], completions=texts,
        prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=completion_ids,
        completion_mask=completion_mask, logprobs=out.logprobs * completion_mask, finished=finished,
    )


@torch.no_grad()
def sample_groups(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int = 48, temperature: float = 0.7,
                  seed: int = 0, batch_rows: int = 256) -> dict:
    """``n`` completions of each prompt text, in batches of about ``batch_rows`` rows, seeded by ``seed`` without
    touching the caller's random stream. Returns {"completions": P lists of n strings, "length": (P, n) tokens,
    "nll": (P, n) summed -log pi of each completion at ``temperature``} (on CPU)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    per_batch = max(1, batch_rows // n)
    completions, lengths, nll = [], [], []
    with fork_rng():
        set_seed(seed)
        for i in range(0, len(prompts), per_batch):
            chunk = prompts[i:i + per_batch]
            out = sample(model, tokenizer, chunk, max_new_tokens=max_new_tokens, temperature=temperature, num_samples=n)
            completions += [out.completions[j * n:(j + 1) * n] for j in range(len(chunk))]
            lengths.append(out.completion_mask.sum(-1).view(len(chunk), n).float().cpu())
            nll.append(-out.logprobs.sum(-1).view(len(chunk), n).float().cpu())
    return {"completions": completions, "length": torch.cat(lengths) if lengths else torch.zeros(0, n),
            "nll": torch.cat(nll) if nll else torch.zeros(0, n)}
