"""A class labels together: labeling sets, a ranker a person can correct, pooling and agreement."""
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from label_tasks import make_tasks as tasks

from rlhf_lab.labels import aggregation as agg
from rlhf_lab.labels import pooling
from rlhf_lab.cli.main import main
from rlhf_lab.labels.label_sets import LabelSetError, as_label_set, load_label_set, write_label_set
from rlhf_lab.labels.labelers import SimulatedLabeler
from rlhf_lab.labels.preferences import LabelTask, load_preferences
from rlhf_lab.labels.store import PreferenceRecord, PreferenceStore, current_records, ranking_to_pairs
from rlhf_lab.labels.ranker import Ranker
from rlhf_lab.labels.ranker_view import letters
from rlhf_lab.world.reviews import ReviewWorld


@pytest.fixture
def set_file(tmp_path):
    s = as_label_set(tasks(), "week3", k=4, temperature=0.7, max_new_tokens=48, seed=0)
    return write_label_set(s, tmp_path / "week3.jsonl")


# ---- labeling sets ------------------------------------------------------------------------

def test_a_set_round_trips_with_its_id_and_hash(set_file):
    s = load_label_set(set_file)
    assert s.set_id.startswith("week3-") and len(s) == 5 and s.header.k == 4
    assert all(t.set_id == s.set_id for t in s.tasks)
    assert [t.completions for t in s.tasks] == [t.completions for t in tasks()]
    assert s.set_id == as_label_set(tasks(), "week3", 4, 0.7, 48, 0).set_id   # the id is the content's
    with pytest.raises(FileExistsError, match="students may be ranking"):
        write_label_set(s, set_file)


@pytest.mark.parametrize("edit, words", [
    (lambda lines: lines[:1] + [lines[1].replace("brilliant", "brilliant!")] + lines[2:], "content hash"),
    (lambda lines: lines[:-1], "says 5 prompts, the file holds 4"),
    (lambda lines: lines[:2] + ['{"prompt_id": "x"}\n'] + lines[3:], "line 3"),
    (lambda lines: lines[:2] + [lines[1]] + lines[3:], "line 3: prompt id"),
    (lambda lines: lines[1:], "line 1: not a labeling-set header"),
])
def test_a_changed_or_damaged_set_is_refused_naming_file_and_line(set_file, edit, words):
    lines = set_file.read_text().splitlines(keepends=True)
    set_file.write_text("".join(edit(lines)))
    with pytest.raises(LabelSetError, match=words) as err:
        load_label_set(set_file)
    assert str(set_file) in str(err.value)


def test_make_label_set_from_the_tiny_model_is_seeded(tiny):
    from rlhf_lab.labels.label_sets import make_label_set

    model, tok = tiny
    prompts = ReviewWorld(0).prompts(3, kind="mixed", split="train")
    a = make_label_set(model, tok, prompts, name="c", k=3, max_new_tokens=12, seed=4)
    b = make_label_set(model, tok, prompts, name="c", k=3, max_new_tokens=12, seed=4)
    assert a.set_id == b.set_id and len(a) == 3 and all(2 <= t.k <= 3 for t in a.tasks)


# ---- the ranker: letters, one counter, double clicks, undo submit ---------------------------

def test_letters_in_the_form_and_the_saved_summary(tmp_path):
    r = Ranker(tasks(2), tmp_path / "ada.jsonl", "ada")
    assert [t.value.split("</b>")[0][-1] for t in r.texts] == ["A", "B", "C", "D"]
    for k in (2, 0, 3, 1):
        r.buttons[k].click()
    r.submit_button.click()
    assert letters([2, 0, 3, 1]) == "C > A > D > B"
    assert "saved C &gt; A &gt; D &gt; B (1 / 2)" in r.status.value
    assert "C &gt; A &gt; D &gt; B" in r.history.value and "labeled so far: 1" in r.history_box.get_title(0)


def test_a_double_click_never_saves_an_unseen_prompt_in_ab_mode(tmp_path):
    store = PreferenceStore(tmp_path / "ada.jsonl")
    r = Ranker(tasks(3, k=2), store, "ada")
    r.buttons[0].click()
    r.buttons[0].click()                     # the second click of a double click, in the same turn
    assert [x.prompt_id for x in store.read()] == [tasks(1)[0].prompt_id]
    assert r.ignored_clicks == 1 and "saved" in r.status.value and "error" not in r.status.value


