"""PPO-ptx: the pre-training log-likelihood mixed into PPO's objective (InstructGPT, Ouyang et al. 2022, eq. 2).

RL against a reward model moves the policy away from the text it was pre-trained on, and InstructGPT
measured a cost: its PPO models did worse than the SFT model on public NLP tasks, the **alignment tax**
(§4.2). Its fix adds a language-modelling term on pre-training data to the RL objective,

    objective(phi) = E_{(x,y) ~ pi_phi}[ r_theta(x, y) - beta log(pi_phi(y|x) / pi_SFT(y|x)) ]
                     + gamma E_{x ~ D_pretrain}[ log pi_phi(x) ],

with gamma = 27.8 there (`PPOConfig.ptx_coef`). In the trainer this is one more term in each
minibatch's loss, ``ptx_coef`` times the mean next-token cross-entropy of a batch of pre-training
documents (here, the review world's corpus that made the base model, `world.ReviewWorld.corpus`).
`heldout_lm_loss` measures the tax the way this course can: the language-model loss on held-out
reviews, before and after RL.
"""
from __future__ import annotations

import torch

from rlhf_lab.lm.pretrain import lm_loss, pad_batch, tokenise_for_lm
from rlhf_lab.world.reviews import ReviewWorld


class PretrainingBatches:
    """Seeded batches of tokenised pre-training documents, drawn with replacement, on ``device``."""

    def __init__(self, tokenizer, documents: list[str], batch_size: int, max_len: int, seed: int = 0, device="cpu"):
        if not documents:
            raise ValueError("PPO-ptx needs pre-training documents; got none")
        if batch_size < 1:
            raise ValueError(f"ptx_batch_size must be at least 1, got {batch_size}")
        self.rows = tokenise_for_lm(tokenizer, [], documents, max_len)
        self.batch_size, self.pad_id, self.device = batch_size, tokenizer.pad_token_id, device
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, attention mask, loss mask), each (batch_size, L), right-padded."""
        pick = torch.randint(len(self.rows), (self.batch_size,), generator=self.generator).tolist()
        return pad_batch([self.rows[i] for i in pick], self.pad_id, self.device)


def ptx_loss(model, ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """-E_{x ~ D_pretrain}[log pi(x)] per token: the mean next-token cross-entropy of a batch of documents.
    PPO-ptx adds ``ptx_coef`` times it to the PPO loss (minimising it maximises gamma E[log pi(x)])."""
    return lm_loss(model, ids, attention_mask, loss_mask)


@torch.no_grad()
def heldout_lm_loss(model, tokenizer, documents: list[str], batch_size: int = 64, device=None) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on ``documents``: the alignment tax's
    yardstick (lower is better; compare a policy with the SFT model it started from)."""
    device = device or next(model.parameters()).device
    rows = tokenise_for_lm(tokenizer, [], documents, model.config.n_positions)
    total, tokens = 0.0, 0
    for i in range(0, len(rows), batch_size):
        ids, att, mask = pad_batch(rows[i:i + batch_size], tokenizer.pad_token_id, device)
        n = float(mask[:, 1:].sum())
        total += float(lm_loss(model, ids, att, mask)) * n
        tokens += n
    return total / max(tokens, 1.0)


def pretraining_batches(cfg, tokenizer, policy, device) -> PretrainingBatches | None:
    """The batches a PPO trainer mixes in when ``cfg.ptx_coef > 0`` (else None): documents of the review
    world's corpus, the data the kit's base model was pre-trained on, seeded by ``cfg.seed``."""
    if cfg.ptx_coef == 0:
        return None

    docs = ReviewWorld(cfg.seed).corpus(2048)
    return PretrainingBatches(tokenizer, docs, cfg.ptx_batch_size, policy.config.n_positions, seed=cfg.seed,
                              device=device)
