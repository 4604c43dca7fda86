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
    assert check("00.3", lambda policy: copy.deepcopy(policy).requires_grad_(False).eval())

    def step_by_step(policy):                      # the same, written out parameter by parameter
        reference = copy.deepcopy(policy)
        for p in reference.parameters():
            p.requires_grad = False
        reference.eval()
        return reference

    assert check("00.3", step_by_step)
    # wrong: the model itself; the policy frozen in place; the forbidden helper; the backbone without its head;
    # a copy left trainable
    assert not check("00.3", frozen_copy(copy.deepcopy(model)))
    assert not check("00.3", lambda policy: policy.requires_grad_(False).eval())
    assert not check("00.3", lambda policy: frozen_copy(policy))
    assert not check("00.3", lambda policy: copy.deepcopy(policy.transformer).requires_grad_(False).eval())
    assert not check("00.3", lambda policy: copy.deepcopy(policy).eval())


def test_unknown_exercise_is_an_error():
    with pytest.raises(KeyError, match="no exercise"):
        check("99.9", 1)


def test_the_bellman_backup_and_the_expected_number_of_steps():
    import numpy as np

    from rlhf_lab.rl.mdp import ChainMDP, policy_values

    assert check("01.4", lambda V, P, R, pi, gamma: (pi * (R + gamma * P @ V)).sum(-1))
    assert check("01.4", lambda V, P, R, pi, gamma: np.einsum("sa,sa->s", pi, R + gamma * np.einsum("sat,t->sa", P, V)))
    assert not check("01.4", lambda V, P, R, pi, gamma: (R + gamma * P @ V).max(-1))          # optimality, not pi
    assert not check("01.4", lambda V, P, R, pi, gamma: (pi * (R + P @ V)).sum(-1))            # no discount
    counting = ChainMDP(n=6, slip=0.1, step_cost=-1.0, goal=0.0, gamma=1.0)
    steps = policy_values(counting, np.tile([0.3, 0.7], (6, 1)))[0]
    assert check("01.5", steps) and check("01.5", round(steps, 4))
    assert not check("01.5", 5 / 0.7)              # "five steps right at 0.7": ignores the slips and the wall
    assert not check("01.5", steps * 1.05)         # a sample average's error
