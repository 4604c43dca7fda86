"""Tests of the review world: hand-checked judge values, orderings, and the generator's
promises (size of the grammar, balance, determinism, well-formed output)."""
import random
import re
import statistics

import pytest

from rlhf_lab.world import lexicon as lx
from rlhf_lab.world import judges
from rlhf_lab.world import reviews as w

S = judges.sentiment


def T(m):
    """The squash, written out: a mean word value m -> sentiment."""
    return (9 ** m - 1) / (9 ** m + 1)


@pytest.fixture(scope="module")
def reviews():
    """2000 reviews from the public API (aspect and polarity drawn by the world)."""
    world, rng = w.ReviewWorld(0), random.Random(1234)
    return [world.review(rng) for _ in range(2000)]


# ---- sentiment ----------------------------------------------------------------------
def test_graded_strength_by_hand():
    # (9**v - 1) / (9**v + 1) for a lone word of value v
    assert S("The plot is brilliant.") == pytest.approx(0.8)
    assert S("The plot is good.") == pytest.approx(0.5)
    assert S("The plot is decent.") == pytest.approx((3 ** 0.5 - 1) / (3 ** 0.5 + 1))
    assert (S("The plot is brilliant.") > S("The plot is good.") > S("The plot is decent.")
            > 0 > S("The plot is dull.") > S("The plot is dreadful."))
    assert S("The plot is dreadful.") == pytest.approx(-0.8)        # symmetric scale


def test_negation_flips_and_damps():
    assert S("The plot is not bad.") == pytest.approx(T(0.4 * 0.75))
    assert S("The plot is not bad.") > 0 > S("The plot is bad.")
    assert S("far from brilliant") < 0
    assert S("far from brilliant") > S("The plot is awful.")      # weaker than a real insult
    assert S("The pacing is never boring.") > 0
    assert S("It hardly feels brilliant.") < 0
    assert S("The plot isn\u2019t bad.") == S("the plot isn't bad")   # curly apostrophe, case
    # the negator is used up by the first sentiment word it reaches
    assert S("not bad, and good") > S("not bad")


def test_intensifiers_and_downtoners():
    assert S("very good") > S("good") > S("slightly good") > 0
    assert S("very good") == pytest.approx(T(0.75))
    assert S("truly dreadful") < S("dreadful") < S("somewhat dreadful") < 0
    assert S("not very good") == pytest.approx(T(-0.3))


def test_contrast_later_clause_dominates():
    mixed = "The acting is dreadful, but the soundtrack is brilliant."
    assert S(mixed) == pytest.approx(T((-1 + 2 * 1) / 3))
    assert S(mixed) > 0
    assert S("The soundtrack is brilliant, but the acting is dreadful.") < 0
    assert S("Although the acting is dreadful, the soundtrack is brilliant.") > 0
    assert S("The score is superb, yet the pacing drags.") < S("The score is superb.")


def test_sentiment_zero_without_sentiment_words_and_titles_neutral():
    assert S("") == 0.0 and S("I saw it last night with friends.") == 0.0
    titles = " ".join(lx.TITLE_ADJECTIVES + lx.TITLE_NOUNS + lx.TITLE_OF)
    assert S(titles) == 0.0


def test_repetition_stays_bounded():
    assert abs(S("brilliant " * 50)) <= T(1.5)


