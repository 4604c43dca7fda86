"""The benchmark suite in quick mode: it runs on the CPU and its JSON has every field."""
import json
import math

import pytest

from benchmarks.__main__ import main
from benchmarks.ppo_budget import main as budget_main


def test_quick_suite_writes_every_field(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--profile", "cpu", "--quick", "--json", str(out)])
    r = json.loads(out.read_text())
    for key in ("profile", "model", "quick", "date", "device", "versions", "generation", "reward_model",
                "ppo_course", "ppo_long", "dpo", "trl", "wall_s"):
        assert key in r, key
    assert r["quick"] is True and r["versions"]["torch"]
    assert set(r["generation"]) == {"1", "8"} and all(g["new_tokens_per_s"] > 0 for g in r["generation"].values())
    assert set(r["reward_model"]) == {"grouped", "shuffled"}
    assert r["reward_model"]["grouped"]["forwards_per_prompt"] < r["reward_model"]["shuffled"]["forwards_per_prompt"]
    for v in r["reward_model"].values():   # packing forwards a prompt once for all its completions
        assert 0 < v["forwarded_tokens_per_s"] < v["tokens_per_s"]
    for key in ("ppo_course", "ppo_long"):
        assert set(r[key]["median_s"]) == {"generate", "score", "learn", "iteration"}
        assert r[key]["episodes_per_s"] > 0
    assert r["ppo_long"]["new_tokens"] == 8 and r["dpo"]["pairs_per_s"] > 0
    assert set(r["group"]) == {"PPO", "RLOO", "GRPO", "Dr. GRPO"}
    assert all(v["episodes_per_s"] > 0 for v in r["group"].values())
    for v in r["learn_padding_free"].values():   # the same update on both sides, fewer positions packed
        assert v["max_loss_gap"] < 1e-4 and v["speedup"] > 0
        assert v["positions_per_pass"]["padding_free"] <= v["positions_per_pass"]["padded"]
    # TRL: skipped with a reason when absent, both ratios and the loss check when present
    assert "skipped" in r["trl"] or {"reward", "dpo"} <= set(r["trl"])
    if "reward" in r["trl"]:   # the same weights and batches on both sides: the same loss at every step
        for k in ("reward", "dpo"):
            assert r["trl"][k]["ratio"] > 0 and r["trl"][k]["losses_close"], r["trl"][k]["max_loss_gap"]
    assert "skipped" in r["trl_group"] or {"grpo", "rloo"} <= set(r["trl_group"])
    for k in ("grpo", "rloo") if "grpo" in r["trl_group"] else ():   # both sides scored and stepped alike
        assert r["trl_group"][k]["same_work"] and r["trl_group"][k]["ratio"] > 0
    assert "rlhf-lab benchmarks, profile cpu" in capsys.readouterr().out


def test_budget_study_refuses_a_budget_below_one_token(capsys):
    with pytest.raises(SystemExit):
        budget_main(["--budgets", "24", "0"])
    assert "--budgets must be at least 1 token, got [24, 0]" in capsys.readouterr().err


def test_beta_frontier_smoke_writes_the_table_the_notebooks_read(tmp_path, capsys):
    from benchmarks.beta_frontier import main as frontier_main

    out = tmp_path / "frontier.json"
    frontier_main(["--smoke", "--out", str(out)])
    table = json.loads(out.read_text())
    assert {r["beta"] for r in table["runs"]} == {0.0, 0.05} and table["sft"]["kl"] == 0
    for run in table["runs"]:   # a held-out point after every iteration, and the dashboard's curves
        assert [p["iteration"] for p in run["path"]] == [1, 2] and run["final"] == run["path"][-1]
        assert len(run["curves"]["objective/gold"]) == 2
        assert {"gold", "gold_stderr", "score", "kl", "instruction_gold"} <= set(run["final"])
    assert table["meta"]["command"].startswith("python -m benchmarks.beta_frontier")
    assert "mean +- s.e. over seeds [0]" in capsys.readouterr().out


def test_the_committed_beta_frontier_is_the_full_sweep():
    """Notebooks 05 and 07 read data/beta_frontier.json: at least 5 betas, 3 seeds each, one budget."""
    from benchmarks.beta_frontier import OUT

    table = json.loads(OUT.read_text())
    betas = sorted({r["beta"] for r in table["runs"]})
    assert len(betas) >= 5 and 0.0 in betas
    for beta in betas:
        assert sorted(r["seed"] for r in table["runs"] if r["beta"] == beta) == [0, 1, 2]
    assert {r["path"][-1]["iteration"] for r in table["runs"]} == {table["meta"]["iterations"]}
    assert table["meta"]["test_prompts"] == 128 and table["meta"]["train_prompts"] == 512


@pytest.mark.parametrize("argv, message", [(["--betas", "-0.1"], "--betas must be at least 0"),
                                           (["--iterations", "0"], "--iterations must be at least 1"),
                                           (["--every", "0"], "--every must be at least 1")])
def test_beta_frontier_refuses_bad_sizes(argv, message, capsys):
    from benchmarks.beta_frontier import main as frontier_main

    with pytest.raises(SystemExit):
        frontier_main(argv)
    assert message in capsys.readouterr().err


def test_verifier_rl_smoke_writes_the_table_notebook_09_reads(tmp_path, capsys):
    from benchmarks.verifier_rl import METHODS, main as verifier_main
    from rlhf_lab.verifiable import by_method, load_verifier_table

    out = tmp_path / "verifier.json"
    verifier_main(["--smoke", "--out", str(out)])
    table = load_verifier_table(out)
    run, = table["runs"]
    assert set(METHODS) <= set(run) and run["sft"]["kl"] == 0
    for m in METHODS:
        assert set(run[m]["pass_at_k"]) == {"1", "2", "4"} and set(run[m]["checks"]) == {"rating", "aspect", "title", "well_formed"}
        assert all(0 <= v <= 1 for v in run[m]["pass_at_k"].values())
    assert {"groups/all_pass", "groups/all_fail", "objective/entropy"} <= set(run["curves"]["grpo"])
    assert run["curves"]["rft"]["episodes"] == [32]                  # one round of 4 prompts x K = 8 at smoke size
    assert by_method(table, "grpo", "", 1)[0] == run["grpo"]["pass_at_k"]["1"]
    assert "mean +- s.e. over seeds [0]" in capsys.readouterr().out


def test_the_committed_verifier_table_is_three_seeds_on_one_budget():
    """Notebook 09 reads data/verifier_rl.json: 3 seeds, 64 held-out specifications x 64 samples, pass@k to 64."""
    from benchmarks.verifier_rl import METHODS
    from rlhf_lab.verifiable import load_verifier_table

    table = load_verifier_table()
    assert [r["seed"] for r in table["runs"]] == [0, 1, 2]
    meta = table["meta"]
    assert (meta["test_specs"], meta["samples"], meta["ks"][-1], meta["train_specs"]) == (64, 64, 64, 512)
    assert meta["episodes"] == 1280 and all(set(METHODS) <= set(r) for r in table["runs"])
    assert all(len(r["curves"]["grpo"]["objective/scores"]) == 40 and r["curves"]["rft"]["episodes"][-1] == 1280
               for r in table["runs"])                                # RL and rejection sampling: the same budget


@pytest.mark.parametrize("argv, message", [(["--seeds", "-1"], "--seeds must be at least 0"),
                                           (["--samples", "0"], "--samples must be at least 1")])
def test_verifier_rl_refuses_bad_sizes(argv, message, capsys):
    from benchmarks.verifier_rl import main as verifier_main

    with pytest.raises(SystemExit):
        verifier_main(argv)
    assert message in capsys.readouterr().err


def test_length_bias_smoke_writes_its_table(tmp_path):
    """Issue 28's groundwork: the length-loving labeler's reward model, optimised with and without a length penalty."""
    from benchmarks.length_bias import main as length_main

    out = tmp_path / "length.json"
    table = length_main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text())["meta"]["budget"] == 96
    assert {r["name"] for r in table["runs"]} == {"gold_rm", "verbose_rm", "verbose_rm_penalty", "verbose_rm_matched"}
    assert set(table["padding_gain"]) == {"gold_rm", "verbose_rm", "gold"} and math.isfinite(table["alpha_matched"])
    assert 0.5 < table["agreement_with_gold"]["verbose"] < table["agreement_with_gold"]["gold"] <= 1


