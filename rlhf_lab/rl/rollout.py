"""One RL iteration's data: the episodes, the policy forward with a value head, the run's record.

A rollout (InstructGPT §3.5; Huang et al. 2024) is a batch of episodes, each a prompt and a
sampled response, with everything the update needs per token: the old log-probs of the policy
that sampled, the reference's log-probs of the same tokens and the KL estimate (`Rollout`); PPO's
adds the values, the KL-penalised rewards of `rlhf_lab.rl.ppo` eq. (1) and the GAE advantages and
returns of eq. (2) (`PPORollout`), a critic-free one a group-relative advantage per response
(`rlhf_lab.rl.group_rl` eqs. 1-3; `GroupRollout`).

The value function is a scalar head on the policy's last hidden state by default ("shared"):
one forward gives both the logits and the values. `ValueModel` is the separate critic
(``value_model="separate"``). `policy_forward` is the forward over padded rows; `trim_minibatch`
drops the columns that are padding in a whole minibatch.

Padding-free (``padding_free=True``, the default of every RL config): `pack_episodes` lays a
batch's episodes out as `rlhf_lab.lm.packing` does for DPO and the reward model: no padding, and
episodes that share a prompt (the K samples of a GRPO/RLOO group) share its one copy.
`packed_policy_forward` gives the same (B, T) log-probs, values and entropies as `policy_forward`
(up to float rounding), with the unembedding, the value head and the last block's MLP run on
the positions that predict a response token only. The loop is `rlhf_lab.rl.trainer`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from rlhf_lab.config import float32_head
from rlhf_lab.lm.generation import logprobs_from_logits, position_ids_from_mask, response_states
from rlhf_lab.lm.packing import PackedBatch, pack, packed_hidden, place
from rlhf_lab.rl.ppo import entropy_from_logits
from rlhf_lab.world.reviews import Prompt

RewardFn = Callable[[list[str], list[str]], "torch.Tensor | list[float]"]
"""(prompt texts, completions) -> (B,) scores: a tensor, or a list of floats as TRL's reward functions return."""


def as_prompts(prompts) -> list[Prompt]:
    """World prompts as they are; plain strings (a student's own prompts) become opening prompts."""
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, Prompt):
            out.append(p)
        elif isinstance(p, str) and p.strip():
            out.append(Prompt(id=f"user-{i}", text=p, kind="opening", aspect=None, title=""))
        else:
            raise ValueError(f"prompt {i} must be a non-empty string or a world Prompt, got {p!r}")
    if not out:
        raise ValueError("no prompts to train on")
    return out


# ---- the value function --------------------------------------------------------------------

def value_head(n_emb: int) -> nn.Linear:
    """A scalar head n_emb -> 1 initialised at 0 (Huang et al. 2024): V = 0 everywhere at the start."""
    head = nn.Linear(n_emb, 1)
    nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
    return head


class ValueModel(nn.Module):
    """A separate critic: a transformer backbone with a scalar head at every position."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = value_head(backbone.config.hidden_size).to(next(backbone.parameters()).device)

    def forward(self, input_ids, attention_mask, start: int) -> torch.Tensor:
        """V(s_t) for each response token t: the hidden state of the column before it. Returns (B, T)."""
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
        return float32_head(self.head, h[:, start - 1:-1])

    def packed(self, rows: "PackedEpisodes") -> torch.Tensor:
        """V(s_t) of `pack_episodes`' rows, (n, T) zero-padded like `packed_policy_forward`'s."""
        b = rows.batch
        # every response token is read: the whole forward, indexed (packed_hidden_at's last-block shortcut
        # gathers keys and values per read position, M x W x d, which is for a few reads, not for every token)
        return rows.dense(float32_head(self.head, packed_hidden(self.backbone, b)[b.token_row, b.predictor_col]))


def policy_forward(model, input_ids, attention_mask, start: int, temperature: float,
                   head: nn.Module | None = None, entropy: bool = False):
    """One forward of the policy over prompt + response rows (B, L); the response starts at ``start``.

    Returns (logprobs (B, T), values (B, T) or None, entropy (B, T) or None), all float32:
    log pi(y_t | s_t) at temperature T, V(s_t) from ``head`` on the last hidden state, and
    the entropy of pi(. | s_t) at T. Not masked: multiply by the response mask.
    """
    h = response_states(model, input_ids, attention_mask, start)
    logits = model.get_output_embeddings()(h)
    logprobs = logprobs_from_logits(logits, input_ids[:, start:], temperature)
    values = float32_head(head, h) if head is not None else None
    ent = entropy_from_logits(logits.float() / temperature) if entropy else None
    return logprobs, values, ent


@dataclass
class Episodes:
    """Host copies of a batch's tokens, read from the device once: what `pack_episodes` and
    `trim_minibatch` lay out."""

    prompt_lengths: list[int]
    response_lengths: list[int]
    prompt_tokens: list[tuple[int, ...]]
    response_tokens: list[list[int]]

    @classmethod
    def of(cls, input_ids, attention_mask, start: int, mask) -> "Episodes":
        """From left-padded prompts (columns < ``start``) and responses whose tokens ``mask`` marks."""
        ids, p_len = input_ids.tolist(), attention_mask[:, :start].sum(-1).tolist()
        r_len = mask.sum(-1).long().tolist()
        return cls(p_len, r_len, [tuple(row[start - p:start]) for row, p in zip(ids, p_len)],
                   [row[start:start + n] for row, n in zip(ids, r_len)])


@dataclass
class PackedEpisodes:
    """Some of a rollout's episodes packed without padding (`pack_episodes`)."""

    batch: PackedBatch
    episode: torch.Tensor
    """(M,) for every response token, flat: its episode's place among the packed ones (0 .. n - 1)."""
    column: torch.Tensor
    """(M,) its response column t (0 .. its length - 1)."""
    n: int
    """Episodes packed."""
    width: int
    """Their longest response: the dense tensors are (n, width)."""

    def dense(self, flat: torch.Tensor) -> torch.Tensor:
        """Per-token values (M,) -> (n, width), 0 where an episode's response has ended."""
        return flat.new_zeros(self.n, self.width).index_put((self.episode, self.column), flat)


