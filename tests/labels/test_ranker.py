"""The ranker widget, driven by button clicks in plain Python (no browser)."""
import pytest
from label_tasks import make_tasks

from rlhf_lab.labels.labelers import SimulatedLabeler
from rlhf_lab.labels.store import PreferenceStore
from rlhf_lab.labels.ranker import NotSaved, Ranker


@pytest.fixture
def store(tmp_path):
    return PreferenceStore(tmp_path / "labels" / "ada.jsonl")


def test_a_full_ranking_by_clicks_is_saved(store):
    tasks = make_tasks()
    r = Ranker(tasks, store, "ada")
    assert r.submit_button.disabled and r.counter.value.strip() == "0 / 5 labeled"
    assert [b.description for b in r.buttons] == ["pick as #1"] * 4
    for k in (2, 0, 3):
        r.buttons[k].click()
    assert [b.description for b in r.buttons] == ["#2", "pick as #4", "#1", "#3"]
    assert r.buttons[2].disabled and r.submit_button.disabled
    r.buttons[1].click()
    assert not r.submit_button.disabled
    r.submit_button.click()
    (saved,) = store.read()
    assert saved.ranking == [2, 0, 3, 1] and saved.prompt_id == tasks[0].prompt_id
    assert saved.labeler == "ada" and saved.source == "human" and list(saved.completions) == list(tasks[0].completions)
    assert saved.seconds is not None and saved.gold == pytest.approx(list(tasks[0].gold))
    assert "saved" in r.status.value and r.current is tasks[1] and r.progress.value == 1
    assert r.counter.value.strip() == "1 / 5 labeled"


def test_undo_and_reset(store):
    r = Ranker(make_tasks(), store, "ada")
    r.buttons[2].click()
    r.buttons[0].click()
    r.undo_button.click()
    assert r.order == [2] and r.buttons[0].description == "pick as #2" and not r.buttons[0].disabled
    r.buttons[3].click()
    r.reset_button.click()
    assert r.order == [] and r.undo_button.disabled
    r.undo_button.click()                                   # nothing to undo: harmless
    assert store.read() == []


def test_clicking_a_ranked_completion_is_shown_not_raised(store):
    r = Ranker(make_tasks(), store, "ada")
    r.buttons[1].click()
    r.buttons[1].click()                                      # disabled on screen; from Python it must not raise
    assert "already ranked" in r.status.value and r.order == [1]
    with pytest.raises(ValueError, match="rank all 4"):
        r.submit()


def test_skip_and_revisit(store):
    tasks = make_tasks(3)
    r = Ranker(tasks, store, "ada")
    r.skip_button.click()
    assert r.current is tasks[1] and "1 skipped" in r.counter.value
    labeler = SimulatedLabeler("gold", seed=0)
    r.rank_with(labeler)
    assert r.done and r.revisit_button.layout.display is None
    assert {x.prompt_id for x in store.read()} == {tasks[1].prompt_id, tasks[2].prompt_id}
    r.revisit_button.click()
    assert r.current is tasks[0]
    r.rank_with(labeler)
    assert len(store.read()) == 3 and r.progress.value == 3 and "3 / 3" in r.counter.value


def test_resume_after_a_restart_neither_loses_nor_repeats(store):
    tasks = make_tasks(6)
    first = Ranker(tasks, store, "ada")
    first.rank_with(SimulatedLabeler("gold", seed=0), limit=4)
    del first                                                 # the kernel restarts
    again = Ranker(tasks, store.path, "ada")                  # the same cell, run again
    assert again.already == 4 and again.current is tasks[4] and again.progress.value == 4
    again.rank_with(SimulatedLabeler("gold", seed=1))
    ids = [x.prompt_id for x in store.read()]
    assert ids == [t.prompt_id for t in tasks]               # each prompt exactly once
    assert Ranker(tasks, store, "ada").done
    other = Ranker(tasks, store, "bob")                       # another labeler starts from zero
    assert other.already == 0 and other.current is tasks[0]


def test_two_rankers_on_one_file_never_save_a_prompt_twice(store):
    tasks = make_tasks(3)
    old, new = Ranker(tasks, store, "ada"), Ranker(tasks, store, "ada")   # a cell run twice
    new.rank_with(SimulatedLabeler("gold", seed=0), limit=1)
    for k in range(4):
        old.buttons[k].click()
    old.submit_button.click()                                 # the stale widget's prompt 0
    assert "already saved" in old.status.value and old.current is tasks[1] and old.progress.value == 1
    assert [x.prompt_id for x in store.read()] == [tasks[0].prompt_id]


