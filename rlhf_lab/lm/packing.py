"""Prefix-shared packing: a prompt and all its continuations in one row, the prompt forwarded once.

DPO scores two completions of one prompt, the reward model K of them. Forwarding each
(prompt, completion) as its own row computes the prompt's hidden states once per completion.
A packed row holds the prompt once, then the continuations one after another:

    [ x_1 .. x_P | y^1_1 .. y^1_T1 | y^2_1 .. y^2_T2 | pad ]

and an attention mask (R, 1, W, W) lets each continuation see the prompt and its own earlier
tokens, never another continuation. Position ids restart at P for every continuation, so
each token sees exactly the context it has in its own row: the hidden states, log-probs and
rewards are those of the unpacked rows (up to float rounding), with P + T1 + T2 positions
instead of 2P + T1 + T2, and less padding (one width per row, not max prompt + max completion).

Log-probs are computed only where they are needed: the unembedding runs on the hidden state
that predicts each real continuation token (the last prompt token predicts every
continuation's first token), not on every column.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PackedBatch:
    """Rows of (prompt, continuation, continuation, ...) and the indices to read them back."""

    input_ids: torch.Tensor
    """(R, W) tokens, right-padded."""
    position_ids: torch.Tensor
    """(R, W) 0..P-1 over the prompt, then P, P + 1, ... again for every continuation."""
    attention_mask: torch.Tensor
    """(R, 1, W, W) bool: query column i may attend to key column j."""
    block_row: torch.Tensor
    """(N,) the row of each continuation, in the order given."""
    last_col: torch.Tensor
    """(N,) the column of each continuation's last token (where a reward is read)."""
    lengths: torch.Tensor
    """(N,) tokens in each continuation."""
    token_block: torch.Tensor
    """(M,) for every continuation token, flat: which continuation it belongs to."""
    token_row: torch.Tensor
    """(M,) its row."""
    token_col: torch.Tensor
    """(M,) its column."""
    predictor_col: torch.Tensor
    """(M,) the column whose hidden state predicts it (the previous token of its own context)."""
    real_tokens: int = 0
    """Non-padding positions forwarded: every prompt once, every continuation."""
    sequence_tokens: int = 0
    """Tokens of the (prompt, continuation) sequences these rows stand for, prompts counted per
    continuation: what forwarding them one row each would process without padding."""

    @property
    def n_blocks(self) -> int:
        return len(self.block_row)

    def positions(self) -> int:
        """Columns forwarded, padding included (R x W): the work the transformer does."""
        return self.input_ids.numel()



def place(lengths: list[int], width: int) -> list[list[int]]:
    """First-fit decreasing: indices of groups per row, no row longer than ``width``."""
    rows, room = [], []
    for g in sorted(range(len(lengths)), key=lambda g: -lengths[g]):
        r = next((r for r, free in enumerate(room) if free >= lengths[g]), None)
        if r is None:
            rows.append([]), room.append(width)
            r = len(rows) - 1
        rows[r].append(g)
        room[r] -= lengths[g]
    return rows


