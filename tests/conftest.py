"""Shared fixtures (the shipped embedded model, loaded once per test session) and how `make test`
splits the suite over its pytest-xdist workers."""
import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per worker and per notebook kernel (kernels inherit OMP_NUM_THREADS). A kernel of two
    # threads beside a busy worker oversubscribes two cores and OpenMP's waiting threads spin: a
    # fresh-clone run took 1,342 s of tests, against 757 s with one thread everywhere. The committed
    # outputs come from torch's default threads (`make execute`), so the numbers differ in their last
    # bits; the NBVAL_CHECK_OUTPUT lines are claims with margins that hold on both.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


# Notebooks, longest first (`make test --durations`, 2 workers); 06 reads the PPO run that 05 leaves in
# runs/, as a student's course does, so the two are one work unit, 05 first.
NOTEBOOK_ORDER = ("05", "06", "07", "08", "03", "04", "00", "02", "01")


def _notebook(path) -> str | None:
    return path.name[:2] if path.suffix == ".ipynb" else None


def pytest_collection_modifyitems(items):
    """The notebooks first, longest first, then the test files: a long unit handed out last would leave
    one worker busy and the other idle (see pytest_xdist_make_scheduler)."""
    order = {nb: rank for rank, nb in enumerate(NOTEBOOK_ORDER)}
    # stable: each file keeps its order; a notebook not listed comes after the listed ones
    items.sort(key=lambda item: (_notebook(item.path) is None, order.get(_notebook(item.path), len(order))))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with notebooks 05 and 06 in one work unit, handed out in collection order.
    (xdist's own `loadgroup` cannot group them on pytest 9.2: it marks groups by rewriting node ids,
    which pytest no longer lets it do, pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from pathlib import PurePath

    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False   # keep pytest_collection_modifyitems' order, not units by size

    class CourseScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path = super()._split_scope(nodeid)
            return "notebooks 05 and 06" if _notebook(PurePath(path)) in ("05", "06") else path

    return CourseScheduling(config, log)


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the shipped SFT model, frozen, on the CPU."""
    from rlhf_lab.lm.models import load_model

    return load_model("tiny", role="reference", device="cpu")


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    """Nothing a test writes lands in the checkout's runs/ folder."""
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))


@pytest.fixture(scope="session")
def hub_gpt2(tmp_path_factory):
    """A folder holding a hub-shaped GPT-2 (GPT-2's real BPE, vocabulary 50,257, no PAD; small random
    weights): what `load_model("gpt2")` reads from the hub cache, built offline (tests/hub_gpt2.py)."""
    from hub_gpt2 import build_hub_gpt2

    return str(build_hub_gpt2(tmp_path_factory.mktemp("hub") / "gpt2"))
