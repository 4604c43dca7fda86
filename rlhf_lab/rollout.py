"""One PPO iteration's data: the episodes, the policy forward with a value head, the run's record.

A rollout (InstructGPT §3.5; Huang et al. 2024) is a batch of episodes, each a prompt and a
sampled response, with everything the update needs per token: the old log-probs of the policy
that sampled, the reference's log-probs of the same tokens, the values, the KL-penalised
rewards of `rlhf_lab.ppo` eq. (1), and the GAE advantages and returns of eq. (2).

The value function is a scalar head on the policy's last hidden state by default ("shared"):
one forward gives both the logits and the values. `ValueModel` is the separate critic
(``value_model="separate"``). `policy_forward` is the one forward both phases use; `_trim`
drops the columns that are padding in a whole minibatch. The loop is `rlhf_lab.ppo_trainer`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from .config import float32_head
from .generation import logprobs_from_logits, position_ids_from_mask, response_states
from .ppo import entropy_from_logits
from .world import Prompt

RewardFn = Callable[[list[str], list[str]], torch.Tensor]
"""(prompt texts, completions) -> (B,) scores."""


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
    """A scalar head n_emb -> 1 initialised at 0 (COURSE.md): V = 0 everywhere at the start."""
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


@dataclass
class Rollout:
    """The episodes of one iteration and everything the update needs, shapes (B, T) unless noted."""

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
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    rm_scores: torch.Tensor
    """(B,) r_phi of every response, before the unfinished-response penalty."""
    scores: torch.Tensor
    """(B,) the score used in the reward (penalty and clipping applied)."""
    finished: torch.Tensor
    kl: torch.Tensor
    """Per-token KL estimate used in the reward (cfg.kl_estimator)."""
    rewards: torch.Tensor
    non_score_rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    entropy: torch.Tensor
    prompt_lengths: list[int] = field(default_factory=list)
    """Per episode, on the host: prompt tokens (the rest of the first ``start`` columns is padding)."""
    response_lengths: list[int] = field(default_factory=list)
    """Per episode, on the host: response tokens up to and including EOS."""

    def __post_init__(self):
        # read once here, so the update loop can cut minibatches without asking the device
        if not self.prompt_lengths:
            self.prompt_lengths = self.attention_mask[:, :self.start].sum(-1).tolist()
        if not self.response_lengths:
            self.response_lengths = self.mask.sum(-1).long().tolist()


def _trim(r: Rollout, rows: torch.Tensor, host_rows: list[int] | None = None):
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
