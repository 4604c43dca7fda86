"""Careless students and hostile files (issue 17): NaN caught before any save, every value checked
before any work, clear errors for damaged files, and artefacts refused where they do not belong.
Item numbers refer to the issue; items 1, 2 and 7's saves are in test_artefacts.py, 3 and 5 in
test_preferences.py."""
import json
import math
import shutil
import socket

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM

import rlhf_lab.lm.pretrain as pretrain_module
from rlhf_lab.utils.artefacts import ArtefactError
from rlhf_lab.cli.main import main
from rlhf_lab.config import ConfigError
from rlhf_lab.rl.dpo import DPOConfig
from rlhf_lab.lm.models import ModelLoadError, load_model
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.labels.store import PreferenceStore
from rlhf_lab.labels.preferences import load_preferences, prompt_split
from rlhf_lab.reward.train import RewardConfig
from rlhf_lab.reward.model import load_reward_model
from rlhf_lab.world.reviews import ReviewWorld

PROMPTS = ReviewWorld(0).prompts(64, kind="mixed", split="train")


def small(**kw) -> PPOConfig:
    return PPOConfig(**{"batch_size": 16, "mini_batch_size": 8, "max_new_tokens": 12, "device": "cpu", **kw})


@pytest.fixture
def no_compute(monkeypatch):
    """Any model load or training run fails the test: errors must come before any work."""
    def boom(*a, **k):
        raise AssertionError("a model was loaded or trained before the bad value was reported")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", boom)
    monkeypatch.setattr(AutoModel, "from_pretrained", boom)
    monkeypatch.setattr(pretrain_module, "_fit", boom)


def one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err, err
    for w in words:
        assert w in err, (w, err)
    return err


# ---- item 4: non-finite gradients and parameters stop PPO before any save ------------------

def test_nan_gradient_with_a_finite_loss_stops_before_the_checkpoint(tmp_path, monkeypatch):
    """Today's code saved a checkpoint of NaN weights over the good one when the last minibatch's
    gradient was NaN (its loss was finite), and --resume then failed in sampling."""
    real_learn, calls = PPOTrainer.learn, {"n": 0}

    def learn(self, r):
        calls["n"] += 1
        if calls["n"] == 3:   # iteration 3: the gradient of the last of its 8 minibatch steps is NaN
            steps = self.cfg.ppo_epochs * self.cfg.batch_size // self.cfg.mini_batch_size
            seen = {"n": 0}

            def poison(grad):
                seen["n"] += 1
                return grad * float("nan") if seen["n"] == steps else grad
            handle = next(self.policy.parameters()).register_hook(poison)
            try:
                return real_learn(self, r)
            finally:
                handle.remove()
        return real_learn(self, r)
    monkeypatch.setattr(PPOTrainer, "learn", learn)
    trainer = PPOTrainer(small(checkpoint_every=1), PROMPTS)
    with pytest.raises(FloatingPointError, match=r"gradient norm is nan at iteration 3, minibatch step 8 of 8.*"
                                                 r"after iteration 2\) is intact"):
        trainer.train(iterations=5, out_dir=tmp_path / "run", progress=False)
    monkeypatch.setattr(PPOTrainer, "learn", real_learn)
    resumed = PPOTrainer.resume(tmp_path / "run")              # the good checkpoint of iteration 2
    assert len(resumed.history) == 2
    assert all(torch.isfinite(p).all() for p in resumed.policy.parameters())
    resumed.train(iterations=3, progress=False)
    assert math.isfinite(resumed.history["objective/kl"][-1])


def test_save_refuses_non_finite_parameters_and_keeps_the_last_checkpoint(tmp_path):
    trainer = PPOTrainer(small(), PROMPTS)
    trainer.train(iterations=1, out_dir=tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "policy" / "model.safetensors").read_bytes()
    with torch.no_grad():
        trainer.head.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="value function's parameter weight is not finite"):
        trainer.save(tmp_path / "run")
    assert (tmp_path / "run" / "policy" / "model.safetensors").read_bytes() == before