def pack(groups: list[tuple[list[int], list[list[int]]]], pad_id: int, device="cpu",
         max_length: int | None = None, names: list[str] | None = None, fill: bool = True,
         min_width: int = 0) -> PackedBatch:
    """Pack ``(prompt_ids, [continuation_ids, ...])`` groups; continuations are numbered in order.

    Each group is a prompt and its continuations side by side. With ``fill`` several short groups
    share a row (first-fit decreasing, rows as wide as the longest group), each attending only to
    itself, so little of the batch is padding; without it every group has its own row.
    ``max_length`` is the model's context: a prompt plus any one continuation must fit in it
    (a row may be longer: positions restart per continuation and per group). ``names`` label the
    groups in error messages (default "group g"). ``min_width``: rows at least this wide, so that
    more groups share one when they are all about as long as the longest (one response per prompt).
    """
    sizes = []
    for g, (prompt, conts) in enumerate(groups):
        name = names[g] if names else f"group {g}"
        if len(prompt) == 0:
            raise ValueError(f"{name}: the prompt is empty; a continuation's first token needs a prompt token "
                             "before it")
        for k, cont in enumerate(conts):
            if len(cont) == 0:
                raise ValueError(f"{name}, continuation {k}: empty (a completion has at least its EOS)")
            if max_length is not None and len(prompt) + len(cont) > max_length:
                raise ValueError(f"{name}, continuation {k}: prompt + completion is {len(prompt) + len(cont)} tokens, "
                                 f"over the model's context of {max_length}")
        sizes.append(len(prompt) + sum(map(len, conts)))
    width = max(max(sizes), min_width if fill else 0)
    layout = place(sizes, width) if fill else [[g] for g in range(len(groups))]
    ids = [[] for _ in layout]
    pos, group_of, part_of = [[] for _ in layout], [[] for _ in layout], [[] for _ in layout]
    first_block = [0] + [sum(len(c) for _, c in groups[:g + 1]) for g in range(len(groups))]
    block_row, last_col, lengths = [0] * first_block[-1], [0] * first_block[-1], [0] * first_block[-1]
    tokens = []   # (block, row, column, predictor column) of every continuation token
    for r, members in enumerate(layout):
        for g in members:
            prompt, conts = groups[g]
            start, p = len(ids[r]), len(prompt)
            ids[r] += prompt
            pos[r] += range(p)
            group_of[r] += [g] * p
            part_of[r] += [0] * p
            for k, cont in enumerate(conts, start=1):
                col, n, b = len(ids[r]), len(cont), first_block[g] + k - 1
                ids[r] += cont
                pos[r] += range(p, p + n)
                group_of[r] += [g] * n
                part_of[r] += [k] * n
                block_row[b], last_col[b], lengths[b] = r, col + n - 1, n
                # the first token is predicted by the prompt's last, the others by the token before them
                tokens += [(b, r, col + t, (start + p - 1) if t == 0 else col + t - 1) for t in range(n)]
    pad = lambda rows, value: torch.tensor([x + [value] * (width - len(x)) for x in rows])  # noqa: E731
    gq, gk = pad(group_of, -1)[:, :, None], pad(group_of, -1)[:, None, :]
    pq, pk = pad(part_of, 0)[:, :, None], pad(part_of, 0)[:, None, :]
    mask = torch.ones(width, width, dtype=torch.bool).tril() & (gq == gk) & (gk >= 0) & ((pk == 0) | (pk == pq))
    mask |= torch.eye(width, dtype=torch.bool)          # padding attends to itself: no empty softmax rows
    send = sender(device)
    tok = send(torch.tensor(tokens, dtype=torch.long).T.contiguous())
    as_long = lambda x: send(torch.tensor(x, dtype=torch.long))  # noqa: E731
    return PackedBatch(send(pad(ids, pad_id)), send(pad(pos, 0)), send(mask[:, None]),
                       as_long(block_row), as_long(last_col), as_long(lengths), tok[0], tok[1], tok[2], tok[3],
                       real_tokens=sum(sizes),
                       sequence_tokens=sum(len(p) * len(c) + sum(map(len, c)) for p, c in groups))


def sender(device):
    """Host tensor -> ``device``. To a GPU through pinned memory without blocking: a plain copy
    from pageable memory would make the host wait for the device's queue at every batch."""
    device = torch.device(device)
    if device.type != "cuda":
        return lambda t: t.to(device)
    return lambda t: t.pin_memory().to(device, non_blocking=True)


def _attention_mask(model, batch: PackedBatch, dtype: torch.dtype) -> torch.Tensor:
    """The boolean mask for SDPA and flex; an additive float mask for eager attention."""
    impl = getattr(model.config, "_attn_implementation", "sdpa")
    if impl == "eager":
        return torch.zeros(batch.attention_mask.shape, dtype=dtype, device=batch.attention_mask.device).masked_fill(
            ~batch.attention_mask, torch.finfo(dtype).min)
    if impl not in ("sdpa", "flex_attention"):
        raise ValueError(f"packed rows need an attention that takes a 4D mask (sdpa or eager), not {impl!r}; "
                         "load the model with attn_implementation='sdpa'")
    return batch.attention_mask


def packed_hidden(model, batch: PackedBatch) -> torch.Tensor:
    """Last hidden states (R, W, d) of the transformer under ``model`` (an LM or a bare backbone)."""
    base = model.base_model
    mask = _attention_mask(model, batch, base.get_input_embeddings().weight.dtype)
    return base(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids,
                use_cache=False).last_hidden_state


