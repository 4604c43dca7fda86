"""The tokens RLHF depends on: a BPE tokenizer for the world, and PAD that is never EOS.

The course's rule, after Huang et al. (2024, "The N+ Implementation Details of RLHF with PPO"):
PAD must differ from EOS. A model that pads with EOS cannot tell "the response ended here" from
"this row is padding", so a mask built from the tokens drops the real EOS, and the
reward model and PPO learn nothing about ending. The embedded model is trained with a PAD of its
own (`train_tokenizer`); GPT-2, which has none, gets one (`ensure_pad_token`) that no softmax can
ever sample (`suppress_pad_logit`).
"""
from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from rlhf_lab.config import fork_rng

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (as GPT-2's) trained on ``texts``, with PAD distinct from EOS.

    Byte-level means any string can be encoded, also text the world never writes.
    EOS doubles as BOS (GPT-2's convention); prompts are left-padded.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD,
                                   padding_side="left", model_max_length=10**6)


ADDED_PAD = "rlhf_lab_added_pad"
"""Config attribute set on a model whose PAD row the loader added (saved with it, so reloads agree)."""
PAD_LOGIT = -1e9
"""The logit PAD gets in a model whose PAD row was added: softmax gives it probability 0 exactly."""


def ensure_pad_token(model, tokenizer) -> None:
    """Give the tokenizer a PAD token of its own (GPT-2 has none) and make the model agree.

    A checkpoint without PAD (hub GPT-2: 50,257 tokens, EOS 50256, no PAD) gets one more
    embedding row. Two rules keep RLHF exact:

    * the new row is the mean of the existing rows, computed, not drawn (transformers'
      ``resize_token_embeddings`` draws it at random by default), so every load of the same
      checkpoint is the same model bit for bit: the policy equals the reference and the KL
      at step 0 is exactly 0; the global RNG is left as it was;
    * PAD is never a prediction: the output embedding's PAD logit is set to -1e9 by a hook, so
      sampling never draws PAD and every log-softmax (sampling, PPO, DPO, the KL) gives it
      probability 0. The model's config records it (``rlhf_lab_added_pad``), so a saved and
      reloaded policy (SFT, PPO, DPO) keeps the rule.

    PAD positions are always masked in attention, so the row's input value reaches no prediction.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD})
    rows = model.get_input_embeddings().num_embeddings
    if rows < len(tokenizer):
        with fork_rng(), torch.no_grad():   # resize's init draws; ours does not
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
                if emb is not None:
                    emb.weight[rows:] = emb.weight[:rows].mean(0)
        setattr(model.config, ADDED_PAD, True)
    if getattr(model.config, ADDED_PAD, False):
        suppress_pad_logit(model, tokenizer.pad_token_id)
    tokenizer.padding_side = "left"
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is not None:
            cfg.pad_token_id = tokenizer.pad_token_id
            cfg.eos_token_id = tokenizer.eos_token_id
    assert tokenizer.pad_token_id != tokenizer.eos_token_id, "PAD must differ from EOS"


def suppress_pad_logit(model, pad_id: int) -> None:
    """Set the PAD column of every logit the model computes to `PAD_LOGIT` (once per model): a hook
    on the output embedding, which `generate`, the forward pass and the kit's own unembedding calls
    all go through. A model without an output embedding (a reward model's backbone) is left alone."""
    head = model.get_output_embeddings()
    if head is None or getattr(head, "_rlhf_lab_pad_hook", None) == pad_id:
        return

    def hook(module, inputs, logits):
        return logits.index_fill(-1, torch.tensor([pad_id], device=logits.device), PAD_LOGIT)
    head.register_forward_hook(hook)
    head._rlhf_lab_pad_hook = pad_id
