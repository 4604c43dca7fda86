"""The gpu presets' code paths, exercised on the CPU with a tiny GPT-2 config.

The gpu profile runs GPT-2 (124M) under bf16 autocast on CUDA. Here a 2-layer GPT-2 with the
same code (GPT2LMHeadModel, a PAD token of its own) stands in, saved to a folder the loaders
accept; the presets keep every setting but the model and the sizes. On the CPU `bf16=True` falls
back to float32; a second run forces CPU bf16 autocast to check that the log-probs, KL, values
and losses stay float32 where the code says they must.
"""
from dataclasses import replace

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_lab.rl.dpo import DPOConfig, train_dpo
from rlhf_lab.lm.models import load_tokenizer
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.reward.train import RewardConfig, train_reward_model
from rlhf_lab.reward.model import RewardModel
from rlhf_lab.world.reviews import ReviewWorld


@pytest.fixture(scope="module")
def small_gpt2(tmp_path_factory):
    """A randomly initialised 2-layer GPT-2 with the embedded model's tokenizer, saved like a checkpoint."""
    path = tmp_path_factory.mktemp("gpt2-small")
    tok = load_tokenizer("tiny")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=64, n_layer=2, n_head=2,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    rm = RewardModel.from_backbone(str(path), device="cpu")
    rm.save_pretrained(path / "rm")
    return str(path)


def test_reward_gpu_preset_runs_on_cpu(small_gpt2):
    cfg = replace(RewardConfig.gpu(), backbone=small_gpt2, device="cpu", prompts_per_batch=4, eval_every=10**9)
    records = load_preferences(labeler="sim-gold")[:12]
    rm, hist = train_reward_model(cfg, records, val_records=[], progress=False)
    assert hist.loss and all(torch.isfinite(torch.tensor(hist.loss)))


def test_dpo_gpu_preset_runs_on_cpu(small_gpt2):
    cfg = replace(DPOConfig.gpu(), model=small_gpt2, device="cpu", max_pairs=8, batch_size=4, epochs=1)
    _, hist = train_dpo(cfg, load_preferences(labeler="sim-gold")[:20], progress=False)
    assert len(hist.loss) == 2 and all(torch.isfinite(torch.tensor(hist.loss)))


@pytest.mark.parametrize("force_cpu_autocast", [False, True])
def test_ppo_gpu_preset_runs_on_cpu(small_gpt2, force_cpu_autocast):
    cfg = replace(PPOConfig.gpu(), model=small_gpt2, reward_model=small_gpt2 + "/rm", device="cpu",
                  batch_size=8, mini_batch_size=4, max_new_tokens=8)
    assert cfg.bf16    # the preset asks for bf16; on the CPU it is off unless forced below
    trainer = PPOTrainer(cfg, ReviewWorld(0).prompts(16))
    if force_cpu_autocast:
        trainer._autocast = lambda: torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    rows = [trainer.iteration() for _ in range(2)]
    r = trainer.rollout(ReviewWorld(0).prompts(4))
    for t in (r.logprobs, r.ref_logprobs, r.values, r.kl, r.rewards, r.advantages, r.returns):
        assert t.dtype == torch.float32          # what PPO subtracts and sums stays in float32
    assert all(torch.isfinite(torch.tensor(row["objective/kl"])) for row in rows)
    assert rows[0]["objective/kl"] == pytest.approx(0.0, abs=0.05 if force_cpu_autocast else 1e-4)


def test_compiled_generation_samples_what_eager_generation_does(small_gpt2):
    """The static cache and the compiled decode step (and the prompts' extra left padding) change no sample."""
    from rlhf_lab.config import set_seed
    from rlhf_lab.lm.generation import sample
    from rlhf_lab.lm.models import load_model

    model, tok = load_model(small_gpt2, role="reference")
    prompts = [p.text for p in ReviewWorld(0).prompts(3)]
    set_seed(0)
    eager = sample(model, tok, prompts, max_new_tokens=6, temperature=0.7)
    set_seed(0)
    compiled = sample(model, tok, prompts, max_new_tokens=6, temperature=0.7, compile=True)
    assert compiled.prompt_ids.shape[1] % 32 == 0
    assert compiled.completions == eager.completions
    torch.testing.assert_close(compiled.logprobs, eager.logprobs, atol=1e-5, rtol=1e-5)


def test_ppo_compile_all_runs_and_rejects_unknown_modes(small_gpt2):
    cfg = replace(PPOConfig.gpu(), model=small_gpt2, reward_model=small_gpt2 + "/rm", device="cpu",
                  batch_size=8, mini_batch_size=4, max_new_tokens=6, compile="all")
    row = PPOTrainer(cfg, ReviewWorld(0).prompts(16)).iteration()
    assert row["objective/kl"] == pytest.approx(0.0, abs=1e-4) and torch.isfinite(torch.tensor(row["loss/policy_avg"]))
    with pytest.raises(ValueError, match="compile must be one of"):
        replace(cfg, compile="yes")


def test_scalar_heads_stay_float32_inside_bf16_autocast():
    from rlhf_lab.config import bf16_autocast, float32_head

    head = torch.nn.Linear(64, 1)
    h = torch.randn(5, 64)
    want = head(h).squeeze(-1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        rounded = head(h).squeeze(-1)          # what autocast alone would give
        got = float32_head(head, h.bfloat16())
    assert got.dtype == torch.float32 and rounded.dtype == torch.bfloat16
    torch.testing.assert_close(got, head(h.bfloat16().float()).squeeze(-1))   # exact float32 maths on the input
    assert (rounded.float() - want).abs().max() > (got - head(h.bfloat16().float()).squeeze(-1)).abs().max()
    with bf16_autocast("cpu"):                  # on a CPU the kit's autocast is off
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
