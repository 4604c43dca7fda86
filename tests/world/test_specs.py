"""The verifiable task: every constraint has a text that passes it and one that fails it."""
import pytest

from rlhf_lab.world import judges
from rlhf_lab.world.reviews import ReviewWorld, _title_split
from rlhf_lab.world.specs import CONSTRAINTS, Spec, specs, verify

SPEC = Spec("spec-test-00000", stars=2, aspect="ending", title="The Paper Monsoon")
GOOD = 'The ending of "The Paper Monsoon" is dull.'


def test_a_review_that_meets_the_spec_passes_every_constraint():
    v = verify(SPEC, GOOD)
    assert v.checks == {c: True for c in CONSTRAINTS} and v.passed and v.reward == 1.0
    assert SPEC.text == 'Write a 2-star review of the ending of "The Paper Monsoon" that names the film.\nReview:'


@pytest.mark.parametrize("text, failed", [
    ('The ending of "The Paper Monsoon" is brilliant.', "rating"),          # 5 stars, not 2
    ('The acting of "The Paper Monsoon" is dull.', "aspect"),
    ('The ending of "Paper Monsoon" is dull.', "title"),                   # miscopied
    ("The ending of the film is dull.", "title"),                            # not named
    ('The ending of "The Paper Monsoon" is dull. The ending of "Glass Canyon" is dull.', "title"),  # and another
    ('The ending of "The Paper Monsoon" is dull', "well_formed"),            # unfinished
])
def test_each_constraint_fails_on_its_own(text, failed):
    v = verify(SPEC, text)
    assert not v.passed and v.reward == 0.0
    assert [c for c, ok in v.checks.items() if not ok] == [failed], v.checks


def test_the_verifier_agrees_with_the_judges_on_the_worlds_own_reviews():
    world = ReviewWorld(0)
    for prompt, completion in world.demonstrations(40, split="val"):
        stars = judges.rating(completion)
        spec = Spec("x", stars, prompt.aspect, prompt.title)
        v = verify(spec, completion)
        assert v.checks["rating"] and v.checks["aspect"]      # the grammar's reviews name their aspect
        assert v.checks["well_formed"] == (judges.well_formed(completion) >= judges.WELL_FORMED_THRESHOLD)


def test_specs_are_seeded_and_split_by_title():
    a, b = specs(50, "test"), specs(50, "test")
    assert a == b and len({s.id for s in a}) == 50
    assert all(_title_split(s.title) == "test" for s in a)
    assert {s.title for s in specs(200, "train")}.isdisjoint({s.title for s in specs(200, "test")})
    assert {s.stars for s in specs(200, "train")} == {1, 2, 3, 4, 5}
    assert specs(3, "val")[0].prompt.kind == "instruction"


@pytest.mark.parametrize("kwargs, message", [({"stars": 0}, "stars must be 1 to 5, got 0"),
                                             ({"aspect": "music"}, "unknown aspect 'music'")])
def test_a_bad_spec_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Spec("spec-bad", **{"stars": 3, "aspect": "plot", "title": "X", **kwargs})


def test_bad_sizes_and_splits_are_named():
    with pytest.raises(ValueError, match="split must be one of"):
        specs(3, "dev")
    with pytest.raises(ValueError, match="n must be at least 0, got -1"):
        specs(-1)


def test_the_grammar_writes_a_passing_demonstration_for_every_spec():
    from rlhf_lab.world.specs import demonstration

    for spec in specs(30, "train"):
        text = demonstration(spec)
        assert text.startswith(" ") and verify(spec, text.strip()).passed, (spec, text)
    assert demonstration(SPEC) == demonstration(SPEC)          # seeded


def test_the_verifier_as_a_reward_function():
    from rlhf_lab.world.specs import SpecReward

    reward = SpecReward([SPEC])
    assert reward([SPEC.text, SPEC.text], [GOOD, "The ending is dull."]) == [1.0, 0.0]
    assert reward(prompts=[SPEC.text], completions=[" " + GOOD], completion_ids=[[1, 2]]) == [1.0]   # TRL's call
    with pytest.raises(KeyError, match="no specification has the prompt 'Write a review"):
        reward(["Write a review of the plot."], [GOOD])
    with pytest.raises(ValueError, match="1 prompts but 2 completions"):
        reward([SPEC.text], [GOOD, GOOD])
