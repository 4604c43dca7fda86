import pytest

from rlhf_lab.rl.rejection_sampling import matched_random, select_passing

PROMPTS = ["p0", "p1", "p2"]
COMPLETIONS = [["a", "b", "c", "d"], ["e", "f", "g", "h"], ["i", "j", "k", "l"]]
PASSED = [[False, True, False, True], [False, False, False, False], [True, True, True, True]]


def test_select_keeps_exactly_the_passing_completions():
    assert select_passing(PROMPTS, COMPLETIONS, PASSED) == [("p0", "b"), ("p0", "d"), ("p2", "i"), ("p2", "j"),
                                                             ("p2", "k"), ("p2", "l")]


def test_the_random_control_matches_the_count_per_prompt_and_only_the_selection_differs():
    picked = matched_random(PROMPTS, COMPLETIONS, PASSED, seed=3)
    assert [p for p, _ in picked] == [p for p, _ in select_passing(PROMPTS, COMPLETIONS, PASSED)]
    assert all(c in COMPLETIONS[PROMPTS.index(p)] for p, c in picked)
    assert len({c for _, c in picked}) == len(picked)                       # without replacement
    draws = {tuple(c for p, c in matched_random(PROMPTS, COMPLETIONS, PASSED, seed=s) if p == "p0") for s in range(50)}
    assert len(draws) > 3                                                    # random, not the passing ones every time
    assert matched_random(PROMPTS, COMPLETIONS, PASSED, seed=3) == picked    # seeded


def test_mismatched_shapes_are_named():
    with pytest.raises(ValueError, match="3 prompts, 2 rows of completions"):
        select_passing(PROMPTS, COMPLETIONS[:2], PASSED)
    with pytest.raises(ValueError, match="prompt 1: 4 completions but 3 verdicts"):
        matched_random(PROMPTS, COMPLETIONS, [PASSED[0], PASSED[1][:3], PASSED[2]])


def test_group_shares_count_the_uniform_groups():
    import torch

    from rlhf_lab.rl.rejection_sampling import group_shares

    passed = torch.tensor([[True, True], [False, False], [True, False], [False, False]])
    assert group_shares(passed) == {"groups/all_pass": 0.25, "groups/all_fail": 0.5}


def test_verdict_groups_put_a_passing_completion_above_a_failing_one():
    from rlhf_lab.rl.rejection_sampling import verdict_groups
    from rlhf_lab.world.specs import specs

    few = specs(3, "train")
    groups = verdict_groups(few, COMPLETIONS, PASSED, max_pairs=3, seed=0)
    assert [g.prompt_id for g in groups] == [few[0].id] * 3              # only the mixed group gives pairs
    assert all(g.ranking == (0, 1) and g.completions[0] in "bd" and g.completions[1] in "ac" for g in groups)
    assert len(verdict_groups(few, COMPLETIONS, PASSED, max_pairs=10)) == 4   # all 2 x 2 pairs, no more
