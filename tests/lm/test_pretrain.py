"""Smoke runs of UPT and SFT on a toy-sized model: finite, falling loss; parameters change; saved with metadata."""
import json
import math

import pytest
import torch

from rlhf_lab.lm import pretrain as pt
from rlhf_lab.lm.models import load_model


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("upt")
    cfg = pt.PretrainConfig.demo()
    model, tok, hist = pt.pretrain(cfg, out_dir=out, progress=False)
    return out, cfg, model, tok, hist


def test_pretrain_loss_is_finite_and_falls(demo_run):
    _, cfg, _, _, hist = demo_run
    assert len(hist.loss) == cfg.steps
    assert all(torch.isfinite(torch.tensor(hist.loss)))
    first, last = sum(hist.loss[:5]) / 5, sum(hist.loss[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert hist.val_loss[-1] < hist.val_loss[0] or len(hist.val_loss) == 1


def test_pretrain_saves_a_loadable_checkpoint_with_metadata(demo_run):
    out, cfg, model, _, hist = demo_run
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["steps"] == cfg.steps and meta["seed"] == cfg.seed
    assert meta["n_parameters"] == hist.n_parameters
    assert meta["final_val_loss"] == pytest.approx(hist.val_loss[-1], abs=1e-3)
    loaded, tok = load_model(str(out), role="reference")
    assert tok.pad_token_id != tok.eos_token_id
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_sft_changes_parameters_and_lowers_demonstration_loss(demo_run):
    out, _, _, _, _ = demo_run
    before, tok = load_model(str(out), role="reference")
    cfg = pt.SFTConfig(base=str(out), n_demos=500, steps=25, eval_every=25, lr=3e-3)
    model, _, hist = pt.sft(cfg, progress=False)
    assert all(torch.isfinite(torch.tensor(hist.loss)))
    assert sum(hist.loss[-5:]) / 5 < sum(hist.loss[:5]) / 5
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), before.parameters())]
    assert all(changed)


def test_sft_loss_counts_only_the_demonstration():
    tok_rows = pt.tokenise_for_lm(_FakeTok(), ["ab"], ["cde"], max_len=100)
    ids, mask = tok_rows[0]
    assert ids == [ord("a"), ord("b"), ord("c"), ord("d"), ord("e"), 0]
    assert mask == [0, 0, 1, 1, 1, 1]  # prompt not predicted; EOS is


def test_nan_loss_stops_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(pt, "packed_lm_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(FloatingPointError, match="loss is nan at step 1 of 30.*Nothing was saved"):
        pt.pretrain(pt.PretrainConfig.demo(), progress=False)


class _FakeTok:
    """Characters as tokens, EOS = 0: enough to check the masking by hand."""

    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_same_seed_reproduces_the_same_weights(demo_run):
    """`rlhf-lab pretrain` is reproducible: the same config and seed give the same model."""
    _, cfg, model, _, _ = demo_run
    again, _, _ = pt.pretrain(cfg, progress=False)
    for a, b in zip(model.parameters(), again.parameters()):
        torch.testing.assert_close(a, b)


def test_gpt2_size_is_gpt2_shaped_with_gpt2s_own_tokenizer():
    """Issue 13: `pretrain --size gpt2` had its own 8,192-token BPE (87M parameters); it now has GPT-2's
    tokenizer and so GPT-2's 124M parameters (the hub's 124,439,808 plus one PAD row of 768)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhf_lab.lm.gpt2_bpe import gpt2_tokenizer

    cfg = pt.PretrainConfig.gpu()
    assert cfg.tokenizer == "gpt2"
    config = GPT2Config(vocab_size=len(gpt2_tokenizer()) + 1, n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head)
    with torch.device("meta"):                                  # counted without allocating 500 MB
        n = sum(p.numel() for p in GPT2LMHeadModel(config).parameters())
    assert n == 124_439_808 + 768


def test_pretraining_with_gpt2s_tokenizer_saves_a_loadable_model(tmp_path):
    from rlhf_lab.lm.generation import sample

    cfg = pt.PretrainConfig(tokenizer="gpt2", n_docs=200, n_layer=1, n_head=2, n_embd=32, steps=2, batch_size=4,
                         eval_every=2, device="cpu")
    model, tok, hist = pt.pretrain(cfg, out_dir=tmp_path / "upt", progress=False)
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]   # GPT-2's ids
    assert (tok.eos_token_id, tok.pad_token_id, model.config.vocab_size) == (50256, 50257, 50258)
    assert all(math.isfinite(x) for x in hist.loss)
    policy, tok2 = load_model(str(tmp_path / "upt"))
    assert tok2.pad_token_id == 50257 and policy.get_input_embeddings().num_embeddings == 50258
    out = sample(policy, tok2, ["Write a review.", "The plot"], max_new_tokens=4)
    assert len(out.completions) == 2
