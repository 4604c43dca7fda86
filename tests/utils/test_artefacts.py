"""Nothing saved is ever lost: atomic files and folders, kills at every file operation of a save and
at random instants, truthful messages when a command is interrupted (issue 17, items 1, 2 and 7)."""
import json
import os
import signal

import pytest
import torch

import rlhf_lab.utils.artefacts as artefacts
from killing import PPOCase, RewardModelCase, in_child, leftovers, random_kills
from rlhf_lab.utils.artefacts import ArtefactError, atomic_dir, check_writable, read_json, recover, write_json


# ---- files and folders -------------------------------------------------------------------

def test_write_json_replaces_whole_files_and_refuses_nan(tmp_path):
    path = tmp_path / "sub" / "h.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    with pytest.raises(ValueError):
        write_json(path, {"a": float("nan")})
    assert read_json(path) == {"a": 2}                       # the failed write changed nothing
    assert [p.name for p in path.parent.iterdir()] == ["h.json"]   # no temporary file left


def test_read_json_names_the_damaged_file(tmp_path):
    path = tmp_path / "history.json"
    path.write_text('{"rows": [1, 2')
    with pytest.raises(ArtefactError, match="history.json is damaged.*start a new run"):
        read_json(path, hint="start a new run")
    with pytest.raises(ArtefactError, match="missing.*checkpoint"):
        read_json(tmp_path / "nope.json", "checkpoint")
    path.write_bytes(b"\xef\xbb\xbf" + b'{"ok": true}')       # a BOM from an editor is fine
    assert read_json(path) == {"ok": True}