def row_width(sizes: list[int], hidden_size: int) -> int:
    """The width of packed rows that costs least: rows x width positions through the layers' matrix
    products (~12 d^2 per position), plus attention over the whole row (~2 d width per position,
    counted at 3x for a masked kernel), over widths of 1 to 3 times the longest group."""
    longest = max(sizes)
    cost = lambda w: len(place(sizes, w)) * w * (1 + w / (2 * hidden_size))  # noqa: E731
    return min((int(longest * f) for f in (1, 1.25, 1.5, 2, 2.5, 3)), key=cost)


def pack_episodes(r: "Episodes | Rollout", rows, pad_id: int, device, width: int | None = None,
                  hidden_size: int = 768) -> PackedEpisodes:
    """The episodes ``rows`` of ``r`` as packed rows (`rlhf_lab.lm.packing.pack`): each prompt once,
    followed by the responses of the episodes that share it, no padding; the host copies of the
    tokens (`Episodes`) make the layout without asking the device. ``width``: columns of the dense
    tensors (default: the longest response packed). ``hidden_size``: the model's, for `row_width`."""
    rows, groups, where, slots = list(rows), [], {}, []
    for i in rows:
        p = r.prompt_tokens[i]
        if p not in where:
            where[p] = len(groups)
            groups.append((list(p), []))
        g = where[p]
        slots.append((g, len(groups[g][1])))
        groups[g][1].append(r.response_tokens[i])
    first = [0]
    for _, conts in groups:
        first.append(first[-1] + len(conts))
    episode_of_block = [0] * len(rows)
    for e, (g, k) in enumerate(slots):
        episode_of_block[first[g] + k] = e
    b = pack(groups, pad_id, device=device, min_width=row_width([len(p) + sum(map(len, c)) for p, c in groups],
                                                               hidden_size))
    block_start = (b.last_col - b.lengths + 1)[b.token_block]
    to_episode = torch.tensor(episode_of_block, dtype=torch.long).to(b.token_block.device)
    return PackedEpisodes(b, to_episode[b.token_block], b.token_col - block_start, len(rows),
                          width or max(r.response_lengths[i] for i in rows))


def packed_policy_forward(model, rows: PackedEpisodes, temperature: float, head: nn.Module | None = None,
                          entropy: bool = False):
    """`policy_forward` on `pack_episodes`' rows: (logprobs (n, T), values (n, T) or None, entropy
    (n, T) or None), float32, 0 after each response's end, T = the longest response packed."""
    b = rows.batch
    h = packed_hidden(model, b)[b.token_row, b.predictor_col]                     # (M, d): s_t of every token
    logits = model.get_output_embeddings()(h)
    logprobs = logprobs_from_logits(logits[None], b.input_ids[b.token_row, b.token_col][None], temperature)[0]
    values = rows.dense(float32_head(head, h)) if head is not None else None
    ent = rows.dense(entropy_from_logits(logits.float() / temperature)) if entropy else None
    return rows.dense(logprobs), values, ent


# ---- the run's record ----------------------------------------------------------------------

