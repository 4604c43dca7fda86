
import pytest

from rlhf_lab.exercises.registry import check


def test_unanswered_exercise_does_not_fail_the_notebook(capsys):
    assert check("00.1", None) is False
    assert "not answered yet" in capsys.readouterr().out


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