def test_ensembles_smoke_writes_its_table(tmp_path):
    """Issue 28's groundwork: GRPO against one reward model and against its ensemble's three objectives."""
    from benchmarks.ensembles import main as ensembles_main
    from rlhf_lab.reward.ensemble import OBJECTIVES

    table = ensembles_main(["--smoke", "--out", str(tmp_path / "ens.json")])
    assert {r["objective"] for r in table["runs"]} == {"single", *OBJECTIVES}
    assert len(table["members"]["val_accuracy"]) == 2 and table["members"]["disagreement_sft"] > 0
    assert all(r["path"][-1]["iteration"] == 2 for r in table["runs"])


def test_rm_properties_smoke_writes_its_table(tmp_path):
    """Notebook 10's question: which property of a reward model predicts its policy's gold."""
    from benchmarks.rm_properties import PROPERTIES, main as properties_main

    table = properties_main(["--smoke", "--out", str(tmp_path / "p.json")])
    assert set(table["reward_models"]) == {"all", "verbose"}
    assert all(set(PROPERTIES) <= set(rm) and 0 <= rm["ece"] <= 1 for rm in table["reward_models"].values())
    assert [(r["reward_model"], r["path"][-1]["iteration"]) for r in table["runs"]] == [("all", 2), ("verbose", 2)]


def test_notebook_10s_committed_tables_are_three_seeds_of_every_arm():
    """Notebook 10 reads data/length_bias.json, data/ensembles.json and data/rm_properties.json, all on the
    cpu chain: every arm, objective and reward model at seeds 0, 1, 2, on one budget each."""
    from benchmarks.length_bias import ARMS
    from rlhf_lab.config import data_dir
    from rlhf_lab.reward.ensemble import OBJECTIVES

    length, ens, props = (json.loads((data_dir() / f"{name}.json").read_text())
                          for name in ("length_bias", "ensembles", "rm_properties"))
    assert sorted((r["name"], r["seed"]) for r in length["runs"]) == sorted((a, s) for a in ARMS for s in (0, 1, 2))
    assert {len(r["samples"]["gold"]) for r in length["runs"]} == {length["meta"]["test_prompts"]} == {128}
    assert sorted((r["objective"], r["seed"]) for r in ens["runs"]) == sorted(
        (o, s) for o in ("single", *OBJECTIVES) for s in (0, 1, 2))
    assert {r["path"][-1]["iteration"] for r in ens["runs"]} == {40} and ens["meta"]["members"] == 4
    assert len(props["reward_models"]) == 11 and props["meta"]["stops"] == [20, 40]
    assert sorted((r["reward_model"], r["seed"]) for r in props["runs"]) == sorted(
        (n, s) for n in props["reward_models"] for s in (0, 1, 2))