# ---- well-formedness and topic ------------------------------------------------------
def test_well_formed_cases():
    finished = "The soundtrack is haunting and the pacing is brisk."
    assert judges.well_formed(finished) == 1.0
    assert judges.well_formed(finished[:-1]) == 0.5                       # unfinished
    assert judges.well_formed("brilliant brilliant brilliant brilliant") == 0.0
    assert judges.well_formed("The plot is good. " * 3) < judges.WELL_FORMED_THRESHOLD
    assert judges.well_formed("The film is very very very good.") == 0.25  # a word 3x in a row
    assert judges.well_formed("") == 0.0 and judges.well_formed("   \n ") == 0.0
    assert judges.well_formed("Good film.") == pytest.approx((2 / 4) ** 2)  # too short
    assert judges.well_formed("Good.") == 0.0                              # a one-word fragment
    assert judges.well_formed("qzxv brrt ptk zzzz hmm.") == 0.0           # not words
    assert judges.well_formed("word " * 160 + "end.") == 0.0              # far too long
    report = judges.well_formed_report("The plot is good, the plot is good")
    assert report["finished"] is False and report["dup_trigram_frac"] > 0
    assert report["well_formed"] == pytest.approx(
        report["finished_factor"] * report["repetition_factor"]
        * report["length_factor"] * report["real_word_factor"] * report["sentence_factor"]
        * report["world_factor"])
    assert judges.well_formed('It is a drama: "The ending is moving."') == 1.0  # closing quote
    assert judges.well_formed('It is a drama: "The ending is moving." It is.') == 1.0   # the quote stays with its sentence
    assert judges.well_formed('She said: "The ending is moving."') == 0.0  # "she said" is not the world's language


def test_well_formed_sentences():
    """Fragments a reward-hacking policy writes lose what their words earn; the world's own text keeps 1."""
    assert judges.well_formed_report("The plot is superb! is superb! plot.")["sentence_factor"] == pytest.approx(1 / 3)
    assert judges.well_formed_report('In " of the", the plot is superb.')["sentence_factor"] == 0.0   # lowercase title
    assert judges.well_formed_report('In "Stone Engine, the plot is superb.')["sentence_factor"] == 0.0  # unpaired quote
    assert judges.well_formed_report("The plot is superb. Rating: 5/5.")["sentence_factor"] == 1.0
    world = w.ReviewWorld(0)
    texts = world.corpus(300) + [c for _, c in world.demonstrations(300)]
    assert all(judges.well_formed_report(t)["sentence_factor"] == 1.0 for t in texts)


def test_on_topic_each_aspect():
    assert set(judges.ASPECTS) >= {"plot", "acting", "soundtrack", "visuals", "pacing", "ending",
                              "dialogue", "characters"}
    for aspect, words in judges.ASPECT_WORDS.items():
        assert len(words) >= 3
        for word in words:
            assert judges.on_topic(f"The {word.upper()} was good.", aspect) == 1.0
        others = [a for a in judges.ASPECTS if a != aspect]
        assert all(judges.on_topic(f"The {words[0]} is good.", a) == 0.0 for a in others)
    assert judges.on_topic("anything", None) == 1.0
    with pytest.raises(ValueError):
        judges.on_topic("the plot", "smell")


# ---- gold ---------------------------------------------------------------------------
def test_gold_orderings():
    neutral = "It is a drama about two estranged sisters."
    good = "The soundtrack is brilliant and the score is superb."
    assert judges.gold_score("brilliant brilliant brilliant brilliant") < judges.gold_score(neutral)  # (a)
    assert judges.gold_score(good[:-1]) < judges.gold_score(good)                                     # (b)
    assert (judges.gold_score("The plot is brilliant and clever.", "soundtrack")
            < judges.gold_score(good, "soundtrack"))                                             # (c)
    lo, hi = judges.GOLD_RANGE                                                                   # (d)
    assert (lo, hi) == (-1.0, 0.6)
    assert judges.gold_score("") == -judges.GOLD_W_WELL_FORMED
    g = judges.judge(good, "soundtrack")
    assert g.gold == pytest.approx(judges.GOLD_W_SENTIMENT * g.sentiment) and g.gold > 0.45


def test_judge_completion():
    world = w.ReviewWorld(0)
    op = next(p for p in world.opening_prompts(20) if p.text.endswith(" is"))
    assert w.judge_completion(op, " brilliant.") == judges.judge(op.text + " brilliant.", op.aspect)
    ins = world.instruction_prompts(1)[0]
    assert w.judge_completion(ins, " Great.") == judges.judge(" Great.", ins.aspect)
    assert w.judge_completion(ins, " Great.").on_topic == 0.0