def test_a_double_click_in_rank_mode_shows_no_error(tmp_path):
    store = PreferenceStore(tmp_path / "ada.jsonl")
    r = Ranker(tasks(3), store, "ada")
    for k in (1, 0, 2, 3):
        r.buttons[k].click()
    r.submit_button.click()
    r.submit_button.click()                  # double click on submit
    r.buttons[2].click()                     # and a stray click on the new prompt
    assert len(store.read()) == 1 and r.order == [] and r.ignored_clicks == 2
    assert "saved" in r.status.value and "error" not in r.status.value and r.last_error is None
    r.min_seconds = 0                        # a person who waits: clicks count again
    r.buttons[2].click()
    assert r.order == [2]


def test_undo_submit_appends_a_retraction_and_brings_the_ranking_back(tmp_path):
    store = PreferenceStore(tmp_path / "ada.jsonl")
    ts = tasks(3)
    r = Ranker(ts, store, "ada", min_seconds=0)
    r.rank_with(SimulatedLabeler("gold", seed=0), limit=2)
    before = store.path.read_bytes()
    last = r.records[ts[1].prompt_id]
    r.undo_submit_button.click()
    assert store.path.read_bytes().startswith(before)          # append-only: nothing rewritten
    log = store.read()
    assert len(log) == 3 and log[-1].retracted and log[-1].ranking == last.ranking
    assert r.current is ts[1] and r.order == list(last.ranking) and r.labeled == 1
    assert "took back" in r.status.value
    assert [x.prompt_id for x in load_preferences(store.path)] == [ts[0].prompt_id]
    again = Ranker(ts, store, "ada")                             # a restart: the prompt is open again
    assert again.current is ts[1] and again.labeled == 1
    r.reset_button.click()
    for k in (3, 2, 1, 0):
        r.buttons[k].click()
    r.submit_button.click()
    (corrected,) = [x for x in load_preferences(store.path) if x.prompt_id == ts[1].prompt_id]
    assert corrected.ranking == [3, 2, 1, 0] and len(store.read()) == 4
    with pytest.raises(ValueError, match="nothing submitted"):
        Ranker(ts, tmp_path / "new.jsonl", "bob").undo_submit()


def test_the_plain_text_fallback_and_the_skipped_count(tmp_path):
    r = Ranker(tasks(3), tmp_path / "ada.jsonl", "ada", min_seconds=0)
    r.rank_with(SimulatedLabeler("gold", seed=0), limit=1)
    text = r._repr_mimebundle_()["text/plain"]
    assert text == "Ranker (ada, ada.jsonl): run this cell again to continue where the saved labels end"
    r.skip_button.click()
    r.rank_with(SimulatedLabeler("gold", seed=0))
    assert "1 skipped prompt remains: revisit it" in r.title.value
    assert r.counter.value.strip() == "2 / 3 labeled, 1 skipped"


def test_a_ranker_refuses_a_file_of_another_set(tmp_path, set_file):
    r = Ranker.from_set(set_file, "ada", folder=tmp_path / "labels")
    assert r.store.path == tmp_path / "labels" / r.set_id / "ada.jsonl"
    r.rank_with(SimulatedLabeler("gold", seed=0), limit=1)
    assert r.saved[0].set_id == r.set_id
    with pytest.raises(ValueError, match="holds labels of the labeling set"):
        Ranker(tasks(), r.store.path, "ada")
    with pytest.raises(ValueError, match="without slashes"):
        Ranker.from_set(set_file, "../ada")


# ---- latest wins, whatever the time stamps look like -------------------------------------

def rec(ranking, when, labeler="ada", **kw):
    return PreferenceRecord(prompt_id="p", prompt="x", completions=[" a.", " b.", " c."], ranking=ranking,
                            labeler=labeler, source="human", model="tiny", created_at=when, **kw)


def test_latest_wins_across_naive_and_aware_hand_edited_timestamps(tmp_path):
    utc = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    naive_later = (utc + timedelta(minutes=5)).replace(tzinfo=None)         # read as UTC
    plus_two = (utc + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=2)))   # 12:01+02:00 = 10:01 UTC
    a, b, c = rec([0, 1, 2], utc), rec([2, 1, 0], naive_later), rec([1, 0, 2], plus_two)
    assert current_records([b, a, c]) == [b]
    assert current_records([a, c]) == [c]                                   # 10:01 UTC beats 10:00 UTC
    same_a, same_b = rec([0, 1, 2], utc), rec([2, 0, 1], utc.replace(tzinfo=None))
    assert current_records([same_a, same_b]) == [same_b]                    # a tie: the one read later
    assert current_records([same_b, same_a]) == [same_a]
    gone = rec([0, 1, 2], naive_later + timedelta(seconds=1), retracted=True)
    assert current_records([a, b, gone, rec([0, 1, 2], utc, labeler="bob")])[0].labeler == "bob"
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(x.model_dump_json() + "\n" for x in (b, a, c)).replace("+00:00", ""))
    assert [x.ranking for x in load_preferences(path)] == [[2, 1, 0]]


