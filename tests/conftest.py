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