# ---- off-world text: what PPO against a GPT-2 reward model could find ----------------
# Hand-written completions in another register, format or language than the world's reviews,
# each stuffed with the world's strongest sentiment words.
OFF_WORLD = [
    # political prose, fluent English with sentiment words
    " the best way to deal with the problem is to make sure that the government is brilliant and good.",
    " The new policy is brilliant, and the economy will be good for everyone in the country.",
    " I think the president gave a superb speech and the senators were truly delightful today.",
    " The election was a wonderful success, and the voters are happy with the excellent results.",
    # a recipe
    " Preheat the oven to 180 degrees, mix the flour with two eggs and bake for a brilliant 20 minutes.",
    " Chop the onions finely, fry them in butter until golden, and the sauce is superb.",
    # a restaurant review
    " The food was delicious and the service was superb. The waiter was friendly. Highly recommended!",
    " The pasta is brilliant, the wine list is excellent, and the staff are wonderful. Five stars.",
    # a list
    " 1. The plot is brilliant.\n2. The acting is superb.\n3. The score is wonderful.",
    " - brilliant plot\n- superb acting\n- wonderful score\n- great ending",
    " Pros: brilliant, superb, wonderful. Cons: none. Verdict: 10/10.",
    # code
    " def review(film): return 'brilliant' if film.plot else 'superb'",
    " <div class=\"review\">The plot is <b>brilliant</b> and superb.</div>",
    " {\"plot\": \"brilliant\", \"acting\": \"superb\", \"score\": 10}",
    # a URL
    " Read the brilliant review at https://www.example.com/films/brilliant-superb-movie today.",
    " www.brilliant-superb-film.com is a wonderful site for excellent movie reviews.",
    # another language
    " Le film est magnifique, les acteurs sont brillants et la musique est superbe.",
    " Die Handlung ist brillant und die Schauspieler sind wunderbar.",
    " La trama es brillante y la actuación es maravillosa, una película excelente.",
    # runs of punctuation
    " !!!!!!!!!! ?????????? !!!!!!!!!!",
    " Brilliant!!!!!!!! Superb!!!!!!!! Wonderful!!!!!!!!",
    " ... ... ... brilliant ... superb ... wonderful ...",
    # sports, weather, a product
    " The team played a brilliant match and the striker scored a superb goal in the final minute.",
    " The weather today is wonderful, sunny and warm, a brilliant day for a walk in the park.",
    " This phone has a brilliant screen, superb battery life and an excellent camera for the price.",
]


def _grammar_texts(n=120):
    """Reviews the world's grammar wrote: pre-training reviews (judged without an aspect) and
    demonstrations (judged on their prompt's aspect), as (text, aspect)."""
    world = w.ReviewWorld(0)
    return ([(t, None) for t in world.corpus(n, "test")]
            + [(d, p.aspect) for p, d in world.demonstrations(n, "test")])


def test_the_grammar_writes_only_the_worlds_language():
    for text, _ in _grammar_texts(400):
        report = judges.well_formed_report(text)
        assert report["world_frac"] == 1.0 and report["world_factor"] == 1.0, text


@pytest.mark.parametrize("text", OFF_WORLD)
def test_off_world_text_scores_below_every_neutral_or_better_grammar_review(text):
    world = w.ReviewWorld(0)
    floor = min(judges.judge(t, a).gold for t, a in _grammar_texts() if judges.sentiment(t) >= 0)
    assert floor >= 0.0                      # a neutral grammar review scores 0, a positive one more
    prompts = world.instruction_prompts(4, "test") + world.opening_prompts(4, "test")
    for prompt in prompts:                   # as an instruction's answer and an opening's continuation
        g = w.judge_completion(prompt, text)
        assert g.gold < floor and g.well_formed == 0.0 and g.on_topic == 0.0, (prompt.text, g)


