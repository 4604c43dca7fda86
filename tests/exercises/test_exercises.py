import copy

import pytest

from rlhf_lab.exercises.registry import check
from rlhf_lab.lm.models import frozen_copy
from rlhf_lab.world.judges import WELL_FORMED_THRESHOLD, well_formed


def test_unanswered_exercise_does_not_fail_the_notebook(capsys):
    assert check("00.1", None) is False
    assert "not answered yet" in capsys.readouterr().out


def test_unembedding_sizes(tiny):
    model, _ = tiny
    c = model.config
    assert check("00.1", (c.n_embd * c.vocab_size, c.n_embd + 1))
    assert not check("00.1", (c.n_embd * c.vocab_size, c.n_embd))


def test_fraction_well_formed_accepts_the_solution_and_rejects_a_wrong_one():
    def solution(texts):
        return sum(well_formed(t) >= WELL_FORMED_THRESHOLD for t in texts) / len(texts)

    assert check("00.2", solution)
    assert not check("00.2", lambda texts: 1.0)
    assert not check("00.2", lambda texts: 1 / 0)  # a crashing answer is reported, not raised


def test_frozen_reference(tiny):
    model, _ = tiny
    trainable = copy.deepcopy(model).requires_grad_(True).train()
    assert not check("00.3", trainable)
    assert check("00.3", frozen_copy(trainable))


def test_unknown_exercise_is_an_error():
    with pytest.raises(KeyError, match="no exercise"):
        check("99.9", 1)
