import json
import os
import subprocess
import sys

import pytest
import torch

import rlhf_lab.cli.lm as cli_lm
from rlhf_lab.cli.main import main


def test_sample_prints_n_reviews_with_gold_scores(capsys):
    assert main(["sample", "--n", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("gold ") == 4  # three samples and the summary line
    assert "mean gold" in out


def test_sample_with_own_prompt(capsys):
    assert main(["sample", "--n", "2", "--prompt", "The soundtrack is", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("'The soundtrack is'") == 2


def test_unknown_model_is_a_clear_error_and_exit_code_2(capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["sample", "--model", "nobody/no-such-model", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "'tiny'" in err


def test_pretrain_demo_writes_under_runs_not_data(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path))
    assert main(["pretrain", "--size", "demo", "--steps", "3", "--device", "cpu"]) == 0
    meta = json.loads((tmp_path / "models" / "demo-upt" / "metadata.json").read_text())
    assert meta["steps"] == 3 and meta["command"].startswith("rlhf-lab")


def test_console_script_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "rlhf_lab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("pretrain", "sft", "sample", "label"):
        assert cmd in out.stdout
    assert "set RLHF_LAB_DEBUG=1 to see its full traceback" in " ".join(out.stdout.split())   # the epilog


def test_sft_takes_its_base_from_the_size_preset_unless_given(monkeypatch, tmp_path):
    import types

    seen = []

    def fake_sft(cfg, out_dir, command):   # records the base instead of training
        seen.append(cfg.base)
        return None, None, types.SimpleNamespace(val_loss=[1.0], wall_time_s=0.0)

    monkeypatch.setattr(cli_lm, "sft", fake_sft)
    for args, base in ((["--size", "gpt2"], "gpt2"), (["--size", "demo"], "tiny-base"),
                       (["--size", "gpt2", "--base", "runs/models/gpt2-upt"], "runs/models/gpt2-upt")):
        assert main(["sft", *args, "--out", str(tmp_path)]) == 0
        assert seen[-1] == base


def test_prepare_cpu_does_nothing_and_names_the_shipped_chain(capsys):
    assert main(["prepare", "--profile", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "shipped in data/; nothing to build" in out and "tiny-rm  [ready]" in out


def test_prepare_gpu_checks_its_base_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    assert main(["prepare", "--profile", "gpu", "--base", "runs/models/gpt2-upt"]) == 2
    err = capsys.readouterr().err
    assert "rlhf-lab prepare: error: model folder 'runs/models/gpt2-upt' does not exist" in err
    assert not (tmp_path / "runs" / "gpu").exists()                  # nothing was made
    assert main(["prepare", "--profile", "cpu", "--rebuild"]) == 2     # the cpu chain is shipped
    assert "make models" in capsys.readouterr().err


# ---- errors: one line for what the kit reports on purpose, the traceback on RLHF_LAB_DEBUG=1 --------

def test_a_kit_error_is_one_line_that_names_the_debug_switch(capsys, monkeypatch):
    monkeypatch.delenv("RLHF_LAB_DEBUG", raising=False)
    assert main(["sample", "--n", "0"]) == 2
    assert capsys.readouterr().err == ("rlhf-lab sample: error: --n must be at least 1, got 0 "
                                       "(set RLHF_LAB_DEBUG=1 for the traceback)\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_device_is_a_kit_error_too(capsys, monkeypatch):
    monkeypatch.delenv("RLHF_LAB_DEBUG", raising=False)
    assert main(["sample", "--n", "1", "--device", "cuda"]) == 2   # config.DeviceError, a RuntimeError of the kit's
    assert "no CUDA GPU is available" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1", "true"])
def test_rlhf_lab_debug_lets_the_error_through_with_its_traceback(value, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_DEBUG", value)
    with pytest.raises(ValueError, match="--n must be at least 1, got 0"):
        main(["sample", "--n", "0"])


def test_rlhf_lab_debug_prints_the_traceback_from_the_console():
    env = {**os.environ, "RLHF_LAB_DEBUG": "1"}
    out = subprocess.run([sys.executable, "-m", "rlhf_lab.cli", "sample", "--n", "0"], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1
    assert out.stderr.startswith("Traceback (most recent call last):")
    assert "in check_sampling_options" in out.stderr                       # where it was raised
    assert out.stderr.strip().endswith("ValueError: --n must be at least 1, got 0")


def test_a_bug_is_not_turned_into_one_line(monkeypatch, capsys):
    """A torch RuntimeError (a shape bug) is not an error the kit reports: it keeps its traceback."""
    monkeypatch.delenv("RLHF_LAB_DEBUG", raising=False)

    def shape_bug(*a, **k):
        return torch.zeros(2, 3) @ torch.zeros(2, 3)
    monkeypatch.setattr(cli_lm, "load_model", shape_bug)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        main(["sample", "--n", "1", "--device", "cpu"])
    assert "error:" not in capsys.readouterr().err
