"""Reward-model ensembles and conservative rewards (notebook 10): hand values, one object, saved and read back."""
import json
from dataclasses import replace

import pytest
import torch

from rlhf_lab.config import ConfigError
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.reward.ensemble import RewardEnsemble, bootstrap, conservative, train_ensemble
from rlhf_lab.reward.model import RewardModel, reward_function
from rlhf_lab.reward.train import RewardConfig

SCORES = torch.tensor([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])      # 3 members x 2 completions


def test_the_conservative_objectives_against_hand_values():
    assert conservative(SCORES, "mean").tolist() == pytest.approx([2.0, 3.0])
    assert conservative(SCORES, "min").tolist() == pytest.approx([1.0, 2.0])
    # population std over the members: sqrt(2/3) and sqrt(2)
    assert conservative(SCORES, "mean_minus_std", lam=1.0).tolist() == pytest.approx([2 - (2 / 3) ** 0.5, 3 - 2 ** 0.5])
    assert conservative(SCORES, "mean_minus_std", lam=0.0).tolist() == pytest.approx([2.0, 3.0])
    assert conservative(SCORES[:1], "mean_minus_std").tolist() == [1.0, 2.0]      # one member: no spread


@pytest.mark.parametrize("kw, message", [({"objective": "max"}, "objective must be one of mean, min, mean_minus_std"),
                                         ({"lam": -1.0}, "lam must be at least 0")])
def test_bad_objectives_are_named(kw, message):
    with pytest.raises(ConfigError, match=message):
        conservative(SCORES, **{"objective": "mean_minus_std", **kw})


@pytest.fixture(scope="module")
def members():
    torch.manual_seed(0)
    return [RewardModel.from_backbone("tiny") for _ in range(3)]     # fresh heads: they disagree


PAIRS = ([" Write a review.", " Write a review.", " Tell me"], [" It is brilliant.", " It is dull.", " Hm."])


def test_an_ensemble_scores_like_its_members_combined(members):
    ens = RewardEnsemble(members)
    each = torch.stack([m.score(*PAIRS) for m in members])
    assert torch.allclose(ens.score(*PAIRS), each.mean(0)) and torch.allclose(ens.member_scores(*PAIRS), each)
    assert torch.allclose(ens.with_objective("min").score(*PAIRS), each.min(0).values)
    assert ens.with_objective("min").members[0] is members[0]                   # shared, not copied
    assert reward_function(ens)(*PAIRS) == pytest.approx(ens.score(*PAIRS).tolist())   # TRL's reward_funcs form
    with pytest.raises(ConfigError, match="at least one member"):
        RewardEnsemble([])


def test_an_ensemble_is_saved_as_transformers_members_with_one_card(members, tmp_path):
    from transformers import AutoModelForSequenceClassification

    ens = RewardEnsemble(members, "mean_minus_std", lam=0.5)
    ens.save_pretrained(tmp_path / "ens", extra={"labels": "test"})
    meta = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert meta["members"] == ["member-0", "member-1", "member-2"] and meta["lam"] == 0.5 and meta["labels"] == "test"
    assert [p.name for p in (tmp_path / "ens").glob("**/README.md")].count("README.md") == 4   # the card + one per member
    assert "mean_minus_std" in (tmp_path / "ens" / "README.md").read_text()
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "ens" / "member-1")
    back = RewardEnsemble.from_pretrained(tmp_path / "ens")
    assert (back.objective, back.lam) == ("mean_minus_std", 0.5)
    assert torch.allclose(back.score(*PAIRS), ens.score(*PAIRS), atol=1e-5)
    assert RewardEnsemble.from_pretrained(tmp_path / "ens", objective="min").objective == "min"


