import json
import shutil
import time

import pytest
import torch

from rlhf_lab.lm import models
from rlhf_lab.config import data_dir
from rlhf_lab.lm.models import ModelLoadError, frozen_copy, load_model, load_tokenizer
from rlhf_lab.lm.tokens import ensure_pad_token


def test_tokenizer_pad_is_not_eos_and_pads_left(tiny):
    _, tok = tiny
    assert tok.pad_token_id is not None
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.padding_side == "left"
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"


def test_tokenizer_round_trips_any_text():
    tok = load_tokenizer("tiny")
    for text in ["The plot is brilliant.", "Ünïcødé — 東京 🎬 tabs\tand\nnewlines", "x" * 300]:
        assert tok.decode(tok(text)["input_ids"]) == text


def test_shipped_model_is_small_gpt2_with_metadata(tiny):
    model, tok = tiny
    assert type(model).__name__ == "GPT2LMHeadModel"
    n = models.count_parameters(model)
    assert 1e6 < n < 5e6, n
    assert model.config.vocab_size == len(tok)
    total = 0
    for name in ("tiny-upt", "tiny-sft"):
        folder = data_dir() / "models" / name
        meta = json.loads((folder / "metadata.json").read_text())
        for key in ("command", "seed", "steps", "wall_time_s", "final_train_loss", "final_val_loss"):
            assert key in meta, (name, key)
        total += sum(f.stat().st_size for f in folder.iterdir())
    assert total <= 20 * 2**20, f"shipped models take {total / 2**20:.1f} MiB, over 20 MiB"


def test_reference_is_frozen_and_policy_is_trainable():
    ref, _ = load_model("tiny", role="reference")
    pol, _ = load_model("tiny", role="policy")
    assert not any(p.requires_grad for p in ref.parameters())
    assert not ref.training
    assert all(p.requires_grad for p in pol.parameters())
    copy = frozen_copy(pol)
    assert not any(p.requires_grad for p in copy.parameters())
    assert all(p.requires_grad for p in pol.parameters())  # the original is untouched
    assert copy.transformer.wte.weight.data_ptr() != pol.transformer.wte.weight.data_ptr()


def test_backbone_has_no_unembedding_and_returns_n_emb_features():
    backbone, tok = load_model("tiny", role="backbone")
    assert not hasattr(backbone, "lm_head")
    ids = tok(["The plot is good."], return_tensors="pt")
    h = backbone(**ids).last_hidden_state
    assert h.shape == (1, ids["input_ids"].shape[1], backbone.config.n_embd)


def test_unknown_model_offline_is_a_clear_fast_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache.*'tiny'"):
        load_model("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - start < 20


def test_missing_local_folder_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("./no/such/folder")


def test_unknown_role_is_rejected():
    with pytest.raises(ValueError, match="role must be one of"):
        load_model("tiny", role="critic")


def test_corrupt_checkpoint_is_a_clear_error_naming_the_folder(tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(data_dir() / "models" / "tiny-sft", folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    with pytest.raises(ModelLoadError, match=f"{folder}.*could not be read"):
        load_model(str(folder))


def test_pad_token_is_added_where_missing(tiny):
    """GPT-2 from the hub has no PAD: ensure_pad_token adds one and grows the embedding."""
    model, _ = load_model("tiny", role="policy")
    tok = load_tokenizer("tiny")
    tok.pad_token = tok.eos_token  # what many GPT-2 recipes do, and what the kit refuses
    n_before = model.get_input_embeddings().num_embeddings
    ensure_pad_token(model, tok)
    assert tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.get_input_embeddings().num_embeddings >= max(n_before, len(tok))
    assert torch.isfinite(model(torch.tensor([[tok.pad_token_id, 5]])).logits).all()


def test_shipped_sft_model_writes_well_formed_on_topic_reviews_of_mixed_sentiment(tiny):
    """The issue's bar for the embedded model: >= 95% well-formed, mostly on topic, mean near neutral."""
    import statistics

    from rlhf_lab.world import reviews as world
    from rlhf_lab.world.judges import summarise
    from rlhf_lab.config import set_seed
    from rlhf_lab.lm.generation import sample

    model, tok = tiny
    prompts = world.ReviewWorld(0).instruction_prompts(128, split="test")
    set_seed(0)
    out = sample(model, tok, [p.text for p in prompts], max_new_tokens=48, temperature=0.7)
    scores = world.judge_many(prompts, out.completions)
    summary = summarise(scores)
    assert summary["well_formed_rate"] >= 0.95, summary
    assert summary["on_topic_rate"] >= 0.85, summary
    assert abs(summary["sentiment"]) < 0.15, summary           # room for RLHF to move
    assert statistics.pstdev(s.sentiment for s in scores) > 0.3  # both good and bad reviews