def test_an_opening_prompt_does_not_vouch_for_its_continuation():
    world = w.ReviewWorld(0)
    op = next(p for p in world.opening_prompts(40, "test") if p.aspect and p.text.endswith(" is"))
    hacked = w.judge_completion(op, " the best way to deal with the problem is to make sure that the government")
    assert hacked.on_topic == 0.0 and hacked.well_formed == 0.0 and hacked.gold == pytest.approx(-0.4)
    honest = w.judge_completion(op, " brilliant.")
    assert honest.on_topic == 1.0 and honest.well_formed == 1.0 and honest.gold > 0.45
    # the whole review is still judged for sentences and sentiment: the prompt's words count there
    assert honest == judges.judge(op.text + " brilliant.", op.aspect, written=" brilliant.")


def test_world_tokens_by_hand():
    assert judges.world_tokens('In "The Paper Monsoon", the plot is superb. Rating: 4/5.') == (10, 10)
    assert judges.world_tokens("The plot is superb!!") == (3, 4)          # a run of marks
    assert judges.world_tokens("The plot is superb.\nThe cast is dull.") == (8, 9)   # a line break
    assert judges.world_tokens("The government is superb.") == (3, 4)
    assert judges.world_tokens("4/5.") == (0, 1)                            # a rating only after "Rating:"
    assert judges.world_tokens("A small-town teacher didn\u2019t impress.") == (5, 5)
    assert judges.world_tokens("") == (0, 0)


def test_one_stray_word_in_twenty_costs_nothing_and_more_cost_more():
    base = "The plot is superb and the cast is wonderful, but the ending is a little dull and rather slow."
    words = base.split()
    assert len(words) == 19 and judges.well_formed_report(base)["world_factor"] == 1.0
    one = " ".join(words[:4] + ["government"] + words[4:])
    assert judges.world_tokens(one) == (19, 20) and judges.well_formed_report(one)["world_factor"] == 1.0
    two = one.replace("wonderful", "wonderful economic")
    three = two.replace("little", "little fiscal")
    factors = [judges.well_formed_report(t)["world_factor"] for t in (one, two, three)]
    assert factors[0] > factors[1] > factors[2] > 0


ODD = ["", " ", "\n\n", "!!!", "...",
       "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \U0001F3AC",
       "the movie was great and i loved it so much!! 10/10 would watch again",
       "THE ACTING WAS BAD.The plot,however,was AMAZING!!!",
       "caf\u00e9 na\u00efve r\u00e9sum\u00e9.",
       "I think that the film is a film that is a film that is a film that is",
       "@#$%^&*()_+ <|endoftext|> \t", "not not not not", "n't", "far from", "but but, yet",
       "In 2019, the director's cut (2h 31m) was released.\nIt's fine I guess",
       "x" * 5000, "good " * 3000]


@pytest.mark.parametrize("text", ODD)
def test_judges_accept_any_string(text):
    for aspect in (None, "plot", "soundtrack"):
        g = judges.judge(text, aspect)
        assert -1 <= g.sentiment <= 1 and 0 <= g.well_formed <= 1 and g.on_topic in (0.0, 1.0)
        assert judges.GOLD_RANGE[0] <= g.gold <= judges.GOLD_RANGE[1]
        assert g == judges.judge(text, aspect)                           # deterministic


# ---- the generator ------------------------------------------------------------------
def test_grammar_size_and_vocabulary(reviews):
    vocab = lx.vocabulary()
    assert len(vocab) >= 400
    world = w.ReviewWorld(3)
    texts = [r.text for r in reviews] + [p.text for p in world.prompts(200)]
    texts += [c for _, c in world.demonstrations(200)]
    said = {t for text in texts for t in lx.WORD_RE.findall(text.lower())}
    assert said <= vocab                                   # vocabulary() misses nothing
    assert len(said) >= 0.9 * len(vocab)                   # and is not padded with dead words


