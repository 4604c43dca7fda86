"""Shared fixtures (the shipped embedded model, loaded once per test session) and how `make test`
splits the suite over its pytest-xdist workers."""
import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Test files run on one thread per worker, so that two workers do not fight over two cores. The
    # notebooks' kernels are separate processes and keep torch's default threads: a different thread
    # count splits sums differently, changes the last bits of the floats, and so which tokens are
    # sampled, and the checked outputs would no longer be the committed ones (`make execute`).
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The notebooks first, then the test files: the notebooks are the longest work unit, and a long
    unit handed out last would leave one worker busy and the other idle."""
    items.sort(key=lambda item: item.path.suffix != ".ipynb")   # stable: each file keeps its order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with all the notebooks in one work unit: they run on one worker, in order and
    one at a time, as a student's course does (06 reads the PPO run that 05 leaves in runs/), and one
    kernel of torch's default threads at a time competes with the test files' single thread. (xdist's
    own `loadgroup` cannot group them on pytest 9.2: it marks groups by rewriting node ids, which
    pytest no longer lets it do, pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False   # keep pytest_collection_modifyitems' order, not units by size

    class CourseScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path = super()._split_scope(nodeid)
            return "notebooks" if path.endswith(".ipynb") else path

    return CourseScheduling(config, log)


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the shipped SFT model, frozen, on the CPU."""
    from rlhf_lab.models import load_model

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
