"""Find the bug: each broken function fails its check, the reference fix passes, and the symptom shows."""
import math
import re

import pytest

from rlhf_lab.exercises import bug_checks, bugs
from rlhf_lab.exercises.registry import check

BROKEN = {1: bugs.broken_logprobs, 2: bugs.broken_policy_logprobs, 3: bugs.broken_response_mask,
          4: bugs.broken_scores, 5: bugs.broken_loss_mean}
FIXED = {1: bug_checks._logprobs, 2: bug_checks._topk_logprobs, 3: bug_checks._response_mask, 4: bug_checks._scores,
         5: bug_checks._loss_mean}


@pytest.mark.parametrize("n", range(1, 6))
def test_the_broken_function_fails_and_the_fix_passes(n, capsys):
    assert not check(f"bug.{n}", BROKEN[n])
    assert "not yet" in capsys.readouterr().out
    assert check(f"bug.{n}", FIXED[n])
    assert "correct" in capsys.readouterr().out
    assert not check(f"bug.{n}", None)


def test_two_plausible_wrong_fixes_of_bugs_1_to_3_are_caught():
    import torch

    # bug 1: dividing the log-probs instead of the logits by T; multiplying the logits by T
    assert not check("bug.1", lambda z, y, t: torch.log_softmax(z, -1).gather(-1, y[:, None])[:, 0] / t)
    assert not check("bug.1", lambda z, y, t: torch.log_softmax(z * t, -1).gather(-1, y[:, None])[:, 0])
    # bug 2: renormalising nothing (the broken one), and the top-k of the probabilities without renormalising
    topk_unnormalised = lambda z, y, k: torch.where(                                  # noqa: E731
        z >= z.topk(k, -1).values[:, -1:], torch.log_softmax(z, -1), torch.tensor(float("-inf"))).gather(-1, y[:, None])[:, 0]
    assert not check("bug.2", topk_unnormalised)
    assert not check("bug.2", lambda z, y, k: torch.log_softmax(z / k, -1).gather(-1, y[:, None])[:, 0])


def test_a_plausible_wrong_fix_is_caught():
    # bug 5: clamping each response's length hides the NaN but keeps the 24x weight of short answers
    assert not check("bug.5", lambda x, m: ((x * m).sum(1) / m.sum(1).clamp(min=1)).mean())
    # bug 3: keeping everything before the first PAD also drops the EOS when PAD == EOS
    assert not check("bug.3", lambda t, eos, pad: (t == pad).long().cumsum(1) == 0)


def test_every_fix_the_course_teaches_passes():
    # bug 4: centring alone is InstructGPT's fix (the reward model's bias); centring and scaling is the reference
    assert check("bug.4", lambda s, mean, std: s - mean)
    # centring (and whitening) on the batch also gives the first advantages both signs
    assert check("bug.4", lambda s, mean, std: s - s.mean())
    assert check("bug.4", lambda s, mean, std: (s - s.mean()) / s.std())
    # bug 5: a constant normaliser (Dr. GRPO, notebook 08) and a plain sum weigh every token alike, as the token mean
    assert check("bug.5", lambda x, m: (x * m).sum() / (m.shape[0] * m.shape[1]))
    assert check("bug.5", lambda x, m: (x * m).sum())


def test_plausible_wrong_fixes_of_bugs_4_and_5_are_caught():
    assert not check("bug.4", lambda s, mean, std: s / std)                  # scaled, not centred
    assert not check("bug.4", lambda s, mean, std: (s - mean) * std)
    assert check("bug.5", lambda x, m: (x * m).mean())           # sum / (B * T): a constant normaliser, right
    assert not check("bug.5", lambda x, m: ((x * m).sum(1) / (m.sum(1) + 1)).mean())   # finite, still per response
    assert check("bug.5", lambda x, m: (x * m).sum() / m.sum())                      # the batch's token mean
    assert not check("bug.5", lambda x, m: x.mean())                                 # counts tokens past EOS


def numbers(text):
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+|nan", text)]


def test_the_symptoms_show_what_goes_wrong():
    lo, hi, _ = numbers(bugs.symptom(1))
    assert lo < 0.9 and hi > 1.1                          # ratios far from 1 at step 0
    assert numbers(bugs.symptom(2))[0] < 0                 # a negative KL estimate
    assert "get the mask [[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]" in bugs.symptom(3)
    assert "PAD" not in bugs.symptom(3)                     # the cause is the student's to find   # the EOS is masked out
    assert re.search(r"(9\d|100)% are positive", bugs.symptom(4))
    broken, ratio = numbers(bugs.symptom(5))[0], [float(x) for x in re.findall(r"(\d+) times", bugs.symptom(5))]
    assert math.isnan(broken) and ratio == [24.0]
    for n in range(1, 6):                                   # a symptom says what goes wrong, not how to fix it
        assert not re.search(r"normalis|fixed|token mean|right one|actually sampled|drops", bugs.symptom(n))
    with pytest.raises(ValueError):
        bugs.symptom(6)