def test_lr_inf_and_nan_fields_are_refused_up_front(capsys, no_compute):
    assert main(["ppo", "--lr", "inf"]) == 2
    one_line_error(capsys, "PPOConfig.lr", "inf")
    assert main(["ppo", "--ent-coef", "nan"]) == 2
    one_line_error(capsys, "PPOConfig.ent_coef", "nan")


# ---- item 6: every value checked before any work -------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["pretrain", "--size", "demo", "--steps", "0"], ["PretrainConfig.steps", "got 0"]),
    (["pretrain", "--size", "demo", "--steps", "-5"], ["PretrainConfig.steps", "got -5"]),
    (["sft", "--size", "demo", "--steps", "0"], ["SFTConfig.steps", "got 0"]),
    (["reward", "--epochs", "0"], ["RewardConfig.epochs", "got 0"]),
    (["reward-ensemble", "--epochs", "0"], ["RewardConfig.epochs", "got 0"]),
    (["reward-ensemble", "--members", "1"], ["--members", "got 1", "rlhf-lab reward"]),
    (["reward-ensemble", "--members", "-3"], ["--members", "got -3"]),
    (["reward-ensemble", "--lam", "-1"], ["--lam", "got -1"]),
    (["reward-ensemble", "--lam", "nan"], ["--lam", "got nan"]),
    (["reward-ensemble", "--labeler", "sim-nobody"], ["no rankings by labeler 'sim-nobody'", "--labeler all"]),
    (["ppo", "--mini-batch-size", "0"], ["PPOConfig.mini_batch_size", "got 0"]),
    (["ppo", "--ppo-epochs", "0"], ["PPOConfig.ppo_epochs", "got 0"]),
    (["ppo", "--batch-size", "0"], ["PPOConfig.batch_size", "got 0"]),
    (["ppo", "--batch-size", "-4"], ["PPOConfig.batch_size", "got -4"]),
    (["ppo", "--batch-size", "12", "--mini-batch-size", "8"], ["multiple of mini_batch_size"]),
    (["ppo", "--kl-coef", "-1"], ["PPOConfig.kl_coef", "got -1"]),
    (["ppo", "--cliprange", "-1"], ["PPOConfig.cliprange", "got -1"]),
    (["ppo", "--lam", "2"], ["PPOConfig.lam", "got 2"]),
    (["ppo", "--score-clip", "-1"], ["PPOConfig.score_clip", "got -1"]),
    (["ppo", "--ent-coef", "nan"], ["PPOConfig.ent_coef", "got nan"]),
    (["ppo", "--iterations", "0"], ["PPOConfig.iterations", "got 0"]),
    (["ppo", "--temperature", "0"], ["PPOConfig.temperature", "got 0"]),
    (["sample", "--max-new-tokens", "0"], ["--max-new-tokens"]),
    (["label", "--simulated", "--n-prompts", "0"], ["--n-prompts"]),
])
def test_bad_values_are_one_line_errors_with_exit_2_before_any_model_is_loaded(argv, words, capsys, no_compute):
    """Today's code ran the preset's steps for --steps 0, divided by zero for --steps -5, saved an
    untrained model for --epochs 0, and accepted a negative kl_coef, cliprange or score_clip."""
    assert main(argv) == 2
    one_line_error(capsys, *words)


