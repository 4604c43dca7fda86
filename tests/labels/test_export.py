"""Preference data for the ecosystem: a datasets.Dataset, JSONL and Parquet that TRL trains on."""
import pytest

from rlhf_lab.labels.preferences import PAIR_COLUMNS, export_pairs, load_preferences, to_dataset, to_pairs

RECORDS = load_preferences()[:40]


def test_one_row_per_comparison_with_where_it_came_from():
    ds = to_dataset(RECORDS)
    assert ds.column_names == list(PAIR_COLUMNS)
    assert len(ds) == sum(len(r.completions) * (len(r.completions) - 1) // 2 for r in RECORDS)
    first = RECORDS[0]
    rows = [row for row in ds if row["group_id"] == first.record_id]
    assert len(rows) == len(first.completions) * (len(first.completions) - 1) // 2
    best, worst = first.completions[first.ranking[0]], first.completions[first.ranking[-1]]
    assert {"prompt": first.prompt, "chosen": best, "rejected": worst, "prompt_id": first.prompt_id,
            "group_id": first.record_id, "labeler": first.labeler} in rows
    assert [(r["chosen"], r["rejected"]) for r in ds] == [(p["chosen"], p["rejected"]) for p in to_pairs(RECORDS)]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("conversational", [False, True])
def test_the_files_round_trip_through_load_dataset(tmp_path, suffix, conversational):
    from datasets import load_dataset

    path = tmp_path / f"pairs{suffix}"
    n = export_pairs(RECORDS, path, conversational=conversational)
    back = load_dataset("json" if suffix == ".jsonl" else "parquet", data_files=str(path),
                        cache_dir=str(tmp_path / "cache"))["train"]
    want = to_dataset(RECORDS, conversational=conversational)
    assert n == len(back) == len(want) and back.column_names == want.column_names
    assert back.to_list() == want.to_list()
    if conversational:
        assert back[0]["prompt"][0]["role"] == "user" and back[0]["chosen"][0]["role"] == "assistant"
    assert not list(tmp_path.glob(".*tmp*"))                       # written atomically: no leftovers


def test_an_unknown_suffix_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        export_pairs(RECORDS, tmp_path / "pairs.csv")
    assert not (tmp_path / "pairs.csv").exists()


def test_trl_reward_trainer_trains_one_step_on_the_export(tmp_path):
    pytest.importorskip("trl", reason="the trl extra (pip install -e '.[trl]'); CI installs it")
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rlhf_lab.lm.models import load_tokenizer, resolve

    path = tmp_path / "pairs.jsonl"
    export_pairs(RECORDS, path)
    data = load_dataset("json", data_files=str(path), cache_dir=str(tmp_path / "cache"))["train"]
    tok = load_tokenizer("tiny")
    model = AutoModelForSequenceClassification.from_pretrained(resolve("tiny")[1], num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    args = RewardConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=1,
                        report_to=[], use_cpu=True, bf16=False, save_strategy="no", logging_steps=1,
                        disable_tqdm=True, max_length=128)
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 1
    logged = trainer.state.log_history[0]
    assert 0 < logged["loss"] < 5 and "accuracy" in logged     # TRL 1.16 logs accuracy, margin, ... rewards


def test_the_kit_and_trl_give_the_same_reward_loss_at_step_0():
    pytest.importorskip("trl", reason="the trl extra (pip install -e '.[trl]'); CI installs it")
    from rlhf_lab.interop import reward_loss_at_step0

    out = reward_loss_at_step0("data/models/tiny-rm", RECORDS, n_pairs=16)
    assert out["pairs"] == 16 and 0 < out["kit"] < 2
    assert abs(out["kit"] - out["trl"]) < 1e-5


def test_without_trl_the_error_says_how_to_install_it(monkeypatch):
    import rlhf_lab.interop as interop

    monkeypatch.setattr(interop, "trl_version", lambda: None)
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[trl\]\""):
        interop.reward_loss_at_step0("data/models/tiny-rm", RECORDS)
