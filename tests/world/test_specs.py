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
    assert SPEC.text == 'Write a 2-star review of the ending of "The Paper Monsoon".\nReview:'
    assert verify(SPEC, "The ending of the film is dull.").passed            # naming no film is allowed
    assert verify(SPEC, "The Paper Monsoon has a dull ending.").passed       # named without quotes, exactly


@pytest.mark.parametrize("text, failed", [
    ('The ending of "The Paper Monsoon" is brilliant.', "rating"),          # 5 stars, not 2
    ('The acting of "The Paper Monsoon" is dull.', "aspect"),
    ('The ending of "Paper Monsoon" is dull.', "title"),                   # miscopied
    ("The ending of The Paper Harbor is dull.", "title"),                    # miscopied, unquoted
    ("The ending of Glass Canyon is dull.", "title"),                        # another film
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

    reward = SpecReward()
    assert reward([SPEC.text, SPEC.text], [GOOD, "The ending is brilliant."]) == [1.0, 0.0]
    assert reward(prompts=[SPEC.text], completions=[" " + GOOD], completion_ids=[[1, 2]]) == [1.0]   # TRL's call
    assert reward.__name__ == "verifier"
    with pytest.raises(ValueError, match="cannot check this prompt: not a specification: .Write a review"):
        reward(["Write a review of the plot."], [GOOD])
    with pytest.raises(ValueError, match="1 prompts but 2 completions"):
        reward([SPEC.text], [GOOD, GOOD])


def test_a_spec_reads_back_from_its_instruction():
    from rlhf_lab.world.specs import parse_spec

    for spec in specs(40, "val") + [SPEC]:
        back = parse_spec(spec.text)
        assert (back.stars, back.aspect, back.title, back.text) == (spec.stars, spec.aspect, spec.title, spec.text)
    with pytest.raises(ValueError, match="not a specification"):
        parse_spec('Write a 7-star review of the plot of "X".\nReview:')


def test_films_named_finds_every_title_of_the_world_quoted_or_not():
    from rlhf_lab.world.specs import films_named

    world = ReviewWorld(0)
    for prompt, completion in world.demonstrations(60, split="train"):
        assert set(films_named(completion)) <= {prompt.title}, (prompt.title, completion)
    assert films_named('I saw "Iron Harbor" and The Tide of Salt.') == ["Iron Harbor", "The Tide of Salt"]
    assert films_named("The iron harbor is calm. The Harbor is calm.") == []     # not titles: case and form


def test_demonstrations_are_instruction_completion_pairs_that_pass():
    from rlhf_lab.world.specs import demonstrations, parse_spec

    pairs = demonstrations(20, "train")
    assert [p for p, _ in pairs] == [s.text for s in specs(20, "train")]
    assert all(verify(parse_spec(p), c.strip()).passed for p, c in pairs)
    assert any(films_named_in(c) for _, c in pairs) and not all(films_named_in(c) for _, c in pairs)


def films_named_in(text):
    from rlhf_lab.world.specs import films_named

    return films_named(text)
