"""Preference records, the append-only store, pairs, simulated labelers and aggregation."""
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from itertools import combinations, permutations
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from rlhf_lab.labels import aggregation as agg
from rlhf_lab.cli.main import main
from rlhf_lab.config import data_dir
from rlhf_lab.labels.labelers import PERSONAS, SimulatedLabeler, features, label_tasks, make_labelers
from rlhf_lab.labels.preferences import (LabelTask, export_trl, load_preferences, sample_for_labeling, split_by_prompt,
                                         to_pairs)
from rlhf_lab.labels.store import (PreferenceFileError, PreferenceRecord, PreferenceStore, current_records,
                                   ranking_to_pairs)
from rlhf_lab.world.reviews import Prompt, ReviewWorld

REPO = Path(__file__).resolve().parents[2]


def record(ranking=(0, 1, 2), k=3, labeler="ada", prompt_id="p-0", **kw):
    fields = dict(prompt_id=prompt_id, prompt="Write a review of the plot.", ranking=list(ranking),
                  completions=[f" Review {i}." for i in range(k)], labeler=labeler, source="human", model="tiny")
    return PreferenceRecord(**fields | kw)


# ---- records ------------------------------------------------------------------------------

@pytest.mark.parametrize("ranking, k, words", [
    ([0, 0, 1], 3, "not a permutation"),
    ([0, 1], 3, "2 entries but there are K=3"),
    ([0, 1, 2, 3], 3, "4 entries but there are K=3"),
    ([0, 1, 5], 3, "index 5 is out of range for K=3"),
    ([0, -1, 2], 3, "index -1 is out of range"),
])
def test_invalid_rankings_are_rejected_with_the_problem_named(ranking, k, words):
    with pytest.raises(ValidationError, match=words):
        record(ranking, k)


def test_record_rejects_bad_shapes_and_types():
    with pytest.raises(ValidationError, match="at least 2"):
        record([0], k=1)
    with pytest.raises(ValidationError, match="at most 9"):
        record(list(range(10)), k=10)
    with pytest.raises(ValidationError, match="ranking"):
        record(["0", 1, 2])                       # strings are not indices
    with pytest.raises(ValidationError, match="source"):
        record(source="robot")
    with pytest.raises(ValidationError, match="gold has 2 scores"):
        record(gold=[0.1, 0.2])
    with pytest.raises(ValidationError, match="identical"):
        PreferenceRecord(prompt_id="p", prompt="x", completions=["a.", " a. "], ranking=[0, 1],
                         labeler="l", source="human", model="m")
    with pytest.raises(ValidationError, match="extra"):
        PreferenceRecord.model_validate({**record().model_dump(), "mood": "happy"})


# ---- store --------------------------------------------------------------------------------

def test_store_round_trip_and_resume_ids(tmp_path):
    store = PreferenceStore(tmp_path / "labels" / "ada.jsonl")
    assert store.read() == [] and len(store) == 0
    a = store.append(record(prompt_id="p-0"))
    b = store.append(record([2, 1, 0], prompt_id="p-1", labeler="bob"))
    assert store.read() == [a, b]
    assert store.labeled_prompt_ids("ada") == {"p-0"} and store.labeled_prompt_ids("bob") == {"p-1"}
    lines = store.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3                  # one line per record
    assert json.loads(lines[1])["ranking"] == [2, 1, 0]


def test_store_validates_on_write(tmp_path):
    store = PreferenceStore(tmp_path / "x.jsonl")
    bad = record().model_dump() | {"ranking": [1, 1, 0]}
    with pytest.raises(ValidationError, match="not a permutation"):
        store.append(bad)
    assert not store.path.exists() or store.path.read_bytes() == b""


def test_torn_last_line_is_skipped_with_a_warning_and_repaired_on_append(tmp_path):
    store = PreferenceStore(tmp_path / "x.jsonl")
    saved = store.extend([record(prompt_id=f"p-{i}") for i in range(3)])
    full = record(prompt_id="p-3").model_dump_json().encode()
    with open(store.path, "ab") as f:
        f.write(full[:40])                                         # a writer died mid-line
    with pytest.warns(UserWarning, match=r"x\.jsonl: line 4 is incomplete"):
        assert store.read() == saved
    with pytest.warns(UserWarning, match="moved to"):
        new = store.append(record(prompt_id="p-4"))
    assert store.read() == saved + [new]                           # no warning now: clean file
    assert Path(f"{store.path}.torn").read_bytes() == full[:40] + b"\n"


