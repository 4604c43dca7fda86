"""Shared fixtures: the shipped embedded model, loaded once per test session."""
import pytest


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
