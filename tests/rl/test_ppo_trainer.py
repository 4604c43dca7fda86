"""Seeded PPO runs on the embedded model: learning, resume, the NaN guard, the CLI."""
import json
import warnings

import pytest
import torch

from rlhf_lab.cli.main import main
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.rollout import PPOHistory, as_prompts
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.reward.model import load_reward_model
from rlhf_lab.world.reviews import ReviewWorld

PROMPTS = ReviewWorld(0).prompts(128, kind="mixed", split="train")


def small(**kw) -> PPOConfig:
    return PPOConfig(**{"batch_size": 16, "mini_batch_size": 8, "max_new_tokens": 16, "lr": 2e-4,
                        "device": "cpu", **kw})


def metrics(history: PPOHistory) -> list[dict]:
    """The rows without wall-clock times, which differ from run to run."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in history.rows]


def test_ten_iterations_raise_the_reward_model_score():
    trainer = PPOTrainer(small(batch_size=32, mini_batch_size=16, max_new_tokens=24), PROMPTS)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    hist = trainer.train(iterations=10, progress=False)
    scores = hist["objective/scores"]
    assert len(hist) == 10 and all(torch.isfinite(torch.tensor(scores)))
    assert sum(scores[-3:]) / 3 > sum(scores[:3]) / 3 + 0.3, scores
    assert hist["objective/kl"][0] == 0.0   # pi = pi_ref before the first update: exactly
    assert hist["objective/kl"][-1] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))
    assert all(not p.requires_grad for p in trainer.reference.parameters())
    for key in ("objective/gold", "objective/entropy", "policy/clipfrac_avg", "policy/approxkl_avg",
                "loss/value_avg", "val/explained_variance", "policy/ratio_avg", "response/length",
                "objective/kl_coef", "time/generate", "time/score", "time/learn"):
        assert len(hist[key]) == 10
    assert hist.samples[-1] and set(hist.samples[-1][0]) == {"prompt", "completion", "score", "gold"}


def test_resume_equals_uninterrupted(tmp_path):
    straight = PPOTrainer(small(), PROMPTS)
    straight.train(iterations=4, progress=False)

    first = PPOTrainer(small(checkpoint_every=2), PROMPTS)
    first.train(iterations=2, out_dir=tmp_path / "run", progress=False)
    del first
    resumed = PPOTrainer.resume(tmp_path / "run")
    assert len(resumed.history) == 2
    resumed.train(iterations=4, progress=False)
    assert metrics(resumed.history) == metrics(straight.history)
    for a, b in zip(resumed.policy.parameters(), straight.policy.parameters()):
        assert torch.equal(a, b)


def test_nan_reward_stops_with_clear_error_and_keeps_checkpoint(tmp_path):
    rm = load_reward_model(device="cpu")
    calls = {"n": 0}

    def flaky(prompts, completions):
        calls["n"] += 1
        scores = rm.score(prompts, completions, batch_size=len(prompts))
        if calls["n"] == 3:
            scores[5] = float("nan")
        return scores

    trainer = PPOTrainer(small(checkpoint_every=1), PROMPTS, reward_fn=flaky)
    with pytest.raises(FloatingPointError, match=r"nan for 1 of 16 responses at iteration 3.*after iteration 2\) is intact"):
        trainer.train(iterations=5, out_dir=tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(saved["rows"]) == 2
    assert not (tmp_path / "run.tmp").exists()
    resumed = PPOTrainer.resume(tmp_path / "run")           # the checkpoint still loads and continues
    resumed.train(iterations=3, progress=False)
    assert len(resumed.history) == 3


def test_separate_value_model_and_adaptive_kl():
    cfg = small(value_model="separate", adaptive_kl=True, kl_coef=0.2, target_kl=0.5, horizon=100)
    trainer = PPOTrainer(cfg, PROMPTS[:8])
    assert trainer.head is None and trainer.critic is not None
    hist = trainer.train(iterations=3, progress=False)
    betas = hist["objective/kl_coef"]
    assert betas[0] == 0.2 and betas[1] != betas[0]         # the controller moved beta after iteration 1
    assert trainer.kl_ctl.value != 0.2


def test_negative_kl_warns_with_cause():
    with pytest.warns(RuntimeWarning, match="top-k"):
        PPOTrainer._warn_negative_kl(torch.full((16,), -0.5) + 0.01 * torch.randn(16), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PPOTrainer._warn_negative_kl(torch.tensor([0.3, -0.2, 0.1, -0.1]), 3)   # noise around 0: no warning


def test_bad_inputs():
    with pytest.raises(ValueError, match="prompt 1"):
        as_prompts(["A fine prompt", ""])
    assert as_prompts(["My own prompt:"])[0].kind == "opening"
    with pytest.raises(FileNotFoundError, match="not a PPO checkpoint"):
        PPOTrainer.resume("/nonexistent/run")
    from rlhf_lab.lm.models import ModelLoadError, load_model
    with pytest.raises(ModelLoadError, match="no-such-rm"):
        load_reward_model("no-such-rm")
    reference, tok = load_model("tiny", role="reference")
    with pytest.raises(ValueError, match="frozen"):
        PPOTrainer(small(), PROMPTS, policy=reference, tokenizer=tok)


def test_cli_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "ppo"
    args = ["ppo", "--out", str(out), "--iterations", "1", "--batch-size", "8", "--mini-batch-size", "8",
            "--max-new-tokens", "12", "--n-prompts", "16", "--device", "cpu"]
    assert main(args) == 0
    assert "per iteration: generate" in capsys.readouterr().out
    assert main(args) == 2                                    # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert main(["ppo", "--out", str(out), "--resume", "--iterations", "2"]) == 0
    assert json.loads((out / "config.json").read_text())["iterations"] == 2
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 2
    assert main(["ppo", "--out", str(tmp_path / "none"), "--resume"]) == 2


def test_minibatch_trim_keeps_log_probs_and_values():
    """Dropping the columns that are padding in every row of a minibatch changes no number."""
    from rlhf_lab.rl.rollout import policy_forward, trim_minibatch

    trainer = PPOTrainer(small(), PROMPTS)
    torch.nn.init.normal_(trainer.head.weight)           # non-zero values, so they are compared too
    r = trainer.rollout(PROMPTS[:16])
    rows = torch.tensor([3, 7, 11])
    ids, attn, start, cols = trim_minibatch(r, rows)
    keep = r.attention_mask[rows].bool().any(0)        # the columns some row of the minibatch attends to
    assert ids.shape[1] == int(keep.sum()) < r.input_ids.shape[1], (ids.shape, int(keep.sum()))
    assert torch.equal(attn, r.attention_mask[rows][:, keep]) and torch.equal(ids, r.input_ids[rows][:, keep])
    with torch.no_grad():
        full = policy_forward(trainer.policy, r.input_ids[rows], r.attention_mask[rows], r.start, 0.7, trainer.head)
        cut = policy_forward(trainer.policy, ids, attn, start, 0.7, trainer.head)
    m = r.mask[rows][:, cols]
    torch.testing.assert_close(cut[0] * m, (full[0] * r.mask[rows])[:, cols], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cut[1] * m, (full[1] * r.mask[rows])[:, cols], atol=1e-5, rtol=1e-5)
    # the rollout's old log-probs come from the same forward: the first ratio is 1
    torch.testing.assert_close(cut[0] * m, r.logprobs[rows][:, cols], atol=1e-5, rtol=1e-5)


def test_evaluate_policy_reports_kl_zero_for_the_reference_itself():
    from rlhf_lab.evaluation import evaluate_policy
    from rlhf_lab.lm.models import load_model

    ref, tok = load_model("tiny", role="reference")
    prompts = ReviewWorld(0).prompts(8, kind="mixed", split="test")
    out = evaluate_policy(ref, ref, tok, prompts, max_new_tokens=16)
    assert abs(out["kl"]) < 1e-4 and len(out["completions"]) == 8
    assert set(out["by_kind"]) == {"opening", "instruction"}


def test_minibatches_by_length_cover_every_episode_once_per_epoch():
    from dataclasses import replace

    trainer = PPOTrainer(replace(small(), group_by_length=True), PROMPTS)
    r = trainer.rollout(PROMPTS[:trainer.cfg.batch_size])
    batches = trainer.minibatches(r)
    per_epoch = trainer.cfg.batch_size // trainer.cfg.mini_batch_size
    assert len(batches) == trainer.cfg.ppo_epochs * per_epoch
    for e in range(trainer.cfg.ppo_epochs):
        epoch = batches[e * per_epoch:(e + 1) * per_epoch]
        assert sorted(i for b in epoch for i in b) == list(range(trainer.cfg.batch_size))
        # sorted by length: no two minibatches overlap in response length beyond a shared boundary value
        spans = sorted((min(r.response_lengths[i] for i in b), max(r.response_lengths[i] for i in b)) for b in epoch)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert r.response_lengths == r.mask.sum(-1).long().tolist()
