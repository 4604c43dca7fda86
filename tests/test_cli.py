import json
import subprocess
import sys

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


def test_sft_takes_its_base_from_the_size_preset_unless_given(monkeypatch, tmp_path):
    import types

    import rlhf_lab.lm.pretrain as pt

    seen = []

    def fake_sft(cfg, out_dir, command):   # records the base instead of training
        seen.append(cfg.base)
        return None, None, types.SimpleNamespace(val_loss=[1.0], wall_time_s=0.0)

    monkeypatch.setattr(pt, "sft", fake_sft)
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