@pytest.mark.parametrize("make, words", [
    (lambda: DPOConfig(batch_size=0), "DPOConfig.batch_size"),
    (lambda: DPOConfig(eval_every=0), "DPOConfig.eval_every"),
    (lambda: DPOConfig(max_pairs=-1), "DPOConfig.max_pairs"),
    (lambda: DPOConfig(beta=float("nan")), "DPOConfig.beta"),
    (lambda: RewardConfig(prompts_per_batch=0), "RewardConfig.prompts_per_batch"),
    (lambda: RewardConfig(val_fraction=1.0), "RewardConfig.val_fraction"),
    (lambda: RewardConfig(lr=-1e-4), "RewardConfig.lr"),
    (lambda: PPOConfig(horizon=0), "PPOConfig.horizon"),
    (lambda: PPOConfig(batch_size=True), "PPOConfig.batch_size"),
    (lambda: PPOConfig(seed=-1), "PPOConfig.seed"),
    (lambda: pretrain_module.PretrainConfig(n_embd=100, n_head=3), "multiple of n_head"),
])
def test_configs_validate_on_construction(make, words):
    """Through the API, DPO batch_size=0 and eval_every=0 and reward prompts_per_batch=0 divided by
    zero; max_pairs=-1 silently dropped a pair."""
    with pytest.raises(ConfigError, match=words):
        make()


# ---- item 7: outputs checked first -----------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["pretrain", "--size", "demo"], ["sft", "--size", "demo"], ["reward"], ["ppo"], ["label", "--simulated"],
])
def test_an_output_under_a_regular_file_is_refused_before_any_work(argv, tmp_path, capsys, no_compute):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main([*argv, "--out", str(blocker / "out")]) == 2
    one_line_error(capsys, str(blocker), "is a file, not a folder")


def test_an_unwritable_output_is_refused_before_any_work(capsys, no_compute):
    assert main(["reward", "--out", "/proc/rlhf-lab/rm"]) == 2        # even root cannot write there
    one_line_error(capsys, "/proc/rlhf-lab/rm", "cannot be written")


# ---- item 8: label paths and small files -----------------------------------------------------

def test_label_paths_are_checked(tmp_path, capsys, no_compute):
    assert main(["reward", "--labels", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "rm")]) == 2
    one_line_error(capsys, "nope.jsonl not found")
    assert main(["reward", "--labels", str(tmp_path), "--out", str(tmp_path / "rm")]) == 2
    one_line_error(capsys, "is a folder, not a preference file")


def test_a_small_label_file_still_gets_a_validation_prompt(tmp_path, capsys):
    """Today's code trained on three prompts that the hash split all put in training, then failed
    with IndexError on hist.val_accuracy[-1] and saved nothing."""
    records = [r for r in load_preferences(labeler="sim-gold") if prompt_split(r.prompt_id, 0.2) == "train"][:3]
    labels = tmp_path / "three.jsonl"
    PreferenceStore(labels).extend(records)
    assert main(["reward", "--labels", str(labels), "--epochs", "1", "--out", str(tmp_path / "rm"),
                 "--device", "cpu"]) == 0
    assert "validation accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "rm" / "reward_config.json").read_text())["val_accuracy"] is not None


# ---- item 9: a reward model is not a policy (and the reverse) --------------------------------

@pytest.mark.parametrize("argv", [
    ["sample", "--model", "data/models/tiny-rm"], ["sample", "--model", "tiny-rm"],
    ["ppo", "--model", "data/models/tiny-rm"], ["sft", "--size", "demo", "--base", "data/models/tiny-rm"],
])
def test_a_reward_model_is_refused_as_a_policy(argv, tmp_path, capsys, monkeypatch):
    from rlhf_lab.config import repo_root

    monkeypatch.chdir(repo_root())
    assert main([*argv, "--out", str(tmp_path / "out")] if argv[0] != "sample" else argv) == 2
    one_line_error(capsys, "reward model", "not a policy" if "tiny-rm" == argv[-1] else "a policy is")


def test_a_policy_or_checkpoint_is_refused_as_a_reward_model(tmp_path):
    with pytest.raises(ModelLoadError, match="it is a policy"):
        load_reward_model("data/models/tiny-sft")
    trainer = PPOTrainer(small(), PROMPTS)
    trainer.save(tmp_path / "run")
    with pytest.raises(ModelLoadError, match="it is a PPO checkpoint"):
        load_reward_model(str(tmp_path / "run"))
    with pytest.raises(ModelLoadError, match="is a PPO checkpoint; its policy is"):
        load_model(str(tmp_path / "run"))
    load_model(str(tmp_path / "run" / "policy"))               # the policy inside loads