def test_a_trainer_takes_the_ensemble_as_its_reward_model(members):
    from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
    from rlhf_lab.world.reviews import ReviewWorld

    cfg = replace(GroupConfig.tiny("grpo"), iterations=1, batch_size=8, mini_batch_size=4, num_iterations=1,
                  max_new_tokens=8, device="cpu")
    trainer = GroupTrainer(cfg, ReviewWorld(0).prompts(8, kind="mixed", split="train"),
                           reward_model=RewardEnsemble(members, "min"))
    row = trainer.train(progress=False).rows[0]
    assert torch.isfinite(torch.tensor(row["objective/rm_score"]))


def test_members_train_on_their_own_bootstrap_samples():
    records = load_preferences(labeler="sim-gold")[:48]
    assert bootstrap(records, 3) == bootstrap(records, 3) and len(bootstrap(records, 3)) == 48
    assert len({r.record_id for r in bootstrap(records, 3)}) < 48                 # drawn with replacement
    cfg = replace(RewardConfig.tiny(), epochs=1, val_fraction=0.0, device="cpu")
    ens, hists = train_ensemble(cfg, records, n_members=2, val_records=[], progress=False)
    a, b = ens.member_scores(*PAIRS)
    assert len(hists) == 2 and not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="n_members must be at least 1"):
        train_ensemble(cfg, records, n_members=0)


def test_the_verbose_labeler_agrees_with_gold_as_people_do():
    from rlhf_lab.labels.labelers import PERSONAS, VERBOSE, agreement_with_gold
    from rlhf_lab.labels.preferences import sample_for_labeling
    from rlhf_lab.lm.models import load_model
    from rlhf_lab.world.reviews import ReviewWorld

    model, tok = load_model("tiny", role="reference")
    torch.manual_seed(0)
    tasks = sample_for_labeling(model, tok, ReviewWorld(0).prompts(64, kind="mixed", split="train"), k=4,
                                max_new_tokens=48, temperature=0.7, model_name="tiny")
    verbose, gold = agreement_with_gold(VERBOSE, tasks), agreement_with_gold(PERSONAS["gold"], tasks)
    assert 0.70 < verbose < 0.80 < gold
    assert agreement_with_gold(PERSONAS["gold"], tasks, temperature=0) == 1.0        # gold, noiseless: itself


def test_the_verbose_persona_is_gold_plus_half_a_point_per_ten_words():
    from rlhf_lab.labels.labelers import VERBOSE, SimulatedLabeler, features
    from rlhf_lab.labels.preferences import LabelTask
    from rlhf_lab.world.reviews import ReviewWorld

    prompt = ReviewWorld(0).prompts(1, kind="instruction", split="train")[0]
    texts = (" It is brilliant.", " It is brilliant. I saw it at the cinema with my partner, who liked it too.")
    task = LabelTask(prompt, texts, (0.0, 0.0), "tiny")
    u = SimulatedLabeler(VERBOSE).utilities(task)
    for text, got in zip(texts, u):
        assert got == pytest.approx(features(prompt, text)["gold"] + 0.5 * len(text.split()) / 10)


def test_another_labeler_ranks_the_very_completions_of_the_records():
    from rlhf_lab.labels.labelers import VERBOSE, SimulatedLabeler, label_tasks, tasks_from_records
    from rlhf_lab.world.reviews import ReviewWorld

    records = load_preferences(labeler="sim-gold")[:20]
    prompts = ReviewWorld(0).prompts(512, kind="mixed", split="train")
    tasks = tasks_from_records(records, prompts)
    assert [t.completions for t in tasks] == [tuple(r.completions) for r in records]
    assert [g for t in tasks for g in t.gold] == pytest.approx([g for r in records for g in r.gold], abs=1e-5)
    relabelled = label_tasks(tasks, [SimulatedLabeler(VERBOSE)])
    assert {r.labeler for r in relabelled} == {"sim-verbose"} and len(relabelled) == 20
    with pytest.raises(ValueError, match="1 record.* not among the 511 prompts given"):
        tasks_from_records(records, [p for p in prompts if p.text != records[0].prompt])


