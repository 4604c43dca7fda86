"""Every exercise the notebooks ask has a worked solution that its checker accepts and at least two plausible
wrong answers that it rejects (solutions/, for instructors)."""
import json
import re
from pathlib import Path

import pytest

from rlhf_lab.exercises.registry import check
from solutions import collect

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS, WRONG = collect()


def asked() -> list[str]:
    """The exercise ids the committed notebooks pass to `check`."""
    ids = set()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            ids.update(re.findall(r'check\("([\w]+\.\d+)"', "".join(cell["source"])))
    return sorted(ids)


def test_every_exercise_has_a_solution_and_two_wrong_answers():
    ids = asked()
    assert len(ids) >= 24
    assert set(ids) == set(SOLUTIONS), set(ids) ^ set(SOLUTIONS)
    assert all(len(WRONG[i]) >= 2 for i in ids)
    per_notebook = {}
    for i in ids:
        per_notebook.setdefault(i.split(".")[0], []).append(i)
    assert all(len(v) >= 2 for v in per_notebook.values()), per_notebook


@pytest.mark.parametrize("exercise", sorted(SOLUTIONS))
def test_the_worked_solution_is_accepted(exercise, capsys):
    assert check(exercise, SOLUTIONS[exercise]()), capsys.readouterr().out


@pytest.mark.parametrize("exercise, why, wrong", [(i, why, w) for i in sorted(WRONG) for why, w in WRONG[i]])
def test_a_plausible_wrong_answer_is_rejected(exercise, why, wrong, capsys):
    assert not check(exercise, wrong()), why
    out = capsys.readouterr().out
    assert "not yet" in out and "expected" not in out   # says what is off, never the expected answer itself
