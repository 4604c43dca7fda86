"""PPO-ptx (InstructGPT eq. 2): the pre-training term, in the loss, in the history, through a checkpoint."""
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from rlhf_lab.config import ConfigError
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.rl.ptx import PretrainingBatches, heldout_lm_loss, ptx_loss
from rlhf_lab.world.reviews import ReviewWorld

SMALL = replace(PPOConfig.tiny(), batch_size=8, mini_batch_size=4, ppo_epochs=1, max_new_tokens=8, device="cpu")


def test_ptx_loss_is_the_mean_next_token_cross_entropy_by_hand(tiny):
    model, tok = tiny
    docs = ReviewWorld(0).corpus(3)
    ids, att, mask = PretrainingBatches(tok, docs, 3, 128, seed=0).next()
    logits = model(input_ids=ids, attention_mask=att).logits
    nll, count = 0.0, 0
    for b in range(ids.shape[0]):
        n = int(att[b].sum())
        nll += F.cross_entropy(logits[b, :n - 1], ids[b, 1:n], reduction="sum").item()
        count += n - 1
    assert ptx_loss(model, ids, att, mask).item() == pytest.approx(nll / count, rel=1e-5)
    per_doc = [heldout_lm_loss(model, tok, [d]) for d in docs]
    lengths = [len(tok(d + tok.eos_token)["input_ids"]) - 1 for d in docs]
    assert heldout_lm_loss(model, tok, docs) == pytest.approx(
        sum(x * n for x, n in zip(per_doc, lengths)) / sum(lengths), rel=1e-5)


def test_the_pretraining_term_enters_the_update_and_the_history(tiny):
    prompts = ReviewWorld(0).prompts(8, kind="mixed", split="train")
    plain = PPOTrainer(SMALL, prompts)
    assert plain.ptx is None
    row = plain.iteration()
    assert "loss/ptx_avg" not in row
    mixed = PPOTrainer(replace(SMALL, ptx_coef=1.0, ptx_batch_size=4), prompts)
    row = mixed.iteration()
    assert math.isfinite(row["loss/ptx_avg"]) and 1.0 < row["loss/ptx_avg"] < 10.0
    # the same rollout and seed: the term changes the update
    assert any(not torch.equal(a, b) for a, b in zip(plain.policy.parameters(), mixed.policy.parameters()))
    with pytest.raises(ConfigError, match="ptx_coef"):
        replace(SMALL, ptx_coef=-1.0)


def test_a_large_gamma_lowers_the_pretraining_loss(tiny):
    """With gamma large the update is mostly language modelling: its loss on the documents falls."""
    prompts = ReviewWorld(0).prompts(8, kind="mixed", split="train")
    trainer = PPOTrainer(replace(SMALL, ptx_coef=20.0, ptx_batch_size=8, lr=1e-4, iterations=3), prompts)
    docs = ReviewWorld(5).corpus(64, split="val")
    before = heldout_lm_loss(trainer.policy, trainer.tokenizer, docs)
    hist = trainer.train(progress=False)
    after = heldout_lm_loss(trainer.policy, trainer.tokenizer, docs)
    assert len(hist) == 3 and after < before


def test_resume_continues_the_document_draws(tmp_path):
    prompts = ReviewWorld(0).prompts(8, kind="mixed", split="train")
    cfg = replace(SMALL, ptx_coef=0.5, ptx_batch_size=2, iterations=1)
    first = PPOTrainer(cfg, prompts)
    first.train(out_dir=tmp_path / "run", progress=False)
    resumed = PPOTrainer.resume(tmp_path / "run", iterations=2)
    assert torch.equal(resumed.ptx.generator.get_state(), first.ptx.generator.get_state())
