"""The course chain's seams: smoke caps that name real config fields, and one writer of a reward
model's metadata for the chain and for `rlhf-lab reward`."""
import dataclasses
import json
import re
from pathlib import Path

import pytest

from rlhf_lab import course
from rlhf_lab.cli.main import main
from rlhf_lab.config import Profile
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.labels.store import PreferenceStore
from rlhf_lab.lm.pretrain import PretrainConfig, SFTConfig
from rlhf_lab.reward.save import METADATA_KEYS
from rlhf_lab.reward.train import RewardConfig
from rlhf_lab.rl.dpo import DPOConfig
from rlhf_lab.rl.group_trainer import GroupConfig
from rlhf_lab.rl.policy_gradient import ReinforceConfig
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.lm.finetune import FineTuneConfig
from rlhf_lab.rl.rejection_sampling import RFTConfig

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {c.__name__: c for c in (PretrainConfig, SFTConfig, RewardConfig, DPOConfig, PPOConfig, ReinforceConfig,
                                   GroupConfig, FineTuneConfig, RFTConfig)}
"""Every config class of a stage; a new one that `course.preset` is used on belongs here."""
VARIANTS = {"GroupConfig": ("rloo", "grpo", "dr_grpo"), "RFTConfig": ("passing", "random")}


def _preset_uses() -> set[str]:
    """The config classes `course.preset` is called on anywhere: package, notebooks, tests, benchmarks."""
    paths = [*(ROOT / "rlhf_lab").rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"),
             *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    return {m for p in paths for m in re.findall(r"preset\(\s*\w+\s*,\s*(?:\w+\.)*(\w+Config)\b", p.read_text())}


def _not_fields(caps: dict, classes: list) -> list[str]:
    """The keys of ``caps`` that name no field of any of ``classes``: caps that cap nothing."""
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    return sorted(set(caps) - names)


def test_preset_is_used_on_known_config_classes():
    used = _preset_uses()
    assert {"SFTConfig", "RewardConfig", "PPOConfig", "GroupConfig", "DPOConfig"} <= used   # the search works
    assert used <= set(CONFIGS), f"preset is used on {sorted(used - set(CONFIGS))}: add them to CONFIGS"


def test_every_smoke_cap_names_a_field_of_a_config_preset_is_used_on():
    """A renamed field (ppo_epochs -> ppo_epoch) would silently stop being capped: this fails instead."""
    classes = [CONFIGS[name] for name in sorted(_preset_uses())]
    assert _not_fields(course.SMOKE_CAPS, classes) == []
    assert _not_fields({**course.SMOKE_CAPS, "ppo_epoch": 1}, classes) == ["ppo_epoch"]   # the check can fail


@pytest.mark.parametrize("name, variant", [(n, v) for n in sorted(CONFIGS) for v in VARIANTS.get(n, (None,))])
def test_smoke_presets_are_capped(name, variant, tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path))
    cfg = course.preset(Profile.gpu().shrunk(), CONFIGS[name], *([variant] if variant else []))
    for key, cap in course.SMOKE_CAPS.items():
        value = getattr(cfg, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert value <= cap, (key, value)


def test_the_chain_and_the_command_write_the_same_reward_model_metadata(tmp_path):
    """Both go through `rlhf_lab.reward.save.train_and_save_reward_model`."""
    labels = tmp_path / "few.jsonl"
    PreferenceStore(labels).extend(load_preferences(labeler="sim-gold")[:24])
    assert main(["reward", "--labels", str(labels), "--epochs", "1", "--out", str(tmp_path / "cli-rm"),
                 "--device", "cpu"]) == 0
    profile = dataclasses.replace(Profile.cpu().shrunk(), labels=str(labels), reward_model=str(tmp_path / "chain-rm"))
    course.BUILDERS["reward_model"](profile, device="cpu", progress=False)
    cli = json.loads((tmp_path / "cli-rm" / "reward_config.json").read_text())
    chain = json.loads((tmp_path / "chain-rm" / "reward_config.json").read_text())
    assert list(cli) == list(chain) == ["kind", "format", *METADATA_KEYS]
    assert cli["labels"] == chain["labels"] == str(labels) and cli["labeler"] == chain["labeler"] == "sim-gold"
    assert cli["command"].startswith("rlhf-lab reward") and chain["command"].startswith("rlhf_lab.course.ensure")
    assert cli["config"]["normalise_std"] is False and chain["config"]["normalise_std"] is True   # the chain's unit std
    assert chain["config"]["epochs"] == 1 and chain["backbone"] == "tiny"                      # smoke-capped, on tiny
