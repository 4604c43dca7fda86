"""RL and rejection sampling on the verifier (notebook 09): seeded smoke runs, resume, the CLI."""
import copy
import json
from dataclasses import replace

import pytest
import torch

from rlhf_lab.config import ConfigError
from rlhf_lab.lm.finetune import FineTuneConfig, fine_tune
from rlhf_lab.lm.models import load_model
from rlhf_lab.lm.pretrain import History
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.rl.rejection_sampling import RFTConfig, rejection_sampling_finetune, sample_verdicts
from rlhf_lab.world.specs import SpecReward, demonstrations, specs, verify


@pytest.fixture(scope="module")
def spec_model():
    """The embedded SFT model after a short spec-form fine-tuning (60 steps: about 12 s on 2 cores)."""
    model, tok = load_model("tiny", role="policy")
    fine_tune(model, tok, demonstrations(600), FineTuneConfig(steps=60), progress=False)
    return model, tok


def _grpo(**kw):
    return replace(GroupConfig.tiny("grpo"), reward_model="verifier", beta=0.0, loss_type="dapo", num_generations=8,
                   batch_size=32, mini_batch_size=16, max_new_tokens=32, unfinished_score=None, device="cpu", **kw)


def test_grpo_on_the_verifier_raises_the_pass_rate(spec_model):
    model, tok = spec_model
    train = specs(256, "train")
    trainer = GroupTrainer(_grpo(iterations=12), [s.prompt for s in train], policy=copy.deepcopy(model), tokenizer=tok,
                           reference=copy.deepcopy(model))
    hist = trainer.train(progress=False)
    rate = hist["objective/scores"]
    assert sum(rate[-4:]) / 4 > sum(rate[:4]) / 4 + 0.05, rate         # seeded: the verifier's pass rate rises
    for row in hist.rows:   # the zero-std groups are the all-pass and the all-fail ones
        assert row["groups/all_pass"] + row["groups/all_fail"] == pytest.approx(row["frac_reward_zero_std"])


