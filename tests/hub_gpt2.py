"""A hub-shaped GPT-2, built offline: GPT-2's real byte-level BPE in a small GPT2Config.

The hub's ``gpt2`` cannot be downloaded here, but what makes it different from the embedded
model can be rebuilt: its tokenizer (vocabulary 50,257, EOS 50256 doubling as BOS, **no PAD**;
`rlhf_lab.lm.gpt2_bpe`, from GPT-2's own BPE files, hash-checked) and a ``GPT2LMHeadModel`` whose
embedding has exactly 50,257 rows.
The weights are random (2 layers, width 32): the tests check mechanics, not language.
"""
from __future__ import annotations

from pathlib import Path

import torch

from rlhf_lab.lm.gpt2_bpe import gpt2_tokenizer


def build_hub_gpt2(folder, seed: int = 0, n_layer: int = 2, n_embd: int = 32, n_positions: int = 128) -> Path:
    """Save a hub-shaped GPT-2 (tokenizer and random weights) into ``folder``; returns it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = gpt2_tokenizer()
    assert len(tok) == 50257 and tok.eos_token_id == 50256 and tok.pad_token is None, (len(tok), tok.eos_token_id)
    assert tok("Hello world")["input_ids"] == [15496, 995]      # GPT-2's ids, as tiktoken's gpt2 gives them
    config = GPT2Config(vocab_size=50257, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=2,
                        bos_token_id=50256, eos_token_id=50256, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
