import random

import numpy as np
import pytest
import torch

import rlhf_lab.config as config
from rlhf_lab.config import DeviceError, Profile, get_device, get_profile, repo_root, runs_dir, set_seed, short_path


def test_set_seed_reseeds_python_numpy_and_torch():
    set_seed(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    set_seed(124)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != a


def test_get_device_on_this_machine_and_printed_once(capsys, monkeypatch):
    monkeypatch.setattr(config, "_printed_device", None)   # as in a fresh process: an earlier test may have printed
    dev = get_device()
    assert dev.type in ("cpu", "cuda", "mps")
    get_device()
    get_device(verbose=False)
    lines = capsys.readouterr().out.splitlines()
    if dev.type == "cpu":
        n = torch.get_num_threads()
        assert lines == [f"rlhf-lab device: cpu ({n} CPU thread{'s' if n != 1 else ''})"]
    else:
        assert len(lines) == 1 and lines[0].startswith(f"rlhf-lab device: {dev} (")
    get_device()
    assert capsys.readouterr().out == ""                      # once per process


def test_asking_for_a_missing_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="no CUDA GPU"):   # a RuntimeError, which the CLI reports in one line
        get_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu")


def test_profile_follows_device_and_env_override(monkeypatch, capsys):
    monkeypatch.delenv("RLHF_LAB_PROFILE", raising=False)
    monkeypatch.delenv("RLHF_LAB_MODEL", raising=False)
    assert get_profile("cpu").name == "cpu"
    assert get_profile("cpu").model_name == "tiny"
    assert get_profile("cuda").name == "gpu"
    assert get_profile("cuda").base_model == "gpt2"                  # the gpu chain starts from GPT-2
    assert get_profile("cuda").model_name.endswith("gpu/sft")       # and its policy is its own SFT model
    monkeypatch.setenv("RLHF_LAB_PROFILE", "gpu")
    assert get_profile("cpu").name == "gpu"
    monkeypatch.setenv("RLHF_LAB_MODEL", "tiny")
    p = get_profile("cpu")
    assert (p.name, p.model_name) == ("gpu", "tiny")
    assert "profile: gpu" in capsys.readouterr().out
    monkeypatch.setenv("RLHF_LAB_PROFILE", "laptop")
    with pytest.raises(ValueError, match="RLHF_LAB_PROFILE='laptop'"):
        get_profile("cpu")


def test_profiles_are_typed_presets():
    cpu, gpu = Profile.cpu(), Profile.gpu()
    assert cpu.model_name == "tiny" and gpu.base_model == "gpt2"
    assert gpu.batch_size > cpu.batch_size
    assert "temperature=0.7" in cpu.describe()


def test_runs_dir_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "elsewhere"))
    path = runs_dir("labels")
    assert path == tmp_path / "elsewhere" / "labels"
    assert path.is_dir()


def test_short_path_hides_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    moved = tmp_path / "runs" / "gpu" / "sft"       # $RLHF_LAB_RUNS moved the runs folder: the real path
    assert short_path(moved) == str(moved.resolve())
    assert short_path(repo_root() / "data" / "models" / "tiny") == "data/models/tiny"
    assert short_path("tiny") == "tiny" and short_path("runs/gpu/sft") == "runs/gpu/sft"   # names as given
    assert short_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")       # outside both: whole


def test_short_path_is_runs_only_under_the_default_runs_folder(monkeypatch):
    monkeypatch.delenv("RLHF_LAB_RUNS", raising=False)
    assert short_path(repo_root() / "runs" / "labels" / "pooled.jsonl") == "runs/labels/pooled.jsonl"
    assert short_path(runs_dir("labels", create=False) / "ada.jsonl") == "runs/labels/ada.jsonl"