# ---- pooling and agreement ------------------------------------------------------------------

def test_two_labelers_rank_one_set_by_clicks_and_pool_with_their_agreement(tmp_path, set_file):
    for name, persona in (("ada", "gold"), ("bob", "gold"), ("cy", "concise")):
        Ranker.from_set(set_file, name, folder=tmp_path / "labels").rank_with(SimulatedLabeler(persona, seed=1))
    label_set = load_label_set(set_file)
    folder = tmp_path / "labels" / label_set.set_id
    pool = pooling.pool_labels(folder, label_set=set_file)
    assert pool.labelers == ["ada", "bob", "cy"] and len(pool.records) == 15 and pool.set_id == label_set.set_id
    two = pooling.pool_labels([folder / "ada.jsonl", folder / "bob.jsonl"])
    report = pooling.agreement_report(two.records)
    by_hand = agg.agreement([r for r in two.records if r.labeler == "ada"], [r for r in two.records if r.labeler == "bob"])
    assert report.agreement["ada"][0] == pytest.approx(by_hand["agreement"]) == report.pooled[0]
    assert report.tau[0, 1] == pytest.approx(by_hand["tau"])
    assert math.isnan(report.pooled[1]) and "one pair: no standard error" in report.table()
    out = pooling.write_pool(pool.records, tmp_path / "pooled.jsonl", inputs=pool.files)
    assert len(load_preferences(out)) == 15
    with pytest.raises(ValueError, match="one of the files being pooled"):
        pooling.write_pool(pool.records, folder / "ada.jsonl", inputs=pool.files)


def test_pooling_refuses_what_does_not_belong_together(tmp_path, set_file):
    labels = tmp_path / "labels"
    r = Ranker.from_set(set_file, "ada", folder=labels)
    r.rank_with(SimulatedLabeler("gold", seed=0))
    fresh = tmp_path / "fresh.jsonl"
    Ranker(tasks(), fresh, "bob", min_seconds=0).rank_with(SimulatedLabeler("gold", seed=0))
    with pytest.raises(pooling.PoolError, match="different labeling sets"):
        pooling.pool_labels([r.store.path, fresh])
    with pytest.raises(pooling.PoolError, match="another labeling set than"):
        pooling.pool_labels([fresh], label_set=set_file)
    other = [t for t in tasks(6)][1:]                     # same prompt ids shifted: other completions
    changed = [LabelTask(t.prompt, o.completions, o.gold, "tiny") for t, o in zip(tasks(5), other)]
    mismatch = tmp_path / "mismatch.jsonl"
    Ranker(changed, mismatch, "cy", min_seconds=0).rank_with(SimulatedLabeler("gold", seed=0))
    with pytest.raises(pooling.PoolError, match=r"mismatch.jsonl: labeler 'cy', prompt .* completions differ"):
        pooling.pool_labels([fresh, mismatch])
    with pytest.raises(pooling.PoolError, match="is a labeling set"):
        pooling.pool_labels([set_file])
    with pytest.raises(pooling.PoolError, match="not found"):
        pooling.pool_labels([tmp_path / "nope.jsonl"])


def test_agreement_report_by_hand_and_the_outlier():
    ks = [[0, 1, 2], [0, 1, 2], [0, 2, 1], [2, 1, 0]]       # d reverses everything
    recs = [rec(r, datetime(2026, 12, 1, tzinfo=timezone.utc), labeler=n) for r, n in zip(ks, "abcd")]
    report = pooling.agreement_report(recs)
    # pair agreements: ab 1, ac 2/3, ad 0, bc 2/3, bd 0, cd 1/3
    assert report.pairwise[0, 1] == 1 and report.pairwise[0, 2] == pytest.approx(2 / 3)
    assert report.agreement["a"][0] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert report.agreement["a"][1] == pytest.approx(np.std([1, 2 / 3, 0], ddof=1) / math.sqrt(3))
    assert report.outliers == ["d"]
    means = [report.agreement[n][0] for n in "abcd"]
    assert report.pooled == pytest.approx((np.mean(means), np.std(means, ddof=1) / 2))
    with pytest.raises(ValueError, match="at least two labelers"):
        pooling.agreement_report(recs[:1])


