"""The device run (benchmarks/device.py) in an environment built like the lent GPU machine's, at smoke
sizes on the CPU: a fresh virtual environment holding only torch and transformers (transformers at
the machine's 5.17.0; torch at the kit's pin, 2.13.0+cpu: the registry here has the machine's 2.11.0
only as the CUDA build), the wheels `make device-wheels` carries, built by the same command for
this interpreter and installed with --no-index, and the kit on PYTHONPATH, as on the machine. Every
step must run, and every distribution a step imports must be on the machine's list or carried
(benchmarks/device_image.txt): jupyter, ipywidgets, datasets or nbformat there would fail it.
"""
import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE_TORCH, IMAGE_TRANSFORMERS = "torch==2.13.0", "transformers==5.17.0"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed_distributions() -> set[str]:
    lines = (ROOT / "benchmarks" / "device_image.txt").read_text().splitlines()
    return {_normal(n) for line in lines if not line.startswith("#") for n in line.split()}


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _need(result, what: str):
    if result.returncode:
        message = f"{what} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if os.environ.get("CI") or "No matching distribution" not in result.stderr + result.stdout:
            pytest.fail(message)
        pytest.skip(f"no package registry here ({what})")


@pytest.fixture(scope="module")
def image_like(tmp_path_factory):
    """(python, PYTHONPATH) of a venv with the machine's kind of packages and the carried wheels."""
    root = tmp_path_factory.mktemp("image")
    venv.create(root / "venv", with_pip=True)
    python = str(root / "venv" / "bin" / "python")
    _need(_run([python, "-m", "pip", "install", "--quiet", IMAGE_TORCH, IMAGE_TRANSFORMERS]), "installing torch and transformers")
    wheels = root / "whl"
    _need(_run(["make", "-s", "device-wheels", f"PYTHON={sys.executable}", f"DEVICE_WHEELS={wheels}",
                f"DEVICE_PY={sys.version_info.major}.{sys.version_info.minor}"], cwd=ROOT), "make device-wheels")
    site = root / "site"
    _need(_run([python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile", "--target",
                str(site), *map(str, sorted(wheels.glob("*.whl")))]), "installing the carried wheels")
    return python, f"{site}{os.pathsep}{ROOT}"


def test_the_device_run_works_in_an_environment_like_the_machines(image_like, tmp_path):
    python, path = image_like
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLHF_LAB_", "VIRTUAL_ENV"))}
    result = _run([python, "-m", "benchmarks.device", "--smoke", "--out", str(out), "--state", str(tmp_path / "state"),
                   "--budget", "900"], cwd=tmp_path, env={**env, "PYTHONPATH": path})
    log = (out / "log.txt").read_text() if (out / "log.txt").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log[-4000:]
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["env", "base", "chain", "generation", "attention", "reward_model", "ppo", "group", "dpo", "profile",
                                    "compiled", "course_ppo"]
    assert all(r[2] == "ok" for r in rows), rows
    results = json.loads((out / "results.json").read_text())
    assert results["env"]["transformers"] == IMAGE_TRANSFORMERS.split("==")[1]
    assert results["base"]["documents"] == 2 * 4          # built for the steps asked for, not the preset's 400,000
    assert set(results["chain"]["seconds"]) == {"sft", "labels", "reward_model"}
    assert results["generation"]["batches"]["4"]["sampler"]["new_tokens_per_s"] > 0
    assert results["ppo"]["shared"]["episodes_per_s"] > 0 and results["ppo"]["separate"]["value_model"] == "separate"
    assert "aten::" in (out / "profile.txt").read_text()
    ppo_run = results["course_ppo"]   # notebook 05's PPO run: 2 of the preset's 100 iterations at smoke sizes
    assert ppo_run["iterations"] == 2 and ppo_run["partial"] is True and "objective/gold" in ppo_run["last"]
    allowed = allowed_distributions()
    for step in (r[0] for r in rows):
        foreign = {_normal(d) for d in results[f"imports_{step}"]} - allowed
        assert not foreign, f"step {step} imports what the machine lacks: {sorted(foreign)}"
    assert "not measured: nothing" in (out / "summary.txt").read_text()


def test_a_step_past_the_budget_is_skipped_and_said(tmp_path):
    """With too little time left a step is not started: steps.tsv and the summary say so."""
    out = tmp_path / "out"
    result = _run([sys.executable, "-m", "benchmarks.device", "--out", str(out), "--state", str(tmp_path / "s"),
                   "--budget", "16", "--only", "env", "chain"], cwd=ROOT)
    assert result.returncode == 1
    text = (out / "summary.txt").read_text()
    assert "skipped:" in text and "not measured: env, chain" in text


def test_the_carried_set_for_the_machine_is_built_for_python_3_12(tmp_path):
    result = _run(["make", "-s", "device-wheels", f"PYTHON={sys.executable}", f"DEVICE_WHEELS={tmp_path}"], cwd=ROOT)
    _need(result, "make device-wheels")
    names = sorted(p.name for p in tmp_path.glob("*.whl"))
    assert len(names) == 5 and any(n.startswith("pydantic_core-") and "cp312" in n for n in names), names
    carried = {_normal(n.split("-")[0]) for n in names}
    assert carried <= allowed_distributions()
