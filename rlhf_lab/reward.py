"""The Bradley-Terry reward model r_phi(x, y), trained on ranked completions (InstructGPT §3.5).

The model: the SFT transformer with its unembedding (n_emb -> n_vocab) replaced by a
linear head n_emb -> 1, read at the last real token of prompt + completion.

The loss (the notes; Ouyang et al. 2022, eq. 1): labelers' preferences are modelled as

    p(y_w > y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))                      (Bradley-Terry)
    L_RM = -E_(x, y_w, y_l) [log sigmoid(r(x, y_w) - r(x, y_l))]

InstructGPT trains on all C(K, 2) comparisons of one prompt as a single batch element:
the K completions are forwarded once each (K forwards, not 2 C(K, 2)), and the prompt's
loss is the mean over its pairs, (1 / C(K, 2)) sum_{i ranked above j} -log sigmoid(r_i - r_j).
Shuffling the pairs of all prompts into one data set instead makes each completion appear
K - 1 times per epoch, and InstructGPT reports that the model then overfits after one epoch.

The loss only sees differences of rewards, so r + c fits as well as r for any c (shift
invariance). After training, the head's bias is set so that the mean reward over the
training completions is 0 (the notes), and optionally the scale so that the std is 1.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .generation import position_ids_from_mask
from .models import ModelLoadError, load_model, load_tokenizer

HEAD_FILE = "reward_head.safetensors"
REWARD_CONFIG = "reward_config.json"


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Column of the last real token of each row, for left or right padding. (B, L) -> (B,)."""
    width = attention_mask.shape[1]
    return width - 1 - attention_mask.long().flip(-1).argmax(-1)


class RewardModel(nn.Module):
    """r_phi(x, y) = w^T h_T + b: a transformer backbone and a scalar head at the last real token."""

    def __init__(self, backbone, tokenizer, head: nn.Linear | None = None):
        super().__init__()
        self.backbone, self.tokenizer = backbone, tokenizer
        n_emb = backbone.config.hidden_size
        if head is None:
            head = nn.Linear(n_emb, 1)
            # COURSE.md / Huang et al.: N(0, 1 / sqrt(n_emb + 1)), bias 0
            nn.init.normal_(head.weight, std=1 / math.sqrt(n_emb + 1))
            nn.init.zeros_(head.bias)
        self.head = head.to(next(backbone.parameters()).device)

    @classmethod
    def from_backbone(cls, name: str = "tiny", device=None) -> "RewardModel":
        """A fresh reward model on any backbone the loader knows ("tiny", "gpt2", a folder)."""
        backbone, tok = load_model(name, role="backbone", device=device)
        return cls(backbone, tok)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) of token rows (B, L), padded on either side."""
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
        last = h[torch.arange(h.shape[0], device=h.device), last_token_index(attention_mask)]  # (B, n_emb)
        return self.head(last.float()).squeeze(-1)

    def encode(self, prompts: list[str], completions: list[str]):
        """Tokenise prompt + completion (+ EOS, as the policy ends it) into left-padded rows."""
        eos = self.tokenizer.eos_token
        texts = [p + c + eos for p, c in zip(prompts, completions, strict=True)]
        batch = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        context = getattr(self.backbone.config, "n_positions", None) or self.backbone.config.max_position_embeddings
        if batch["input_ids"].shape[1] > context:
            lengths = batch["attention_mask"].sum(-1)
            worst = int(lengths.argmax())
            raise ValueError(f"prompt + completion {worst} is {int(lengths[worst])} tokens, over the reward "
                             f"model's context of {context}: {texts[worst][:60]!r}...")
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def score(self, prompts: list[str], completions: list[str], batch_size: int = 64) -> torch.Tensor:
        """r_phi(x, y) for each (prompt, completion), in eval mode without gradients. Returns (N,) on CPU."""
        was_training = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                out.append(self(*self.encode(prompts[i:i + batch_size], completions[i:i + batch_size])).cpu())
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)

    def save_pretrained(self, path, extra: dict | None = None) -> None:
        """Backbone and tokenizer via save_pretrained, the head as safetensors, and a small json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, path / HEAD_FILE)
        (path / REWARD_CONFIG).write_text(json.dumps({"kind": "rlhf_lab.RewardModel", **(extra or {})}, indent=2))

    @classmethod
    def from_pretrained(cls, path, device=None) -> "RewardModel":
        """Load what `save_pretrained` wrote; a missing or corrupt head is an error naming the file."""
        path = Path(path)
        head_file = path / HEAD_FILE
        if not head_file.exists():
            raise ModelLoadError(f"{path} has no {HEAD_FILE}: it is not a reward model saved by "
                                 f"RewardModel.save_pretrained (for a fresh one use RewardModel.from_backbone)")
        backbone, _ = load_model(str(path), role="backbone", device=device)
        try:
            state = load_file(head_file)
        except Exception as err:
            raise ModelLoadError(f"{head_file} could not be read ({err}); it may be corrupt") from err
        head = nn.Linear(backbone.config.hidden_size, 1)
        head.load_state_dict(state)
        return cls(backbone, load_tokenizer(str(path)), head)


