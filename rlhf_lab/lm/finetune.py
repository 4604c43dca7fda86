"""A short supervised fine-tuning on (prompt, completion) pairs, inside a notebook's own chain.

The course's SFT model (`rlhf_lab.lm.pretrain.sft`) is fine-tuned once and shipped; a later stage that
needs a new instruction form (notebook 09's checkable specifications) or fine-tunes on its own samples
(rejection-sampling fine-tuning, `rlhf_lab.rl.rejection_sampling`) calls `fine_tune` on a copy instead:
the same loss on the completion tokens, the same loop (AdamW, warm-up and cosine, clipping, the NaN
guard), a few hundred steps at most.
"""
from __future__ import annotations

from dataclasses import dataclass

from rlhf_lab.config import ConfigError, validate_config
from rlhf_lab.lm.models import context_length
from rlhf_lab.lm.pretrain import History, _fit, tokenise_for_lm


@dataclass
class FineTuneConfig:
    """How long and how fast a short fine-tuning runs."""

    steps: int = 150
    """Optimizer steps."""
    batch_size: int = 32
    """Pairs per step (drawn with replacement)."""
    lr: float = 1e-3
    """Peak learning rate (AdamW), warm-up then cosine decay to a tenth."""
    warmup: int = 10
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    seed: int = 0
    """Seeds the batch order."""

    def __post_init__(self):
        validate_config(self, {"steps": ">=1", "batch_size": ">=1", "lr": ">0", "warmup": ">=0",
                               "weight_decay": ">=0", "seed": ">=0"})

    @classmethod
    def tiny(cls) -> "FineTuneConfig":
        """The embedded model: its SFT's learning rate (1e-3), 150 steps of 32 pairs (about 30 s on 2 cores)."""
        return cls()

    @classmethod
    def gpu(cls) -> "FineTuneConfig":
        """GPT-2 (124M): its SFT's learning rate (1e-4), 150 steps of 32 pairs."""
        return cls(lr=1e-4)

    @property
    def eval_every(self) -> int:     # `_fit` reads a validation loss at the end only
        return self.steps


def fine_tune(model, tokenizer, pairs: list[tuple[str, str]], cfg: FineTuneConfig | None = None,
              val_pairs: list[tuple[str, str]] | None = None, progress: bool = True, desc: str = "fine-tune") -> History:
    """Fine-tune ``model`` in place on ``pairs`` of (prompt, completion): the loss counts the completion and its
    EOS only. ``val_pairs`` (default: the first 32 pairs) give the validation loss at the end. Returns the History."""
    cfg = cfg or FineTuneConfig()
    if not pairs:
        raise ConfigError("fine_tune got no (prompt, completion) pairs: nothing to learn from")
    bad = [i for i, p in enumerate(pairs) if not (isinstance(p, tuple | list) and len(p) == 2 and p[1].strip())]
    if bad:
        raise ConfigError(f"fine_tune: pair {bad[0]} is not a (prompt, non-empty completion) pair: {pairs[bad[0]]!r}")
    width = context_length(model.config)
    rows = tokenise_for_lm(tokenizer, [p for p, _ in pairs], [c for _, c in pairs], width)
    val = val_pairs or pairs[:32]
    val_rows = tokenise_for_lm(tokenizer, [p for p, _ in val], [c for _, c in val], width)
    return _fit(model, tokenizer, rows, val_rows, cfg, desc, progress)
