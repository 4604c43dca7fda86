"""The wheel a student or a cluster installs holds every stage folder, and its commands run.

Built offline from a copy of the repository, without build isolation (the build backend,
setuptools, is in the dev extra), then run from the unpacked wheel in a folder outside the
repository, so that nothing is imported from the working tree.
"""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "rlhf_lab", src / "rlhf_lab", ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "dist"
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-build-isolation", "--no-deps",
                          "--no-index", "-w", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (whl,) = out.glob("rlhf_lab-*.whl")
    return whl


def test_the_wheel_holds_every_module_of_every_stage(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "rlhf_lab").rglob("*.py")}
    assert sources - names == set(), f"missing from the wheel: {sorted(sources - names)}"
    folders = {p.parent.name for p in (ROOT / "rlhf_lab").glob("*/__init__.py")}
    assert {"world", "lm", "labels", "reward", "rl", "exercises", "cli", "utils"} <= folders
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rlhf-lab = rlhf_lab.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_commands_run_from_the_unpacked_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    for argv in (["-m", "rlhf_lab.cli", "--help"],
                 ["-c", "import sys; from rlhf_lab.cli.main import main; sys.argv[0] = 'rlhf-lab'; "
                        "raise SystemExit(main(['--help']))"]):
        out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "usage: rlhf-lab" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import rlhf_lab.rl.ppo_trainer as m; print(m.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