@dataclass
class PPOHistory:
    """One row of metrics per iteration (TRL's names where TRL has one) and a few samples of each."""

    rows: list[dict] = field(default_factory=list)
    samples: list[list[dict]] = field(default_factory=list)
    """Per iteration: the first few (prompt, completion, score, gold) of the batch."""

    def __getitem__(self, key: str) -> list[float]:
        if self.rows and key not in self.rows[0]:
            raise KeyError(f"no metric {key!r}; the history has {sorted(self.rows[0])}")
        return [row[key] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "samples": self.samples}

    @classmethod
    def from_dict(cls, d: dict) -> "PPOHistory":
        return cls(rows=list(d["rows"]), samples=list(d["samples"]))


@dataclass(kw_only=True)
class Rollout:
    """The episodes of one iteration, as every trainer scores them; shapes (B, T) unless noted.
    Built with keywords (`trainer.RLTrainer.generate_and_score` gives all but non_score_rewards)."""

    prompts: list[Prompt]
    completions: list[str]
    input_ids: torch.Tensor
    """(B, P + T) prompt and response tokens."""
    attention_mask: torch.Tensor
    start: int
    """Column where the responses start (P)."""
    mask: torch.Tensor
    """Response tokens up to and including EOS."""
    logprobs: torch.Tensor
    """log pi_old(y_t | s_t) of the policy that sampled, at the sampling temperature."""
    ref_logprobs: torch.Tensor
    rm_scores: torch.Tensor
    """(B,) r_phi of every response, before the unfinished-response penalty."""
    scores: torch.Tensor
    """(B,) the score used in the reward (penalty and clipping applied)."""
    finished: torch.Tensor
    kl: torch.Tensor
    """Per-token KL estimate (cfg.kl_estimator)."""
    non_score_rewards: torch.Tensor
    """-beta kl_t, the KL penalty in the reward (0 when the KL is in the loss)."""
    entropy: torch.Tensor
    prompt_lengths: list[int] = field(default_factory=list)
    """Per episode, on the host: prompt tokens (the rest of the first ``start`` columns is padding)."""
    response_lengths: list[int] = field(default_factory=list)
    """Per episode, on the host: response tokens up to and including EOS."""
    prompt_tokens: list[tuple[int, ...]] = field(default_factory=list)
    """Per episode, on the host: its prompt's tokens (no padding), for `pack_episodes`."""
    response_tokens: list[list[int]] = field(default_factory=list)
    """Per episode, on the host: its response's tokens up to and including EOS."""

    def __post_init__(self):
        # read once here, so the update loop can cut minibatches without asking the device
        if not self.prompt_tokens:
            e = Episodes.of(self.input_ids, self.attention_mask, self.start, self.mask)
            self.prompt_lengths, self.response_lengths = e.prompt_lengths, e.response_lengths
            self.prompt_tokens, self.response_tokens = e.prompt_tokens, e.response_tokens


@dataclass(kw_only=True)
class PPORollout(Rollout):
    """PPO's rollout: eq. (1)'s per-token rewards of `rlhf_lab.rl.ppo`, the values and eq. (2)'s GAE."""

    values: torch.Tensor
    """V(s_t) of the value function that scored the batch."""
    rewards: torch.Tensor
    """r_t = -beta kl_t + [t = last] score, eq. (1)."""
    advantages: torch.Tensor
    """(B, T) A_t of GAE (whitened when cfg.whiten_advantages)."""
    returns: torch.Tensor
    """A_t + V(s_t): the value targets."""


@dataclass(kw_only=True)
class GroupRollout(Rollout):
    """A critic-free rollout (RLOO, GRPO): K responses per prompt and no value function."""

    advantages: torch.Tensor
    """(B,) one group-relative advantage per response (`rlhf_lab.rl.group_rl` eqs. 1-3), every token's."""


def trim_minibatch(r: Rollout, rows: torch.Tensor, host_rows: list[int] | None = None):
    """A minibatch's rows without the columns that are padding in every one of them: prompt
    columns left of its longest prompt and response columns right of its longest response.
    Positions come from the mask, so the logits of the remaining tokens do not change. The
    widths come from the host copies of the lengths (``host_rows``: ``rows`` as a list), so
    cutting a minibatch does not wait for the device.
    Returns (input_ids, attention_mask, start, response column slice)."""
    host_rows = rows.tolist() if host_rows is None else host_rows
    first = r.start - max(r.prompt_lengths[i] for i in host_rows)
    n_resp = max(1, max(r.response_lengths[i] for i in host_rows))
    end = r.start + n_resp
    return r.input_ids[rows, first:end], r.attention_mask[rows, first:end], r.start - first, slice(0, n_resp)