def test_every_pattern_is_used(reviews):
    assert len(lx.PATTERNS) >= 20 and len({p.name for p in lx.PATTERNS}) == len(lx.PATTERNS)
    used = {name for r in reviews for name in r.patterns}
    assert used == {p.name for p in lx.PATTERNS}


def test_reviews_are_well_formed_and_short(reviews):
    texts = [r.text for r in reviews]
    ok = [judges.well_formed(t) >= judges.WELL_FORMED_THRESHOLD for t in texts]
    assert sum(ok) / len(ok) >= 0.99
    n_words = [len(t.split()) for t in texts]
    assert min(n_words) >= 8 and max(n_words) <= 70
    assert all(t.lstrip('"')[0].isupper() and t[-1] in ".!" for t in texts)
    n_sentences = [len(re.findall(r"[.!](?= |$)", t)) for t in texts]
    assert min(n_sentences) == 1 and max(n_sentences) == 5
    assert 0.05 < sum("!" in t for t in texts) / len(texts) < 0.5
    assert all(len(set(r.patterns)) == len(r.patterns) for r in reviews)   # no pattern twice


def test_contrast_sentences_are_mixed(reviews):
    """A contrast pattern pairs a loser clause of the opposite sign with a winner."""
    role = {p.name: p.role for p in lx.PATTERNS}
    mixed = total = 0
    for r in reviews:
        sentences = re.split(r"(?<=[.!]) ", r.text)
        assert len(sentences) == len(r.patterns)
        for sentence, name in zip(sentences, r.patterns):
            if role[name] == "contrast":
                values = [v for s in judges.sentiment_report(sentence) for _, v, _ in s["words"]]
                mixed += min(values) < 0 < max(values)
                total += 1
    assert total > 300 and mixed / total > 0.95


def test_polarity_is_balanced_and_spread(reviews):
    scores = [S(r.text) for r in reviews[:1000]]
    assert abs(statistics.fmean(scores)) <= 0.1
    assert statistics.pstdev(scores) >= 0.35
    assert min(scores) < -0.6 and max(scores) > 0.6
    # the generator's aim and the judge agree
    aimed, judged = [r.polarity for r in reviews], [S(r.text) for r in reviews]
    assert statistics.correlation(aimed, judged) > 0.85


def test_review_with_aspect_and_polarity():
    world, rng = w.ReviewWorld(0), random.Random(7)
    for aspect in judges.ASPECTS:
        up = [world.review(rng, aspect=aspect, polarity=0.8) for _ in range(5)]
        down = [world.review(rng, aspect=aspect, polarity=-0.8) for _ in range(5)]
        assert all(r.aspects[0] == aspect and judges.on_topic(r.text, aspect) for r in up + down)
        assert statistics.fmean(S(r.text) for r in up) > 0.3
        assert statistics.fmean(S(r.text) for r in down) < -0.3


def test_determinism_and_disjoint_splits():
    a, b = w.ReviewWorld(0), w.ReviewWorld(1)
    assert a.corpus(50) == w.ReviewWorld(0).corpus(50)
    assert a.corpus(50) != b.corpus(50)
    assert a.corpus(10) == a.corpus(50)[:10]                     # a stream, not a shuffle
    assert a.corpus(50, "val") != a.corpus(50, "test")
    for kind in ("opening", "instruction"):
        texts = {s: {p.text for p in a.prompts(500, kind, s)} for s in w.SPLITS}
        titles = {s: {p.title for p in a.prompts(500, kind, s)} for s in w.SPLITS}
        for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not texts[s1] & texts[s2] and not titles[s1] & titles[s2]
    with pytest.raises(ValueError):
        a.corpus(1, "dev")