# ---- losses: pure functions on tensors ---------------------------------------------------

def _metrics(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> dict[str, float]:
    """TRL's names: mean chosen and rejected rewards, mean margin, fraction with r_w > r_l."""
    margin = (r_chosen - r_rejected).detach()
    return {"rewards/chosen": r_chosen.detach().mean().item(), "rewards/rejected": r_rejected.detach().mean().item(),
            "rewards/margins": margin.mean().item(), "rewards/accuracies": (margin > 0).float().mean().item()}


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Pairwise Bradley-Terry loss, -mean log sigmoid(r_w - r_l). r_chosen, r_rejected: (N,).

    Returns ``(loss, stats)`` with stats named as in TRL (rewards/chosen, .../rejected,
    .../margins, .../accuracies).
    """
    loss = -F.logsigmoid(r_chosen - r_rejected).mean()
    return loss, _metrics(r_chosen, r_rejected)


def pair_mask(ranks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(G, K, K) bool: True at [g, i, j] when completion i is ranked above j (rank 0 = best).

    ranks: (G, K) rank of each completion; equal ranks (ties) give no pair.
    valid: (G, K) bool, False for padding when prompts have fewer than K completions.
    """
    both = valid[:, :, None] & valid[:, None, :]
    return (ranks[:, :, None] < ranks[:, None, :]) & both


def grouped_bt_loss(rewards: torch.Tensor, ranks: torch.Tensor, valid: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, dict]:
    """InstructGPT's loss: all ranked pairs of a prompt as one batch element (§3.5).

    rewards: (G, K) one reward per completion (each completion forwarded once);
    ranks:   (G, K) 0 = best; valid: (G, K) bool (default all True).
    loss = mean over prompts g of  mean over pairs (i above j) of -log sigmoid(r_gi - r_gj).
    """
    valid = torch.ones_like(ranks, dtype=torch.bool) if valid is None else valid
    pairs = pair_mask(ranks, valid)                          # (G, K, K)
    diff = rewards[:, :, None] - rewards[:, None, :]         # r_i - r_j
    nll = -F.logsigmoid(diff) * pairs
    n_pairs = pairs.sum((1, 2))                              # C(K, 2) without ties
    if (n_pairs == 0).any():
        g = int((n_pairs == 0).nonzero()[0])
        raise ValueError(f"prompt {g} of the batch has no ranked pair (fewer than 2 completions or all tied)")
    loss = (nll.sum((1, 2)) / n_pairs).mean()
    g, i, j = pairs.nonzero(as_tuple=True)
    stats = _metrics(rewards[g, i], rewards[g, j])
    stats["pairs"] = int(n_pairs.sum())
    return loss, stats


def preference_probability(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry p(a > b) = sigmoid(r_a - r_b)."""
    return torch.sigmoid(r_a - r_b)