def test_the_command_saves_an_ensemble_that_trainers_and_trl_read_by_folder(tmp_path, monkeypatch):
    from rlhf_lab import interop
    from rlhf_lab.cli.main import main
    from rlhf_lab.labels.store import PreferenceStore
    from rlhf_lab.reward.ensemble import load_reward
    from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
    from rlhf_lab.world.reviews import ReviewWorld

    labels = tmp_path / "few.jsonl"
    PreferenceStore(labels).extend(load_preferences(labeler="sim-gold")[:24])
    out = tmp_path / "ens"
    assert main(["reward-ensemble", "--labels", str(labels), "--members", "2", "--epochs", "1", "--objective",
                 "mean_minus_std", "--lam", "0.5", "--out", str(out), "--device", "cpu"]) == 0
    meta = json.loads((out / "ensemble.json").read_text())
    assert meta["command"].startswith("rlhf-lab reward-ensemble") and meta["bootstrap"] is True
    assert len(meta["val_accuracy"]) == 2 and meta["reward_config"]["epochs"] == 1
    ens = load_reward(str(out))
    assert isinstance(ens, RewardEnsemble) and (len(ens.members), ens.objective, ens.lam) == (2, "mean_minus_std", 0.5)
    assert isinstance(load_reward("tiny-rm"), RewardModel)
    cfg = replace(GroupConfig.tiny("grpo"), iterations=1, batch_size=4, mini_batch_size=4, num_iterations=1,
                  max_new_tokens=4, reward_model=str(out), device="cpu")
    trainer = GroupTrainer(cfg, ReviewWorld(0).prompts(4, kind="mixed", split="train"))
    assert isinstance(trainer._reward_model, RewardEnsemble)
    monkeypatch.setenv("RLHF_LAB_REWARD_MODEL", str(out))
    monkeypatch.setattr(interop, "_REWARD_MODELS", {})
    assert interop.kit_reward_model(*PAIRS) == pytest.approx(ens.score(*PAIRS).tolist(), abs=1e-5)


def test_shared_error_and_what_averaging_keeps_of_it():
    from rlhf_lab.reward.ensemble import disagreement, error_variance_kept, shared_error

    g = torch.Generator().manual_seed(0)
    gold = torch.randn(4000, generator=g)
    common = torch.randn(4000, generator=g)
    alike = torch.stack([2 * gold + common, gold + 0.5 * common - 3])              # one error, two scales
    assert shared_error(alike, gold) == pytest.approx(1.0)
    same = torch.stack([gold + common, 3 * gold + common - 1])                     # one error, one scale
    assert error_variance_kept(same, gold) == pytest.approx(1.0)
    apart = torch.stack([gold + torch.randn(4000, generator=g) for _ in range(4)])   # independent errors
    assert abs(shared_error(apart, gold)) < 0.05 and error_variance_kept(apart, gold) == pytest.approx(0.25, abs=0.02)
    half = torch.stack([gold + common + torch.randn(4000, generator=g) for _ in range(4)])   # rho = 1/2
    assert shared_error(half, gold) == pytest.approx(0.5, abs=0.05)
    assert error_variance_kept(half, gold) == pytest.approx(0.5 + 0.5 / 4, abs=0.03)
    assert disagreement(SCORES) == pytest.approx(((2 / 3) ** 0.5 + 2 ** 0.5) / 2)


def test_agreement_is_nan_when_no_pair_of_completions_differs_on_gold():
    import math

    from rlhf_lab.labels.labelers import VERBOSE, agreement_with_gold
    from rlhf_lab.labels.preferences import LabelTask
    from rlhf_lab.world.reviews import ReviewWorld

    prompt = ReviewWorld(0).prompts(1, kind="instruction", split="train")[0]
    same = LabelTask(prompt, (" The.", " The."), (0.0, 0.0), "tiny")
    assert math.isnan(agreement_with_gold(VERBOSE, [same])) and math.isnan(agreement_with_gold(VERBOSE, []))
