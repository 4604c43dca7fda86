"""Seeded PPO, RLOO, GRPO and Dr. GRPO runs give the metrics they gave when tests/rl/data/rl_fingerprints.json
was written: a refactor of the trainers (`rlhf_lab.rl.trainer` and its two siblings) that changes what
they compute fails here, and a resumed run equals the uninterrupted one exactly.

The stored metrics hold across thread counts and machines at rel 1e-3 / abs 1e-4: float sums in
another order move the last bits, not the samples. After a change that means to alter the numbers,
rewrite the file by running this test file with `--write` (`python tests/test_rl_fingerprints.py --write`)
and say why in the commit.
"""
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rlhf_lab.reward.model import load_reward_model
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.world.reviews import ReviewWorld

DATA = Path(__file__).parent / "data" / "rl_fingerprints.json"
PROMPTS = ReviewWorld(0).prompts(32, kind="mixed", split="train")
ITERATIONS = 2


def _ppo(**kw) -> PPOConfig:
    return PPOConfig(**{"batch_size": 8, "mini_batch_size": 4, "max_new_tokens": 12, "ppo_epochs": 2, "lr": 2e-4,
                        "device": "cpu", "iterations": ITERATIONS, **kw})


def _group(algo: str, **kw) -> GroupConfig:
    return replace(GroupConfig.tiny(algo), iterations=ITERATIONS, batch_size=8, mini_batch_size=4, num_iterations=2,
                   max_new_tokens=12, device="cpu", **kw)


RUNS = {   # name: (trainer class, config, whether it needs the reward model passed in)
    "ppo": (PPOTrainer, _ppo(), False),
    "ppo_separate": (PPOTrainer, _ppo(value_model="separate"), True),
    "ppo_ptx": (PPOTrainer, _ppo(ptx_coef=0.5, ptx_batch_size=4), False),
    "rloo": (GroupTrainer, _group("rloo"), False),
    "grpo": (GroupTrainer, _group("grpo"), False),
    "dr_grpo": (GroupTrainer, _group("dr_grpo"), False),
}


def _metrics(trainer) -> list[dict]:
    """The history's rows without wall-clock times."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in trainer.history.rows]


def _train(name: str):
    cls, cfg, needs_rm = RUNS[name]
    trainer = cls(cfg, PROMPTS, **({"reward_model": load_reward_model("tiny-rm")} if needs_rm else {}))
    trainer.train(progress=False)
    return trainer


@pytest.fixture(scope="module")
def runs() -> dict:
    return {name: _train(name) for name in RUNS}


@pytest.mark.parametrize("name", list(RUNS))
def test_a_seeded_run_gives_the_stored_metrics(name, runs):
    stored = json.loads(DATA.read_text())[name]
    got = _metrics(runs[name])
    assert len(got) == len(stored) == ITERATIONS
    for i, (want, row) in enumerate(zip(stored, got), 1):
        assert set(row) == set(want), (i, set(row) ^ set(want))
        for key, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(row[key]), (i, key)
            else:
                assert row[key] == pytest.approx(value, rel=1e-3, abs=1e-4), (name, i, key)


@pytest.mark.parametrize("name", ["ppo", "grpo"])
def test_a_resumed_run_equals_the_uninterrupted_one_exactly(name, runs, tmp_path):
    cls, cfg, _ = RUNS[name]
    cls(replace(cfg, checkpoint_every=1), PROMPTS).train(iterations=1, out_dir=tmp_path / "run", progress=False)
    resumed = cls.resume(tmp_path / "run")
    resumed.train(progress=False)
    straight = runs[name]
    assert _metrics(resumed) == _metrics(straight)
    assert all(torch.equal(a, b) for a, b in zip(resumed.policy.parameters(), straight.policy.parameters()))
    if straight.value_function is not None:
        assert all(torch.equal(a, b) for a, b in zip(resumed.value_function.parameters(),
                                                     straight.value_function.parameters()))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write   (rewrites {DATA} from the current code)")
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps({name: _metrics(_train(name)) for name in RUNS}, indent=1) + "\n")
    print(f"wrote {DATA}")