@pytest.mark.parametrize("fallback", [False, True])
def test_atomic_dir_keeps_the_old_folder_when_the_body_fails(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(artefacts, "exchange", lambda a, b: False)
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "w.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "w.txt").write_text("half")
            raise RuntimeError("crash while writing")
    assert (out / "w.txt").read_text() == "old"
    with atomic_dir(out) as tmp:
        (tmp / "w.txt").write_text("new")
    assert (out / "w.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_leftovers_of_a_killed_save_never_block_the_next(tmp_path):
    """Today's code: killed while deleting <out>.old, every later save failed ('Directory not empty')."""
    out = tmp_path / "ckpt"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    dead = 2**22 + 12345                                         # no such process
    for kind in ("old", "saving"):
        stale = tmp_path / f".ckpt.{kind}-{dead}-deadbeef"
        stale.mkdir()
        (stale / "half.bin").write_bytes(b"x" * 10)
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("2")
    assert (out / "a").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_recover_puts_back_an_artefact_killed_between_two_renames(tmp_path):
    """Where no atomic exchange exists, a kill between `out -> old` and `staging -> out` leaves only
    the old copy: the loaders put it back."""
    out, old = tmp_path / "rm", tmp_path / f".rm.old-{2**22 + 1}-00000000"
    old.mkdir()
    (old / "reward_config.json").write_text("{}")
    assert recover(out) == out and (out / "reward_config.json").exists() and not old.exists()


def test_check_writable_refuses_before_any_work(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ArtefactError, match="is a file, not a folder"):
        check_writable(f / "out")
    with pytest.raises(ArtefactError, match="is a file, not a folder"):
        check_writable(f)
    with pytest.raises(ArtefactError, match="cannot be written"):
        check_writable("/proc/rlhf-lab-test/out")                # refused even to root
    assert check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()                          # nothing created
    if os.geteuid() != 0:                                         # root writes anywhere: only as a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(ArtefactError, match="cannot be written"):
            check_writable(ro / "out")


# ---- kills at every file operation of a save ---------------------------------------------

def kill_at_every_operation(case, fallback: bool = False) -> int:
    """Kill a save of marker 2 over marker 1 at its 1st, 2nd, ... file operation until one runs to
    the end; after each kill the artefact loads as 1 or 2, leaves nothing visible, and saves again."""
    n = 0
    while True:
        n += 1
        case.save(1)
        outcome = in_child(lambda: case.save(2), kill_at=n, fallback=fallback)
        assert case.load() in (1, 2), f"kill at operation {n}"
        case.save(3)                                               # the next save works
        assert case.load() == 3 and leftovers(case) == [], f"kill at operation {n}"
        if outcome == "done":
            return n - 1


@pytest.fixture(scope="module")
def rm_case(tmp_path_factory):
    return RewardModelCase(tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def ppo_case(tmp_path_factory):
    return PPOCase(tmp_path_factory.mktemp("ppo"))


@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "two-renames"])
def test_reward_model_save_killed_at_every_file_operation(rm_case, fallback):
    assert kill_at_every_operation(rm_case, fallback) >= 15


def test_ppo_checkpoint_save_killed_at_every_file_operation(ppo_case):
    assert kill_at_every_operation(ppo_case) >= 25


def test_random_kills_lose_no_checkpoint_and_no_reward_model(ppo_case, rm_case):
    """25 random SIGKILLs during a loop of saves, for each artefact: 0 lost, every next save works."""
    for case in (ppo_case, rm_case):
        res = random_kills(case, kills=25, seed=1)
        print(case.name, res)
        assert res["kills"] == 25 and res["lost"] == 0 and res["failed_next_save"] == 0, res
        assert res["leftovers_after"] == []


# ---- interrupted commands say what they saved --------------------------------------------

def test_interrupted_reward_command_says_nothing_was_saved_and_keeps_the_old_model(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle of a save (the old code once left a new backbone with the old head and said
    'nothing was saved'): the old model stays, whole, and the message is true."""
    import rlhf_lab.reward.model as reward_model
    from rlhf_lab.cli.main import main
    from rlhf_lab.labels.store import PreferenceStore
    from rlhf_lab.labels.preferences import load_preferences

    labels = tmp_path / "labels" / "few.jsonl"
    PreferenceStore(labels).extend(load_preferences(labeler="sim-gold")[:40])
    out = tmp_path / "rm"
    assert main(["reward", "--labels", str(labels), "--epochs", "1", "--out", str(out), "--device", "cpu"]) == 0
    before = reward_model.load_reward_model(str(out)).score(["Write a review."], ["A fine film."])

    def interrupted(*a, **k):    # Ctrl-C after the weights and the tokenizer, while writing the model card
        raise KeyboardInterrupt
    monkeypatch.setattr(reward_model, "_card", interrupted)
    assert main(["reward", "--labels", str(labels), "--epochs", "1", "--seed", "3", "--out", str(out),
                 "--device", "cpu"]) == 130
    assert "nothing was saved" in capsys.readouterr().err
    monkeypatch.undo()
    after = reward_model.load_reward_model(str(out)).score(["Write a review."], ["A fine film."])
    assert torch.equal(before, after) and sorted(p.name for p in tmp_path.iterdir()) == ["labels", "rm"]


def test_interrupted_ppo_command_names_the_checkpoint_it_saved(tmp_path, monkeypatch, capsys):
    from rlhf_lab.cli.main import main
    from rlhf_lab.rl.ppo_trainer import PPOTrainer

    real, calls = PPOTrainer.iteration, []

    def iteration(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self)
    monkeypatch.setattr(PPOTrainer, "iteration", iteration)
    out = tmp_path / "ppo"
    code = main(["ppo", "--out", str(out), "--iterations", "3", "--checkpoint-every", "1", "--batch-size", "8",
                 "--mini-batch-size", "4", "--max-new-tokens", "8", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 130 and f"saved complete before the interruption: {out}" in err and "--resume" in err
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 1


def test_simulated_labels_are_written_atomically(tmp_path, monkeypatch):
    """An interrupted `rlhf-lab label` leaves the earlier file whole (and no partial file)."""
    from rlhf_lab.labels.labelers import build_simulated_dataset

    build_simulated_dataset(tmp_path, n_prompts=2, k=2, personas=("gold",), max_new_tokens=8)
    before = (tmp_path / "simulated.jsonl").read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        build_simulated_dataset(tmp_path, n_prompts=3, k=2, personas=("gold",), max_new_tokens=8, overwrite=True)
    assert (tmp_path / "simulated.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json", "simulated.jsonl"]


@pytest.fixture
def sigint(request):
    """SIGINT handled as the test asks (Python's KeyboardInterrupt, or ignored), whatever the test run
    started with: a run started in the background with SIGINT ignored installs no KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, request.param)
    yield request.param
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sigint", [signal.default_int_handler], indirect=True)
def test_ctrl_c_during_the_swap_is_held_until_the_swap_is_done(tmp_path, monkeypatch, sigint):
    """A Ctrl-C that lands between the swap and its bookkeeping would make the command say 'nothing
    was saved' about a folder it had replaced: it is held back until both are done."""
    out = tmp_path / "m"
    with atomic_dir(out) as tmp:
        (tmp / "v").write_text("old")
    real = artefacts.exchange

    def exchange_with_ctrl_c(a, b):
        os.kill(os.getpid(), signal.SIGINT)      # arrives while the swap is in progress
        return real(a, b)
    monkeypatch.setattr(artefacts, "exchange", exchange_with_ctrl_c)
    n = artefacts.SAVES.mark()
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "v").write_text("new")
    assert (out / "v").read_text() == "new" and artefacts.SAVES.since(n) == [out]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]



@pytest.mark.parametrize("sigint", [signal.SIG_IGN], indirect=True)
def test_an_ignored_ctrl_c_during_the_swap_stays_ignored(tmp_path, monkeypatch, sigint):
    """A process that ignores SIGINT (started in the background) is not interrupted by the held one."""
    out = tmp_path / "m"
    real = artefacts.exchange

    def exchange_with_ctrl_c(a, b):
        os.kill(os.getpid(), signal.SIGINT)
        return real(a, b)
    monkeypatch.setattr(artefacts, "exchange", exchange_with_ctrl_c)
    with atomic_dir(out) as tmp:
        (tmp / "v").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "v").write_text("new")
    assert (out / "v").read_text() == "new" and signal.getsignal(signal.SIGINT) is signal.SIG_IGN

def test_ledger_reads_since_a_mark_and_keeps_a_bounded_tail():
    ledger = artefacts.Ledger(keep=3)
    assert ledger.since() == [] and ledger.mark() == 0
    ledger.record("a")
    mark = ledger.mark()
    ledger.record("b"), ledger.record("c")
    assert ledger.since(mark) == ["b", "c"] and ledger.since() == ["a", "b", "c"]
    ledger.record("d")                        # "a" falls out of the kept tail
    assert ledger.since() == ["b", "c", "d"] and ledger.since(mark) == ["b", "c", "d"]
    assert ledger.since(ledger.mark()) == []