def test_consensus_is_bradley_terry_per_prompt_and_matches_the_slow_fit():
    shipped = load_preferences()
    some = [r for r in shipped if r.prompt_id in {x.prompt_id for x in shipped[:40]}]
    cons = pooling.consensus(some)
    assert {c.labeler for c in cons} == {"pooled"} and len(cons) == len({r.prompt_id for r in some})
    for c in cons[:5]:
        pairs = [p for r in some if r.prompt_id == c.prompt_id for p in ranking_to_pairs(r.ranking)]
        theta = agg.bradley_terry(pairs)
        fast = agg.bradley_terry_groups(_wins(pairs, c.k))[0]
        assert fast.tolist() == pytest.approx([theta.get(i, 0.0) for i in range(c.k)], abs=1e-5)
        assert c.ranking == sorted(range(c.k), key=lambda i: (-round(theta.get(i, 0.0), 9), i))
    unanimous = [rec([2, 0, 1], datetime(2026, 12, 1), labeler=n) for n in "abc"]
    assert pooling.consensus(unanimous)[0].ranking == [2, 0, 1]


def _wins(pairs, k):
    import torch

    w = torch.zeros(1, k, k)
    for a, b in pairs:
        w[0, a, b] += 1
    return w


# ---- the instructor's commands --------------------------------------------------------------

def test_cli_label_set_make_pool_and_export(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "class.jsonl"
    assert main(["label-set", "make", "--n", "3", "--k", "3", "--max-new-tokens", "12", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert "labeling set class-" in capsys.readouterr().out
    assert main(["label-set", "make", "--n", "3", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["label-set", "make", "--n", "0", "--out", str(tmp_path / "x.jsonl")]) == 2
    for name, persona in (("ada", "gold"), ("bob", "focused")):
        Ranker.from_set(out, name).rank_with(SimulatedLabeler(persona, seed=2))
    folder = tmp_path / "runs" / "labels" / load_label_set(out).set_id
    assert main(["labels", "pool", str(folder), "--set", str(out), "--out", str(tmp_path / "pooled.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "pooled 6 rankings of 3 prompts by 2 labelers" in text and "InstructGPT" in text
    assert main(["labels", "pool", str(folder), "--consensus", "--out", str(tmp_path / "cons.jsonl")]) == 0
    assert {r.labeler for r in load_preferences(tmp_path / "cons.jsonl")} == {"pooled"}
    assert main(["labels", "export", str(tmp_path / "pooled.jsonl"), "--out", str(tmp_path / "pairs.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == sum(math.comb(r.k, 2) for r in load_preferences(tmp_path / "pooled.jsonl"))
    assert {x["labeler"] for x in rows} == {"ada", "bob"}
    assert main(["labels", "pool", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_notebook_03_trains_on_a_pooled_file_when_one_is_given(tmp_path, monkeypatch, set_file):
    from rlhf_lab import course
    from rlhf_lab.config import PROFILES

    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    profile = PROFILES["cpu"]()
    records, source = course.reward_labels(profile)            # nothing of the student's: the chain's labels
    assert {r.labeler for r in records} == {"sim-gold"} and "simulated labels" in source
    for name, persona in (("ada", "gold"), ("bob", "focused")):
        Ranker.from_set(set_file, name).rank_with(SimulatedLabeler(persona, seed=0))
    pool = pooling.pool_labels(tmp_path / "runs" / "labels" / load_label_set(set_file).set_id)
    pooled = pooling.write_pool(pool.records, tmp_path / "pooled.jsonl")
    records, source = course.reward_labels(profile, pooled)
    assert len(records) == 10 and {r.labeler for r in records} == {"ada", "bob"} and "2 labelers" in source
    records, source = course.reward_labels(profile, min_own=10)   # the student's own files, set folders included
    assert len(records) == 10 and source.startswith("your labels")
    from rlhf_lab.reward.train import RewardConfig, train_reward_model
    _, hist = train_reward_model(RewardConfig(epochs=1, prompts_per_batch=2), records)
    assert hist.loss and all(math.isfinite(x) for x in hist.loss)
