"""Seeded smoke runs of RLOO, GRPO and Dr. GRPO on the embedded model, checkpoints and resume."""
import json
from dataclasses import replace

import pytest
import torch

from rlhf_lab.config import ConfigError
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.world.reviews import ReviewWorld


def _cfg(algo, **kw):
    return replace(GroupConfig.tiny(algo), iterations=2, batch_size=8, mini_batch_size=4, num_iterations=2,
                   max_new_tokens=12, device="cpu", **kw)


@pytest.fixture(scope="module")
def prompts():
    return ReviewWorld(0).prompts(32, kind="mixed", split="train")


@pytest.mark.parametrize("algo", ["rloo", "grpo", "dr_grpo"])
def test_a_short_run_is_finite_moves_the_policy_and_logs_groups(algo, prompts):
    cfg = _cfg(algo)
    trainer = GroupTrainer(cfg, prompts)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    hist = trainer.train(progress=False)
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(v)) for row in hist.rows for v in row.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))
    assert hist.rows[0]["objective/kl"] == 0.0                     # the first batch: policy == reference
    assert hist.rows[0]["policy/ratio_avg"] == pytest.approx(1.0, abs=0.05)
    assert 0 <= hist.rows[-1]["frac_reward_zero_std"] <= 1
    # prompts come in groups of K: every group of the rollout shares one prompt
    assert cfg.batch_size // cfg.num_generations == 2


def test_groups_share_a_prompt_and_advantages_sum_to_zero(prompts):
    cfg = _cfg("dr_grpo", beta=0.0)
    trainer = GroupTrainer(cfg, prompts)
    k = cfg.num_generations
    batch = [prompts[3]] * k + [prompts[5]] * k
    r = trainer.rollout(batch)
    adv = r.advantages                                                  # one per response, no values or returns
    assert adv.shape == (2 * k,) and not hasattr(r, "values") and not hasattr(r, "returns")
    torch.testing.assert_close(adv.view(-1, k).sum(-1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(adv.view(-1, k), r.scores.view(-1, k) - r.scores.view(-1, k).mean(-1, keepdim=True))
    mb = trainer.minibatches(r)
    assert all(sorted(b) == sorted(set(b)) and all(i // k == b[0] // k for i in b[:k]) for b in mb)


def test_gold_rises_over_a_longer_seeded_grpo_run(prompts):
    cfg = replace(_cfg("grpo"), iterations=8, batch_size=16, mini_batch_size=8, max_new_tokens=24)
    hist = GroupTrainer(cfg, prompts).train(progress=False)
    first, last = hist["objective/scores"][:2], hist["objective/scores"][-2:]
    assert sum(last) / 2 > sum(first) / 2                         # the reward model's score rises


def test_resume_equals_an_uninterrupted_run(tmp_path, prompts):
    cfg = replace(_cfg("rloo"), iterations=3, checkpoint_every=1)
    full = GroupTrainer(cfg, prompts).train(progress=False)
    GroupTrainer(cfg, prompts).train(iterations=2, out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "value.safetensors").exists()          # no critic, no value file
    assert json.loads((tmp_path / "run" / "config.json").read_text())["algo"] == "rloo"
    resumed = GroupTrainer.resume(tmp_path / "run")
    hist = resumed.train(progress=False)
    for a, b in zip(full.rows, hist.rows):
        assert {k: v for k, v in a.items() if not k.startswith("time/")} == pytest.approx(
            {k: v for k, v in b.items() if not k.startswith("time/")}, rel=1e-5, abs=1e-6)


def test_config_values_are_checked_up_front():
    with pytest.raises(ConfigError, match="num_generations must be at least 2"):
        GroupConfig(num_generations=1)
    with pytest.raises(ConfigError, match=r"batch_size \(30\) must be a multiple of num_generations \(4\)"):
        GroupConfig(batch_size=30)
    with pytest.raises(ConfigError, match="GroupConfig.loss_type must be one of"):
        GroupConfig(loss_type="token")
    with pytest.raises(ConfigError, match="algo must be one of"):
        GroupConfig.tiny("ppo")
    assert GroupConfig.tiny("dr_grpo").advantage == "dr_grpo" and GroupConfig.tiny("rloo").advantage == "rloo"


def test_cli_trains_resumes_and_refuses_another_algorithms_run(tmp_path, capsys):
    from rlhf_lab.cli.main import main

    out = str(tmp_path / "grpo")
    small = ["--iterations", "1", "--batch-size", "8", "--mini-batch-size", "4", "--max-new-tokens", "8",
             "--num-iterations", "1", "--device", "cpu", "--out", out]
    assert main(["grpo", *small, "--no-scale-rewards", "--loss-type", "dr_grpo"]) == 0
    assert "checkpoint in" in capsys.readouterr().out
    saved = json.loads((tmp_path / "grpo" / "config.json").read_text())
    assert (saved["algo"], saved["scale_rewards"], saved["loss_type"]) == ("grpo", False, "dr_grpo")
    assert main(["grpo", "--resume", "--out", out, "--iterations", "2"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "grpo" / "history.json").read_text())["rows"]) == 2
    assert main(["rloo", "--resume", "--out", out]) == 2
    assert "holds a grpo run; resume it with `rlhf-lab grpo --resume" in capsys.readouterr().err
    assert main(["rloo", "--batch-size", "30", "--out", str(tmp_path / "x")]) == 2     # checked before any load
    assert "multiple of num_generations" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_the_verifier_is_a_reward_function_the_trainer_takes():
    """A reward function that returns a list of floats (TRL's form), here the spec verifier: all-fail groups
    give zero-std rows, and the run stays finite."""
    from rlhf_lab.world.specs import SpecReward, specs

    spec_list = specs(8, "train")
    cfg = _cfg("grpo", beta=0.0, unfinished_score=None)      # the verifier fails an unfinished review itself
    trainer = GroupTrainer(cfg, [s.prompt for s in spec_list], reward_fn=SpecReward())
    hist = trainer.train(iterations=1, progress=False)
    assert 0.0 <= hist.rows[0]["objective/scores"] <= 1.0
    assert hist.rows[0]["frac_reward_zero_std"] > 0                  # the tiny model fails most specs outright