def packed_hidden_at(model, batch: PackedBatch, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Final hidden states (N, d) at positions (rows, cols) only, e.g. where a reward is read.

    A GPT-2 needs its last block at those positions alone: the block's keys and values come from
    every position, but its query, attention output and MLP only from the positions read. So the
    blocks before it run as usual and the last one runs on N positions instead of R x W (for the
    4-block embedded model a fifth of the work; a twelfth for GPT-2). Other architectures run in
    full and are indexed.
    """
    base = model.base_model
    if getattr(base.config, "model_type", None) != "gpt2" or getattr(base.config, "add_cross_attention", False):
        return packed_hidden(model, batch)[rows, cols]
    blocks, ln_f = base.h, base.ln_f
    base.h, base.ln_f = blocks[:-1], torch.nn.Identity()   # the blocks before the last, no final norm
    try:
        x = packed_hidden(model, batch)                       # (R, W, d): the last block's input
    finally:
        base.h, base.ln_f = blocks, ln_f
    return ln_f(_gpt2_block_at(blocks[-1], x, batch.attention_mask, rows, cols))


def _gpt2_block_at(block, x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
    """transformers' GPT2Block on input x (R, W, d), its output only at (rows, cols): (N, d)."""
    attn, n = block.attn, len(rows)
    q, k, v = attn.c_attn(block.ln_1(x)).split(attn.split_size, dim=2)     # each (R, W, d)
    heads = lambda t: t.view(n, -1, attn.num_heads, attn.head_dim).transpose(1, 2)  # noqa: E731  (N, H, ., hd)
    q, k, v = heads(q[rows, cols][:, None]), heads(k[rows]), heads(v[rows])
    visible = mask[rows, 0, cols][:, None, None, :]                         # (N, 1, 1, W): what each query sees
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=attn.scaling,
                                         dropout_p=attn.attn_dropout.p if attn.training else 0.0)
    h = x[rows, cols] + attn.resid_dropout(attn.c_proj(out.transpose(1, 2).reshape(n, -1)))
    return h + block.mlp(block.ln_2(h))


def packed_logps(model, batch: PackedBatch, reduction: str = "sum", temperature: float = 1.0) -> torch.Tensor:
    """log pi(y | x) of every continuation (N,), float32; the unembedding runs on its tokens only.

    ``reduction``: "sum" (the exact log-probability) or "mean" (per token).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    h = packed_hidden(model, batch)[batch.token_row, batch.predictor_col]          # (M, d)
    logits = model.get_output_embeddings()(h).float() / temperature                # (M, V), float32
    targets = batch.input_ids[batch.token_row, batch.token_col]
    token_logps = -F.cross_entropy(logits, targets, reduction="none")
    out = torch.zeros(batch.n_blocks, dtype=torch.float32, device=h.device).index_add(0, batch.token_block, token_logps)
    return out / batch.lengths if reduction == "mean" else out


def packed_lm_loss(model, rows: list[tuple[list[int], list[int]]], pad_id: int, device) -> torch.Tensor:
    """Mean next-token cross-entropy of pre-training or SFT rows ``(ids, loss_mask)``, packed: no padding.

    A row's loss covers its tokens from the first with loss_mask 1 (never the row's first token,
    which nothing predicts) to its end, as `rlhf_lab.lm.pretrain.lm_loss` on the padded batch does;
    the tokens before them are the continuation's prompt. Several rows share a packed row, each
    attending to itself only, so a batch of short reviews costs its tokens, not rows x the longest.
    """
    groups = []
    for ids, mask in rows:
        first = max(1, next((i for i, m in enumerate(mask) if m), len(ids)))
        if first < len(ids):
            groups.append((ids[:first], [ids[first:]]))
    batch = pack(groups, pad_id, device)
    return -packed_logps(model, batch).sum() / len(batch.token_row)


class TokenCache:
    """Tokenise each distinct string once (a prompt is shared by many pairs; epochs repeat them)."""

    def __init__(self, tokenizer, eos: bool = False):
        self.tokenizer, self.eos, self.ids = tokenizer, eos, {}

    def __call__(self, text: str) -> list[int]:
        if text not in self.ids:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            self.ids[text] = ids + [self.tokenizer.eos_token_id] if self.eos else ids
        return self.ids[text]