def test_garbage_after_the_last_newline_is_treated_as_torn(tmp_path):
    store = PreferenceStore(tmp_path / "x.jsonl")
    saved = store.extend([record()])
    with open(store.path, "ab") as f:
        f.write(b"\x00\x00\x00\n")                                 # zeros after a power cut
    with pytest.warns(UserWarning, match="line 2, the last line, is not valid JSON"):
        assert store.read() == saved


def test_garbage_with_a_newline_is_quarantined_before_the_next_append(tmp_path):
    """Issue 17.3: today's append wrote after the NUL line, and the next read failed at 'line 5'."""
    store = PreferenceStore(tmp_path / "x.jsonl")
    saved = store.extend([record(prompt_id=f"p-{i}") for i in range(4)])
    with open(store.path, "ab") as f:
        f.write(b"\x00\x00\x00\x00\n")
    with pytest.warns(UserWarning, match="moved to"):
        new = store.append(record(prompt_id="p-9"))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")                             # a clean file: no warning at all
        assert store.read() == saved + [new]
    assert Path(f"{store.path}.torn").read_bytes() == b"\x00\x00\x00\x00\n"


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Issue 17.3: a one-line file saved by an editor with a UTF-8 BOM loaded as 0 records."""
    path = tmp_path / "x.jsonl"
    rec = record()
    path.write_bytes(b"\xef\xbb\xbf" + rec.model_dump_json().encode() + b"\n")
    assert PreferenceStore(path).read() == [rec]
    path.write_bytes(b"\xef\xbb\xbf" + rec.model_dump_json().encode())   # and without the final newline
    assert PreferenceStore(path).read() == [rec]
    new = PreferenceStore(path).append(record(prompt_id="p-1"))
    assert PreferenceStore(path).read() == [rec, new]


def test_a_valid_last_record_without_its_newline_is_kept(tmp_path):
    """Issue 17.3: an editor stripped the final newline; today's append moved the record to .torn."""
    store = PreferenceStore(tmp_path / "x.jsonl")
    saved = store.extend([record(prompt_id=f"p-{i}") for i in range(2)])
    store.path.write_bytes(store.path.read_bytes().rstrip(b"\n"))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.read() == saved
        new = store.append(record(prompt_id="p-2"))
        assert store.read() == saved + [new]
    assert not Path(f"{store.path}.torn").exists()


def test_append_once_per_prompt_checks_and_writes_under_one_lock(tmp_path):
    store = PreferenceStore(tmp_path / "x.jsonl")
    first = store.append(record(prompt_id="p-0"), once_per_prompt=True)
    assert store.append(record([2, 1, 0], prompt_id="p-0"), once_per_prompt=True) is None
    assert store.append(record(prompt_id="p-0", labeler="bob"), once_per_prompt=True) is not None
    assert [r.record_id for r in store.read() if r.labeler == "ada"] == [first.record_id]


RACER = textwrap.dedent("""
    import sys, time
    from rlhf_lab.labels.preferences import PreferenceRecord, PreferenceStore
    path, ranking, go = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], float(sys.argv[3])
    store = PreferenceStore(path)
    rec = PreferenceRecord(prompt_id="p-0", prompt="x", completions=["a", "b", "c"], ranking=ranking,
                           labeler="ada", source="human", model="m")
    while time.time() < go:
        pass
    print("saved" if store.append(rec, once_per_prompt=True) else "skipped", flush=True)
""")