def test_a_resumed_verifier_run_equals_an_uninterrupted_one(tmp_path):
    cfg = replace(_grpo(iterations=3, checkpoint_every=1), batch_size=16, num_iterations=1, max_new_tokens=12)
    prompts = [s.prompt for s in specs(16, "train")]
    full = GroupTrainer(cfg, prompts).train(progress=False)
    GroupTrainer(cfg, prompts).train(iterations=2, out_dir=tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["reward_model"] == "verifier"
    hist = GroupTrainer.resume(tmp_path / "run").train(progress=False)    # the verifier comes back by name
    for a, b in zip(full.rows, hist.rows):
        assert {k: v for k, v in a.items() if not k.startswith("time/")} == pytest.approx(
            {k: v for k, v in b.items() if not k.startswith("time/")}, rel=1e-5, abs=1e-6)


def test_rejection_sampling_fine_tunes_on_the_passing_samples_only(spec_model, monkeypatch):
    model, tok = spec_model
    seen = []
    monkeypatch.setattr("rlhf_lab.rl.rejection_sampling.fine_tune",
                        lambda m, t, pairs, *a, **k: seen.append(pairs) or fine_tune(m, t, pairs, *a, **k))
    train = specs(32, "train")
    cfg = RFTConfig(rounds=2, prompts_per_round=8, num_generations=4, max_new_tokens=32)
    rows = rejection_sampling_finetune(train, cfg, copy.deepcopy(model), tok, progress=False)
    assert [r["episodes"] for r in rows] == [32, 64] and len(seen) == sum(r["kept"] > 0 for r in rows)
    by_text = {s.text: s for s in train}
    for pairs, row in zip(seen, [r for r in rows if r["kept"]]):
        assert len(pairs) == row["kept"] == round(row["pass_rate"] * 32)
        assert all(verify(by_text[p], c).passed for p, c in pairs)       # nothing that failed is kept


def test_the_random_control_keeps_as_many_but_not_only_passing_ones(spec_model, monkeypatch):
    model, tok = spec_model
    seen = []
    monkeypatch.setattr("rlhf_lab.rl.rejection_sampling.fine_tune",
                        lambda m, t, pairs, *a, **k: seen.append(pairs) or History(loss=[0.0]))
    train = specs(32, "train")
    cfg = RFTConfig(rounds=1, prompts_per_round=16, num_generations=8, max_new_tokens=32, select="random")
    rows = rejection_sampling_finetune(train, cfg, copy.deepcopy(model), tok, progress=False)
    by_text = {s.text: s for s in train}
    assert len(seen[0]) == rows[0]["kept"] == round(rows[0]["pass_rate"] * 128) > 0
    assert not all(verify(by_text[p], c).passed for p, c in seen[0])     # the selection is what differs


def test_sample_verdicts_is_seeded_and_leaves_the_callers_random_stream_alone(spec_model):
    model, tok = spec_model
    few = specs(3, "test")
    torch.manual_seed(5)
    a = sample_verdicts(model, tok, few, 4, max_new_tokens=16, seed=1)
    after = torch.rand(1)
    torch.manual_seed(5)
    b = sample_verdicts(model, tok, few, 4, max_new_tokens=16, seed=1)
    assert torch.rand(1) == after and a["completions"] == b["completions"]
    assert a["passed"].shape == (3, 4) and torch.equal(a["passed"], torch.stack(list(a["checks"].values())).all(0))
    assert all(a["passed"][i, j] == verify(few[i], a["completions"][i][j]).passed for i in range(3) for j in range(4))


@pytest.mark.parametrize("kw, message", [({"rounds": 0}, "RFTConfig.rounds must be"),
                                         ({"select": "best"}, "RFTConfig.select must be one of"),
                                         ({"epochs": 0.0}, "RFTConfig.epochs must be")])
def test_rft_options_are_checked_up_front(kw, message):
    with pytest.raises(ConfigError, match=message):
        RFTConfig(**kw)


def test_more_prompts_per_round_than_specs_is_named(spec_model):
    with pytest.raises(ConfigError, match=r"prompts_per_round \(40\) is more than the 8 specifications"):
        rejection_sampling_finetune(specs(8, "train"), RFTConfig(), *spec_model, progress=False)


def test_fine_tune_refuses_empty_or_malformed_pairs(spec_model):
    model, tok = spec_model
    with pytest.raises(ConfigError, match="no .prompt, completion. pairs"):
        fine_tune(model, tok, [], progress=False)
    with pytest.raises(ConfigError, match="pair 1 is not a"):
        fine_tune(model, tok, [("a", "b"), ("a", "  ")], progress=False)
    with pytest.raises(ConfigError, match="FineTuneConfig.steps must be"):
        FineTuneConfig(steps=0)


def test_cli_spec_sft_rft_and_grpo_on_the_verifier(tmp_path, capsys):
    from rlhf_lab.cli.main import main

    sft = str(tmp_path / "spec_sft")
    assert main(["spec-sft", "--steps", "2", "--n-demos", "16", "--out", sft]) == 0
    assert "held-out specifications" in capsys.readouterr().out
    meta = json.loads((tmp_path / "spec_sft" / "metadata.json").read_text())
    assert meta["n_demos"] == 16 and set(meta["held_out_pass_rate"]) == {"before", "after"}
    assert main(["rft", "--model", sft, "--rounds", "1", "--prompts-per-round", "4", "--num-generations", "2",
                 "--max-new-tokens", "8", "--n-prompts", "8", "--out", str(tmp_path / "rft")]) == 0
    assert "round 1: pass rate" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "rft" / "metadata.json").read_text())["rounds"]) == 1
    assert main(["rft", "--model", sft, "--rounds", "1", "--prompts-per-round", "4", "--num-generations", "2",
                 "--max-new-tokens", "8", "--n-prompts", "8", "--select", "random", "--match", str(tmp_path / "rft"),
                 "--out", str(tmp_path / "rft-random")]) == 0
    kept = [json.loads((tmp_path / d / "metadata.json").read_text())["rounds"][0]["kept"] for d in ("rft", "rft-random")]
    assert kept[0] == kept[1]
    capsys.readouterr()
    assert main(["rft", "--model", sft, "--rounds", "2", "--select", "random", "--match", str(tmp_path / "rft"),
                 "--n-prompts", "80", "--out", str(tmp_path / "x")]) == 2
    assert "as many rounds as the matched run (1)" in capsys.readouterr().err
    assert main(["grpo", "--model", sft, "--reward-model", "verifier", "--iterations", "1", "--batch-size", "8",
                 "--mini-batch-size", "4", "--max-new-tokens", "8", "--num-iterations", "1", "--device", "cpu",
                 "--unfinished-score", "none", "--out", str(tmp_path / "grpo")]) == 0
    assert "objective/scores" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["rft", "--select", "best"], "RFTConfig.select must be one of"),
    (["rft", "--n-prompts", "4"], "--prompts-per-round (40) is more than --n-prompts (4)"),
    (["spec-sft", "--n-demos", "0"], "--n-demos must be at least 1"),
    (["spec-sft", "--lr", "-1"], "FineTuneConfig.lr must be"),
    (["grpo", "--reward-model", "verifier", "--prompt", "Write a review of the plot."], "not a specification"),
])
def test_cli_refuses_bad_options_before_any_work(argv, message, tmp_path, capsys):
    from rlhf_lab.cli.main import main

    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_trl_grpo_takes_the_verifier_as_a_reward_function(tmp_path):
    pytest.importorskip("trl", reason="the trl extra (pip install -e '.[trl]'); CI installs it")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    policy, tok = load_model("tiny", role="policy")
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_steps=1,
                      max_completion_length=8, temperature=0.7, learning_rate=1e-4, report_to=[], use_cpu=True,
                      bf16=False, gradient_checkpointing=False, save_strategy="no", logging_steps=1, disable_tqdm=True)
    trainer = GRPOTrainer(model=policy, reward_funcs=[SpecReward()], args=args, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": [s.text for s in specs(4, "train")]}))
    trainer.train()
    logged = trainer.state.log_history[0]
    assert trainer.state.global_step == 1 and 0.0 <= logged["rewards/verifier/mean"] <= 1.0


def test_the_matched_control_keeps_the_selected_runs_counts_round_by_round(spec_model, monkeypatch):
    model, tok = spec_model
    seen = []
    monkeypatch.setattr("rlhf_lab.rl.rejection_sampling.fine_tune",
                        lambda m, t, pairs, *a, **k: seen.append(pairs) or History(loss=[0.0]))
    cfg = RFTConfig(rounds=2, prompts_per_round=8, num_generations=4, max_new_tokens=16, select="random")
    rows = rejection_sampling_finetune(specs(16, "train"), cfg, copy.deepcopy(model), tok, progress=False, match=[5, 11])
    assert [r["kept"] for r in rows] == [5, 11] and [len(p) for p in seen] == [5, 11]
    assert [r["steps"] for r in rows] == [2, 3]                     # ceil(4 epochs x kept / 16), as the selected run's
    with pytest.raises(ConfigError, match="one per round"):
        rejection_sampling_finetune(specs(16, "train"), cfg, model, tok, progress=False, match=[5])
    with pytest.raises(ConfigError, match="select='random'"):
        rejection_sampling_finetune(specs(16, "train"), replace(cfg, select="passing"), model, tok, match=[5, 11])
