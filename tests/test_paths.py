"""A relative path in a setting (RLHF_LAB_BASE, RLHF_LAB_MODEL, RLHF_LAB_RUNS) or given to the loaders
means the same folder from the CLI, a notebook kernel (which runs in notebooks/) and a benchmark:
the repository root's, whatever the working directory."""
import os
import subprocess
import sys

import pytest

from rlhf_lab.config import get_profile, repo_root, runs_dir, setting_path
from rlhf_lab.lm.models import load_model, resolve

ROOT = repo_root()
SFT = "data/models/tiny-sft"


@pytest.fixture(params=["notebooks", "elsewhere"])
def cwd(request, tmp_path, monkeypatch):
    """A notebook kernel's working directory, and one outside the repository."""
    where = ROOT / "notebooks" if request.param == "notebooks" else tmp_path
    monkeypatch.chdir(where)
    return where


def test_a_relative_model_setting_is_the_roots_folder(cwd, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_MODEL", SFT)
    monkeypatch.setenv("RLHF_LAB_BASE", "runs/models/gpt2-upt")   # not built: still the root's, absolute
    profile = get_profile(verbose=False)
    assert profile.model_name == str(ROOT / SFT)
    assert profile.base_model == str(ROOT / "runs" / "models" / "gpt2-upt")
    model, _ = load_model(profile.model_name)
    assert model.config.n_layer == 4


def test_a_relative_runs_folder_is_under_the_root(cwd, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", "my-runs")
    assert runs_dir(create=False) == ROOT / "my-runs"
    assert get_profile(verbose=False).name == "cpu"


def test_names_stay_names_and_absolute_paths_stay_put(cwd, tmp_path):
    for name in ("tiny", "gpt2", "openai-community/gpt2"):
        assert setting_path(name) == name
    assert setting_path(str(tmp_path)) == str(tmp_path)
    assert setting_path("./" + SFT) == str(ROOT / SFT)


def test_the_loaders_find_a_relative_folder_from_another_directory(cwd):
    assert resolve(SFT) == ("local", str(ROOT / SFT))


def test_the_cli_and_a_benchmark_read_the_same_folder_from_another_directory(tmp_path):
    env = {**os.environ, "RLHF_LAB_MODEL": SFT, "PYTHONPATH": str(ROOT)}
    env.pop("RLHF_LAB_RUNS", None)
    cli = subprocess.run([sys.executable, "-m", "rlhf_lab.cli", "sample", "--n", "1", "--max-new-tokens", "4"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert f"model {str(ROOT / SFT)!r}" in cli.stdout
    bench = subprocess.run([sys.executable, "-m", "benchmarks.sampler", "--model", SFT, "--batches", "1",
                            "--repeats", "1", "--max-new-tokens", "2"], cwd=tmp_path, env=env, capture_output=True,
                           text=True)
    assert bench.returncode == 0, bench.stderr
    assert f"sampler vs transformers generate, {SFT} on" in bench.stdout