def test_two_processes_of_one_labeler_save_a_prompt_once(tmp_path):
    """Issue 17.5: today both processes saved the same prompt (with opposite rankings) in 12 of 40
    trials, because the 'already saved' check ran outside the lock."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for trial in range(6):
        path = tmp_path / f"t{trial}.jsonl"
        go = time.time() + 1.5                                     # both start at the same instant
        procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), ranking, str(go)],
                                  stdout=subprocess.PIPE, text=True, env=env) for ranking in ("0,1,2", "2,1,0")]
        outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        assert outs == ["saved", "skipped"], (trial, outs)
        assert len(PreferenceStore(path).read()) == 1


def test_load_preferences_names_a_missing_file_or_a_folder(tmp_path):
    """Issue 17.8: a missing --labels file said "no rankings by labeler 'sim-gold'"."""
    with pytest.raises(FileNotFoundError, match="preference file .*nope.jsonl not found"):
        load_preferences(tmp_path / "nope.jsonl")
    with pytest.raises(PreferenceFileError, match="is a folder, not a preference file"):
        load_preferences(tmp_path)


def test_malformed_lines_before_the_end_are_errors_naming_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    good = record().model_dump_json()
    path.write_text(good + "\n{not json\n" + good + "\n")
    with pytest.raises(PreferenceFileError, match=r"x\.jsonl, line 2: not valid JSON"):
        PreferenceStore(path).read()
    bad = json.loads(good) | {"ranking": [0, 0, 1]}
    path.write_text(good + "\n\n" + json.dumps(bad) + "\n" + good + "\n")   # blank lines are fine
    with pytest.raises(PreferenceFileError, match=r"line 3: invalid record: .*not a permutation"):
        PreferenceStore(path).read()
    path.write_text(json.dumps(json.loads(good) | {"ranking": [0, 1, 7]}) + "\n")
    with pytest.raises(PreferenceFileError, match="line 1: invalid record: .*out of range"):
        PreferenceStore(path).read()            # a complete last line that is invalid is an error too


WRITER = textwrap.dedent("""
    import sys, time
    from rlhf_lab.labels.preferences import PreferenceRecord, PreferenceStore
    path, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = PreferenceStore(path)
    while go != "-" and not __import__("os").path.exists(go):
        time.sleep(0.005)
    for i in range(n):
        store.append(PreferenceRecord(prompt_id=f"{name}-{i}", prompt="x" * 2000,
                                      completions=[f"{name} {i} {j} " + "y" * 3000 for j in range(4)],
                                      ranking=[3, 1, 0, 2], labeler=name, source="simulated", model="m"))
        print(i, flush=True)                    # reported only after append returned (fsynced)