def test_rank_with_a_simulated_labeler_saves_its_rankings(store):
    tasks = make_tasks(4)
    records = Ranker(tasks, store, "sim-gold", source="simulated").rank_with(SimulatedLabeler("gold", seed=3))
    twin = SimulatedLabeler("gold", seed=3)
    assert [x.ranking for x in records] == [twin.rank(t) for t in tasks]
    assert store.read() == records and all(x.source == "simulated" for x in records)


def test_ab_mode_for_k_2(store):
    tasks = make_tasks(3, k=2)
    r = Ranker(tasks, store, "ada")
    assert r.mode == "ab" and [b.description for b in r.buttons] == ["A is better", "B is better"]
    r.buttons[1].click()                                      # one click chooses and saves
    assert store.read()[0].ranking == [1, 0] and r.current is tasks[1]
    with pytest.raises(ValueError, match="exactly 2"):
        Ranker(make_tasks(2, k=3), store, "ada", mode="ab")


def test_a_failed_save_keeps_the_ranking_and_can_be_retried(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store wants a folder")
    bad = PreferenceStore(blocked / "ada.jsonl")
    tasks = make_tasks(2)
    r = Ranker(tasks, bad, "ada")
    for k in (0, 1, 2, 3):
        r.buttons[k].click()
    r.submit_button.click()
    assert "NOT saved" in r.status.value and r.order == [0, 1, 2, 3] and r.current is tasks[0]
    with pytest.raises(NotSaved):
        r.submit()
    blocked.unlink()                                          # the problem is fixed: retry
    r.submit_button.click()
    assert bad.read()[0].ranking == [0, 1, 2, 3] and r.current is tasks[1]


def test_bad_arguments_are_clear_errors(store):
    with pytest.raises(ValueError, match="no tasks"):
        Ranker([], store, "ada")
    with pytest.raises(ValueError, match="name"):
        Ranker(make_tasks(), store, " ")
    with pytest.raises(ValueError, match="share a prompt id"):
        Ranker(make_tasks(2) * 2, store, "ada")


def test_the_widget_renders_as_a_widget(store):
    r = Ranker(make_tasks(), store, "ada")
    bundle = r._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_keys_rank_submit_undo_reset_skip_and_undo_submit(store):
    tasks = make_tasks()
    r = Ranker(tasks, store, "ada")
    for key in ("c", "1", "Backspace", "A", "4", "b"):     # letters and numbers, any case; Backspace undoes
        r.press(key)
    assert r.order == [2, 0, 3, 1]
    r.press("Enter")
    assert store.read()[0].ranking == [2, 0, 3, 1] and r.current is tasks[1]
    r.press("d")
    r.press("r")
    assert r.order == []
    r.press("s")
    assert r.current is tasks[2] and r.skipped == [tasks[1]] and "revisit skipped" in r.status.value
    r.press("z")                                            # undo submit: the first prompt is back, ranked
    assert r.current is tasks[0] and r.order == [2, 0, 3, 1] and store.read()[-1].retracted
    r.press("x")
    assert "does nothing here" in r.status.value and "Enter submit" in r.status.value
    r.press("Enter")                                        # resubmitted
    assert not store.read()[-1].retracted and r.labeled == 1


def test_keys_in_ab_mode_choose_and_save(store):
    tasks = make_tasks(3, k=2)
    r = Ranker(tasks, store, "ada")
    r.press("2")
    r.press("a")
    assert [x.ranking for x in store.read()] == [[1, 0], [0, 1]]
    r.press("Enter")
    assert "does nothing here" in r.status.value and len(store.read()) == 2


def test_the_key_bridge_answers_pings_and_passes_keys(store):
    r = Ranker(make_tasks(), store, "ada")
    sent = []
    r.keys.send = sent.append
    r.keys._message(r.keys, {"ping": "x1"}, [])
    r.keys._message(r.keys, {"key": "b"}, [])
    assert sent == [{"pong": "x1"}] and r.order == [1]
    assert "A-D or 1-4" in r.keys.hint and "rlhf-ranker" in r.widget._dom_classes


def test_the_text_shown_without_widgets_makes_no_claim_that_can_go_stale(store):
    r = Ranker(make_tasks(), store, "ada")
    text = r._repr_mimebundle_()["text/plain"]
    assert "run this cell again" in text and "labeled" not in text