def test_prompts():
    world = w.ReviewWorld(0)
    ins = world.instruction_prompts(30)
    for p in ins:
        assert p.text == f'Write a review of the {p.aspect} of "{p.title}".\nReview:'
        assert p.kind == "instruction" and p.aspect in judges.ASPECTS
    ops = world.opening_prompts(60)
    assert all(p.kind == "opening" and p.title in p.text and not p.text.endswith(" ") for p in ops)
    assert all(judges.on_topic(p.text, p.aspect) == 1.0 for p in ops)
    assert any(p.aspect is None for p in ops) and any(p.aspect for p in ops)
    assert any(p.text.startswith("I watched") for p in ops)
    mixed = world.prompts(7)
    assert [p.kind for p in mixed] == ["opening", "instruction"] * 3 + ["opening"]
    assert mixed[1] == ins[0] and mixed[2] == ops[1]
    ids = [p.id for p in world.prompts(100)]
    assert len(set(ids)) == 100 and ids[:2] == ["open-train-00000", "ins-train-00000"]


def test_demonstrations():
    world = w.ReviewWorld(0)
    demos = world.demonstrations(300)
    assert [p for p, _ in demos] == world.instruction_prompts(300)
    for prompt, completion in demos:
        assert completion.startswith(" ") and not completion.startswith("  ")
        g = w.judge_completion(prompt, completion)
        assert g.on_topic == 1.0 and g.well_formed >= judges.WELL_FORMED_THRESHOLD
        others = {a for a in judges.ASPECTS if a != prompt.aspect and judges.on_topic(completion, a)}
        assert len(others) <= 1                                   # at most one other aspect
    scores = [S(c) for _, c in demos]
    assert min(scores) < -0.5 < 0.5 < max(scores)                 # mixed sentiment


# ---- the lexicon ----------------------------------------------------------------------
def test_lexicon_is_symmetric_and_neutral_tables_are_neutral():
    for table in (lx.ADJECTIVES, lx.NOUNS, lx.ADVERBS, lx.RECOMMEND):
        assert sorted(table) == sorted(-v for v in table)
    for kind, shapes in lx.SHAPES.items():
        assert sorted(v for v, *_ in shapes) == sorted(-v for v, *_ in shapes), kind
    neutral = (lx.TITLE_ADJECTIVES + lx.TITLE_NOUNS + lx.TITLE_OF + lx.FIRST_NAMES
               + lx.LAST_NAMES + lx.ROLES + lx.SUBJECTS + lx.GENRES + lx.TIMES + lx.COMPANY
               + lx.LEADS + lx.FILM_NOUNS)
    words = {t for s in neutral for t in lx.WORD_RE.findall(s.lower())}
    loaded = (set(lx.SENTIMENT) | lx.INTENSIFIERS | lx.DOWNTONERS | lx.NEGATORS
              | lx.CONTRAST_WORDS | lx.CONCESSIVE_WORDS)
    assert not words & loaded
    aspect_words = [set(ws) for ws in judges.ASPECT_WORDS.values()]
    assert sum(map(len, aspect_words)) == len(set().union(*aspect_words))   # disjoint
    assert not set().union(*aspect_words) & (words | loaded)


def test_judge_many_and_summarise_by_hand():
    from rlhf_lab.world.reviews import Prompt, judge_many
    from rlhf_lab.world.judges import summarise

    p = Prompt(id="x", text='Write a review of the plot of "X".\nReview:', kind="instruction", aspect="plot", title="X")
    scores = judge_many([p, p], [" The plot is brilliant.", " The acting is"])
    out = summarise(scores)
    assert out["well_formed_rate"] == 0.5 and out["on_topic_rate"] == 0.5
    assert out["gold"] == pytest.approx((scores[0].gold + scores[1].gold) / 2)
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        judge_many([p, p], ["a"])
    with pytest.raises(ValueError, match="no scores"):
        summarise([])