""")


def _writer(tmp_path, name, n, go="-"):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "shared.jsonl"), name, str(n), go],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_eight_processes_appending_concurrently_lose_and_interleave_nothing(tmp_path):
    go = tmp_path / "go"
    procs = [_writer(tmp_path, f"w{i}", 40, str(go)) for i in range(8)]
    time.sleep(1.0)
    go.touch()                                  # start all writers at once
    assert all(p.wait(timeout=120) == 0 for p in procs)
    records = PreferenceStore(tmp_path / "shared.jsonl").read()   # raises on any interleaved line
    assert len(records) == 8 * 40
    assert sorted(r.prompt_id for r in records) == sorted(f"w{i}-{j}" for i in range(8) for j in range(40))
    for i in range(8):                          # each writer's own records stay in its order
        mine = [int(r.prompt_id.split("-")[1]) for r in records if r.labeler == f"w{i}"]
        assert mine == list(range(40))


def test_a_writer_killed_mid_run_leaves_every_reported_record_readable(tmp_path):
    proc = _writer(tmp_path, "victim", 100000)
    reported = []
    while len(reported) < 30:
        reported.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the kill may or may not have torn the last line
        records = PreferenceStore(tmp_path / "shared.jsonl").read()
    got = [int(r.prompt_id.split("-")[1]) for r in records]
    assert got == list(range(len(got))) and len(got) >= len(reported)
    new = PreferenceStore(tmp_path / "shared.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new.append(record(prompt_id="after"))   # a fresh writer carries on after the crash
    assert [r.prompt_id for r in new.read()][-1] == "after"


def test_current_records_keeps_the_later_duplicate():
    first = record([0, 1, 2])
    second = record([2, 1, 0])
    other = record(labeler="bob")
    assert current_records([first, second, other]) == [second, other]


# ---- pairs --------------------------------------------------------------------------------

def test_pair_expansion_by_hand():
    assert ranking_to_pairs([2, 0, 1]) == [(2, 0), (2, 1), (0, 1)]
    assert ranking_to_pairs([1, 3, 0, 2]) == [(1, 3), (1, 0), (1, 2), (3, 0), (3, 2), (0, 2)]
    for k in range(2, 10):
        assert len(ranking_to_pairs(list(range(k)))) == math.comb(k, 2)


def test_to_pairs_and_trl_export(tmp_path):
    r = record([2, 0, 1])
    rows = to_pairs([r])
    assert [(x["chosen"], x["rejected"]) for x in rows] == [(" Review 2.", " Review 0."),
                                                           (" Review 2.", " Review 1."),
                                                           (" Review 0.", " Review 1.")]
    assert export_trl([r, record([0, 1, 2, 3], k=4, prompt_id="p-1")], tmp_path / "trl.jsonl") == 3 + 6
    lines = [json.loads(x) for x in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert len(lines) == 9 and set(lines[0]) == {"prompt", "chosen", "rejected", "prompt_id"}
    assert lines[0]["prompt"] == "Write a review of the plot."


def test_split_is_by_prompt_and_stable():
    records = [record(prompt_id=f"p-{i}", labeler=name) for i in range(400) for name in ("a", "b")]
    train, val = split_by_prompt(records, val_fraction=0.2)
    train_ids, val_ids = {r.prompt_id for r in train}, {r.prompt_id for r in val}
    assert not train_ids & val_ids and len(train_ids | val_ids) == 400
    assert 0.14 < len(val_ids) / 400 < 0.26
    assert split_by_prompt(records, val_fraction=0.2) == (train, val)


# ---- sampling ---------------------------------------------------------------------------

def test_sample_for_labeling_gives_k_distinct_completions(tiny):
    model, tok = tiny
    prompts = ReviewWorld(0).prompts(4, split="train")
    tasks = sample_for_labeling(model, tok, prompts, k=3, max_new_tokens=24, device="cpu")
    assert [t.prompt_id for t in tasks] == [p.id for p in prompts]
    for t in tasks:
        assert t.k == 3 and len({c.strip() for c in t.completions}) == 3
        assert len(t.gold) == 3 and all(-1 <= g <= 0.6 for g in t.gold)


class _FakeSamples:
    def __init__(self, completions):
        self.completions = completions


def test_duplicates_are_resampled_and_hopeless_prompts_dropped(monkeypatch):
    import rlhf_lab.lm.generation as gen

    calls = []

    def fake(model, tok, prompts, num_samples, **kw):
        calls.append(list(prompts))
        out = []
        for p in prompts:
            if p == "same":                       # never more than one distinct completion
                out += [" same."] * num_samples
            elif p == "two":                      # only two distinct completions exist
                out += [" a.", " b."] * (num_samples // 2) + [" a."] * (num_samples % 2)
            else:                                 # duplicates first, fresh texts on resampling
                out += [f" {p} {len(calls)}.{j % 2}" for j in range(num_samples)]
        return _FakeSamples(out)

    monkeypatch.setattr(gen, "sample", fake)
    prompts = [Prompt(x, x, "opening", None, "T") for x in ("ok", "same", "two")]
    with pytest.warns(UserWarning, match="1 prompts have fewer than K=4.*1 had fewer than 2"):
        tasks = sample_for_labeling(None, None, prompts, k=4, max_tries=3)
    assert [t.prompt_id for t in tasks] == ["ok", "two"]
    assert tasks[0].k == 4 and tasks[1].k == 2
    assert len(calls) == 4 and calls[1] == ["ok", "same", "two"] and calls[2] == ["same", "two"]


# ---- simulated labelers --------------------------------------------------------------------

def _task(completions, aspect="plot", kind="instruction"):
    p = Prompt("t-0", f"Write a review of the {aspect} of \"X\".\nReview:", kind, aspect, "X")
    return LabelTask(p, tuple(completions), tuple(0.0 for _ in completions), "tiny")


def test_plackett_luce_sampling_matches_the_exact_probabilities(monkeypatch):
    lab = SimulatedLabeler("gold", temperature=0.5, seed=1)
    u = np.array([0.3, 0.0, -0.2])
    monkeypatch.setattr(lab, "utilities", lambda task: u)
    n = 20000
    counts = {}
    for _ in range(n):
        key = tuple(lab.rank(None))
        counts[key] = counts.get(key, 0) + 1
    for perm in permutations(range(3)):
        e = np.exp(u[list(perm)] / 0.5)
        exact = np.prod([e[i] / e[i:].sum() for i in range(3)])    # Plackett-Luce
        assert abs(counts.get(perm, 0) / n - exact) < 0.012, (perm, counts.get(perm, 0) / n, exact)
    assert abs(lab.prob_prefers(None, 0, 1) - 1 / (1 + math.exp(-0.6))) < 1e-12   # Bradley-Terry
    cold = SimulatedLabeler("gold", temperature=0.0)
    monkeypatch.setattr(cold, "utilities", lambda task: u)
    assert cold.rank(None) == [0, 1, 2]


def test_personas_disagree_for_the_reasons_they_are_built_on():
    task = _task([" The plot is fine.", " brilliant brilliant brilliant brilliant",
                  " The plot is brilliant. The soundtrack is brilliant. The acting is brilliant. I loved it."])
    ranks = {name: SimulatedLabeler(name, temperature=0).rank(task) for name in PERSONAS}
    assert ranks["gold"][-1] == 1                  # r* punishes degenerate text
    assert ranks["enthusiast"][-1] == 0            # praise is all the enthusiast reads
    assert ranks["concise"][0] == 0                # short and finished
    assert ranks["focused"][0] == 0                # every sentence about the plot
    f = features(task.prompt, task.completions[2])
    assert f["focus"] == pytest.approx(1 / 4) and f["words_10"] == pytest.approx(1.5)


def test_every_persona_ranks_every_task():
    tasks = [_task([" The plot is fine.", " The plot is dull.", " I loved the plot."]) for _ in range(3)]
    records = label_tasks(tasks, make_labelers(["gold", "concise"], seed=5))
    assert len(records) == 6 and [r.labeler for r in records[:2]] == ["sim-gold", "sim-concise"]
    assert all(r.source == "simulated" and sorted(r.ranking) == [0, 1, 2] for r in records)
    with pytest.raises(ValueError, match="unknown persona"):
        SimulatedLabeler("grumpy")


def test_rate_gives_uncalibrated_scores_on_a_likert_scale():
    task = _task([" The plot is dull.", " The plot is fine.", " The plot is brilliant."])
    lab = SimulatedLabeler("gold", seed=0)
    generous, harsh = lab.rate(task, offset=2, spread=0.5, noise=0), lab.rate(task, offset=-2, spread=1.5, noise=0)
    assert all(1 <= s <= 7 for s in generous + harsh) and sum(generous) > sum(harsh)
    assert np.argsort(generous).tolist() == np.argsort(harsh).tolist() == [0, 1, 2]


# ---- aggregation ---------------------------------------------------------------------------

def test_elo_update_by_hand_and_order_dependence():
    assert agg.elo_update(1000, 1000, 32) == (1016, 984)
    w, l = agg.elo_update(1200, 1000, 32)
    assert w == pytest.approx(1200 + 32 / (1 + 10 ** 0.5)) and w + l == pytest.approx(2200)
    games = [("a", "b")] * 5 + [("b", "a")] * 5
    assert agg.elo_ratings(games)["a"] < 1000 < agg.elo_ratings(games[::-1])["a"]   # the last games count more


def test_bradley_terry_by_hand_and_order_independent():
    bt = agg.bradley_terry([("a", "b")] * 3 + [("b", "a")], l2=0.0)
    assert bt["a"] - bt["b"] == pytest.approx(math.log(3), abs=1e-6)      # p = 3/4 = sigmoid(log 3)
    assert bt["a"] + bt["b"] == pytest.approx(0, abs=1e-12)
    rng = random.Random(0)
    true = {i: rng.gauss(0, 1) for i in range(8)}
    games = []
    for _ in range(3000):
        i, j = rng.sample(range(8), 2)
        games.append((i, j) if rng.random() < 1 / (1 + math.exp(true[j] - true[i])) else (j, i))
    fit = agg.bradley_terry(games)
    shuffled = agg.bradley_terry(rng.sample(games, len(games)))
    assert max(abs(fit[i] - shuffled[i]) for i in fit) < 1e-9
    centred = np.array([true[i] for i in range(8)]) - np.mean(list(true.values()))
    assert np.abs(np.array([fit[i] for i in range(8)]) - centred).max() < 0.25   # recovers the truth


def _tau_brute(a, b):
    pos_a, pos_b = {x: i for i, x in enumerate(a)}, {x: i for i, x in enumerate(b)}
    s = [np.sign(pos_a[x] - pos_a[y]) * np.sign(pos_b[x] - pos_b[y]) for x, y in combinations(a, 2)]
    return sum(s) / len(s)


def test_kendall_tau_and_agreement():
    assert agg.kendall_tau([0, 1, 2], [0, 1, 2]) == 1 and agg.kendall_tau([0, 1, 2], [2, 1, 0]) == -1
    assert agg.kendall_tau([0, 1, 2, 3], [1, 0, 2, 3]) == pytest.approx(4 / 6)
    assert agg.pairwise_agreement([0, 1, 2, 3], [1, 0, 2, 3]) == pytest.approx(5 / 6)
    rng = random.Random(1)
    for k in (2, 4, 7):
        a, b = rng.sample(range(k), k), rng.sample(range(k), k)
        assert agg.kendall_tau(a, b) == pytest.approx(_tau_brute(a, b))
    with pytest.raises(ValueError, match="same items"):
        agg.kendall_tau([0, 1], [0, 2])
    res = agg.agreement([record([0, 1, 2]), record([0, 1, 2], prompt_id="p-1")],
                        [record([1, 0, 2]), record([0, 1, 2], prompt_id="p-1"), record(prompt_id="p-9")])
    assert res["n_prompts"] == 2 and res["agreement"] == pytest.approx((2 / 3 + 1) / 2)


def test_intransitive_triples_by_hand():
    cycle = [("a", "b"), ("b", "c"), ("c", "a")]
    assert agg.intransitive_triples(cycle) == [("a", "b", "c")]
    assert agg.intransitive_triples([("a", "b"), ("b", "c"), ("a", "c")]) == []
    assert agg.intransitive_triples(cycle + [("a", "c")] * 2) == []       # majority breaks the cycle
    # Condorcet: three rankings, each transitive, whose majority is a cycle
    recs = [record(r, labeler=n) for r, n in (([0, 1, 2], "x"), ([1, 2, 0], "y"), ([2, 0, 1], "z"))]
    comps = agg.comparisons_from_records(recs)
    assert len(agg.intransitive_triples(comps)) == 1
    assert all(agg.intransitive_triples(agg.comparisons_from_records([r])) == [] for r in recs)


# ---- exercises -----------------------------------------------------------------------------

def test_label_command_writes_records_and_metadata(tmp_path, capsys):
    out = tmp_path / "prefs"
    argv = ["label", "--simulated", "--n-prompts", "3", "--k", "2", "--labelers", "gold,concise",
            "--max-new-tokens", "16", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    records = load_preferences(out / "simulated.jsonl")
    meta = json.loads((out / "metadata.json").read_text())
    assert len(records) == meta["n_records"] == 6 and meta["n_pairs"] == 6 and meta["seed"] == 0
    assert {r.labeler for r in records} == {"sim-gold", "sim-concise"}
    assert not list(out.glob("*.partial*"))
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err      # never appended to by accident
    assert main(["label", "--n-prompts", "3"]) == 2 and "--simulated" in capsys.readouterr().err
    assert main(["label", "--simulated", "--k", "12"]) == 2


def test_label_command_defaults_to_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path))
    assert main(["label", "--simulated", "--n-prompts", "2", "--k", "2", "--labelers", "gold",
                 "--max-new-tokens", "8", "--device", "cpu"]) == 0
    assert (tmp_path / "preferences" / "simulated.jsonl").exists()


def test_shipped_simulated_data_set():
    meta = json.loads((data_dir() / "preferences" / "metadata.json").read_text())
    records = load_preferences()
    assert len(records) == meta["n_records"]
    gold = [r for r in records if r.labeler == "sim-gold"]
    assert len({r.prompt_id for r in gold}) >= 500 and meta["k"] == 4
    assert sum(r.k == 4 for r in gold) >= 0.95 * len(gold)
    assert {r.source for r in records} == {"simulated"} and meta["command"].startswith("rlhf-lab label --simulated")
    assert (data_dir() / "preferences" / "simulated.jsonl").stat().st_size < 5e6
    assert not (data_dir() / "preferences" / "simulated.jsonl.lock").exists()   # reading wrote nothing
    weights = data_dir() / "models" / "tiny-sft" / "model.safetensors"
    assert meta["model_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest(), (
        "data/preferences was sampled from another tiny-sft checkpoint: regenerate it with "
        "`rlhf-lab label --simulated --out data/preferences --overwrite`")
    # the gold labeler agrees with r* more than chance, the concise one barely with anyone
    names, a, _ = agg.agreement_matrix(records)
    assert a[names.index("sim-gold"), names.index("sim-enthusiast")] > 0.7
    assert a[names.index("sim-gold"), names.index("sim-concise")] < 0.65