# ---- item 10: damaged checkpoints on --resume --------------------------------------------------

class NotATensor:
    """Anything that is not plain tensors and containers: weights_only must refuse it."""


def _damage(folder, how):
    if how.startswith("truncate "):
        path = folder / how.split()[1]
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif how == "unknown field":
        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**cfg, "learning_rate": 1e-4}))
    elif how == "pickle":
        torch.save({"optimizer": NotATensor()}, folder / "trainer_state.pt")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    PPOTrainer(small(), PROMPTS).train(iterations=1, out_dir=out, progress=False)
    return out


@pytest.mark.parametrize("how, words", [
    ("truncate history.json", r"history.json is damaged \(not valid JSON"),
    ("truncate config.json", r"config.json is damaged \(not valid JSON"),
    ("truncate prompts.json", r"prompts.json is damaged \(not valid JSON"),
    ("truncate value.safetensors", r"value.safetensors could not be read"),
    ("truncate trainer_state.pt", r"trainer_state.pt could not be read: it is cut short or damaged"),
    ("unknown field", r"config.json: unknown field\(s\) \['learning_rate'\]"),
    ("pickle", r"trainer_state.pt could not be read: it holds pickled Python objects"),
])
def test_damaged_checkpoints_are_named_on_resume(checkpoint, tmp_path, how, words, capsys, no_compute):
    """Today: 'Unterminated string ... column 43' without the file's name, or tracebacks."""
    run = tmp_path / "run"
    shutil.copytree(checkpoint, run)
    _damage(run, how)
    with pytest.raises(ArtefactError, match=words):
        PPOTrainer.resume(run)
    assert main(["ppo", "--resume", "--out", str(run)]) == 2
    one_line_error(capsys, str(run))


def test_a_checkpoint_of_diverged_weights_is_refused_on_resume(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(checkpoint, run)
    weights = load_file(run / "policy" / "model.safetensors")
    weights = {k: torch.full_like(v, float("nan")) for k, v in weights.items()}
    save_file(weights, run / "policy" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ArtefactError, match="not finite; this checkpoint was saved after training diverged"):
        PPOTrainer.resume(run)


# ---- item 11: names without a network attempt ---------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("tiny-sf", "did you mean 'tiny-sft'"), ("tinyy", "did you mean 'tiny'"),
    ("my model", "neither a shipped model"), ("runs/no-such-model", "does not exist"),
    ("gpt2.safetensors", "neither a shipped model"),
])
def test_a_mistyped_model_name_fails_at_once_without_the_network(name, words, capsys, monkeypatch):
    attempts = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: attempts.append(a) or (_ for _ in ()).throw(OSError))
    assert main(["sample", "--model", name, "--device", "cpu"]) == 2
    one_line_error(capsys, words, "'tiny'")
    assert attempts == []


def test_a_model_with_a_non_finite_parameter_is_never_saved(tmp_path):
    """The save-time half of the guard: a diverged policy or reward model leaves no folder behind."""
    from rlhf_lab.lm.models import load_model, save_policy
    from rlhf_lab.reward.model import load_reward_model

    policy, tok = load_model("tiny", role="policy", device="cpu")
    with torch.no_grad():
        next(policy.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"the policy's parameter \S+ is not finite when saving to .*not saved"):
        save_policy(policy, tok, tmp_path / "policy")
    rm = load_reward_model("tiny-rm", device="cpu")
    with torch.no_grad():
        next(rm.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"the reward model's parameter \S+ is not finite when saving"):
        rm.save_pretrained(tmp_path / "rm")
    assert not any(tmp_path.iterdir())
