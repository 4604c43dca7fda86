"""The gold judges of the review world: sentiment, well-formedness, topic and the gold reward.

RLHF assumes labelers whose preferences come from a latent reward r*(x, y) through the
Bradley-Terry model P(y1 > y2 | x) = sigmoid(r*(x, y1) - r*(x, y2)) (Christiano et al.
2017 eq. 1; InstructGPT, Ouyang et al. 2022, eq. 1). Real labelers hide r*; here we write
it down, as Ziegler et al. (2019, §3.1, "mock sentiment") and Gao et al. (2023, §2, the
"gold" reward model) do, so that a learned reward model and a tuned policy can be checked
against the truth.

The judges (`sentiment`, `well_formed`, `on_topic`, combined by `judge` into
gold = 0.6*s*wf + 0.25*(wf - 1) + 0.15*(ot - 1)) play r*. They are pure, deterministic and
accept any string, since they will score half-trained models. They judge the world's
language, not English: text the grammar of `rlhf_lab.world.reviews` could not have written (a
recipe, a list, code, politics, French; `world_tokens`) is neither well-formed nor on topic, so
a policy as fluent as GPT-2 cannot earn gold with glowing words outside the world.
"""
from __future__ import annotations

import functools
import math
import re
import string
from dataclasses import dataclass
from statistics import fmean

from rlhf_lab.world import lexicon as lx
from rlhf_lab.world.lexicon import (DOWNTONER_SCALE, INTENSIFIER_SCALE, NEGATION_SCALE, vocabulary)

ASPECTS: tuple[str, ...] = tuple(lx.ASPECT_NOUNS)
ASPECT_WORDS: dict[str, tuple[str, ...]] = {
    a: tuple(w for w, _ in lx.ASPECT_NOUNS[a]) + lx.ASPECT_EXTRA_WORDS[a] for a in ASPECTS}

# ---- sentiment judge constants ------------------------------------------------------
NEGATION_WINDOW = 3        # a negator reaches the first sentiment word <= 3 tokens later
CONTRAST_WEIGHT = 2.0      # "X, but Y": Y weighs 2x X
CONCESSION_WEIGHT = 0.5    # "although X, Y": X weighs 0.5x Y
SENTIMENT_GAIN = math.log(3)   # tanh(ln3 * m) = (9**m - 1) / (9**m + 1): "good" (0.5) -> 0.5,
                               # "brilliant" (1.0) -> 0.8, "very brilliant" (1.5) -> 0.93

# ---- well-formedness judge constants -----------------------------------------------
MIN_WORDS, MAX_WORDS = 4, 80
UNFINISHED_FACTOR = 0.5    # no final . ! or ?
RUN_FACTOR = 0.25          # a word three times in a row ("very very very")
DUP_FREE, DUP_ZERO = 0.2, 0.5   # repeated-trigram fraction: free up to 0.2, factor 0 at 0.5
MIN_SENTENCE_WORDS = 2     # a shorter "sentence" ("plot.") is a fragment
WELL_FORMED_THRESHOLD = 0.8
# The world's language: the share of a text's tokens that the grammar could write (its words,
# with the punctuation it puts around them). Factor 0 at <= WORLD_FLOOR, 1 at >= WORLD_FULL:
# one stray word in twenty costs nothing, and text in which one token in five is foreign to the
# world (political prose, a recipe, a list, code, a URL, French) loses what its words would earn.
WORLD_FLOOR, WORLD_FULL = 0.8, 0.95

# ---- gold reward: gold = W_S*s*wf + W_WF*(wf - 1) + W_OT*(ot - 1), in [-1, 0.6] --------
GOLD_W_SENTIMENT = 0.6
GOLD_W_WELL_FORMED = 0.25
GOLD_W_ON_TOPIC = 0.15
GOLD_RANGE = (-(GOLD_W_SENTIMENT + GOLD_W_WELL_FORMED + GOLD_W_ON_TOPIC), GOLD_W_SENTIMENT)

_WORD_RE = lx.WORD_RE   # judge words: "isn't" is one word
_CLAUSE_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*|[,;:]")
_SENTENCE_RE = re.compile(r"[.!?\n]+")
_REAL_WORD_RE = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_PUNCT = string.punctuation + "\u201c\u201d\u2018\u2019\u00ab\u00bb\u2026\u2013\u2014"
_SLOT_RE = lx.SLOT_RE
_CLOSERS = "\"')]*\u201d\u2019\u00bb"   # may follow a final period: ...end."
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]\u201d\u2019])\s+")   # closers stay
_RATING_RE = re.compile(r"Rating: [1-5]/5\.?")
# A token as the grammar writes it: an optional opening quote, a word (hyphenated parts allowed),
# then at most a closing quote and one mark: plot.  "Ash,  Marsh",  it's  "The  Rating:  4/5.
_WORLD_TOKEN_RE = re.compile(r"\"?([A-Za-z]+(?:'[a-z]+)?(?:-[A-Za-z]+)*)(?:[.,!?:;]\"?|\"[.,!?:;]?)?")
_RATING_TOKEN_RE = re.compile(r"[1-5]/5\.?")
_QUOTED_RE = re.compile(r'"([^"]*)"')


def _sentence_ok(sentence: str) -> bool:
    """A sentence as the world writes them: it opens with a capital letter, has at least
    MIN_SENTENCE_WORDS words (or is a "Rating: 4/5." line), and its double quotes pair up
    around capitalised titles. "is extraordinary!" or 'In " of ", the plot' fail."""
    text = sentence.strip()
    if _RATING_RE.fullmatch(text):
        return True
    if not text.lstrip("\"'(\u201c\u2018")[:1].isupper() or len(text.split()) < MIN_SENTENCE_WORDS:
        return False
    return text.count('"') % 2 == 0 and all(q.strip()[:1].isupper() for q in _QUOTED_RE.findall(text))


@functools.cache
def _world_words() -> frozenset[str]:
    return frozenset(vocabulary())


def world_tokens(text: str) -> tuple[int, int]:
    """(tokens the world's grammar could write, all tokens) of ``text``.

    Tokens are split at whitespace; a line break inside the text counts as one more token that
    is not the world's (reviews are one line). A token is the world's when it is a word of
    `lexicon.vocabulary` (each part of a hyphenated word, any case, curly apostrophes
    straightened) with the grammar's punctuation around it, or a rating's "4/5." after
    "Rating:". Numbers, list markers, runs of marks ("great!!!"), URLs, code and words the
    world never uses ("government", "delicious", "magnifique") are not.
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    tokens = text.split()
    breaks = text.strip().count("\n")
    vocab, ok = _world_words(), 0
    for i, tok in enumerate(tokens):
        m = _WORLD_TOKEN_RE.fullmatch(tok)
        if m:
            ok += all(part in vocab for part in m.group(1).lower().split("-"))
        elif _RATING_TOKEN_RE.fullmatch(tok) and i and tokens[i - 1] == "Rating:":
            ok += 1
    return ok, len(tokens) + breaks


def _normalise(text: str) -> str:
    """Lowercase and straighten curly apostrophes, so "Isn\u2019t" and "isn't" agree."""
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def _is_negator(tok: str, prev: str) -> bool:
    return tok in lx.NEGATORS or tok.endswith("n't") or (tok == "from" and prev == "far")


def _scored_words(sentence: str) -> list[tuple[str, float, float]]:
    """(word, value, weight) for each sentiment word of one lowercased sentence.

    value = lexicon value, times 1.5 after an intensifier or 0.5 after a downtoner (the
    token right before), times -0.4 if a negator came <= 3 tokens earlier in the same
    clause (the negator is then used up). weight = 2**(contrast words before it), halved
    inside a concessive clause ("although"/"though"/"whereas"/"despite" up to the next
    comma). Commas, semicolons and contrast words end a negation's reach.
    """
    out, weight, conceding, neg_at, prev = [], 1.0, False, None, ""
    for i, tok in enumerate(_CLAUSE_TOKEN_RE.findall(sentence)):
        if tok in ",;:":
            conceding, neg_at = False, None
        elif tok in lx.CONTRAST_WORDS:
            weight, conceding, neg_at = weight * CONTRAST_WEIGHT, False, None
        elif tok in lx.CONCESSIVE_WORDS:
            conceding, neg_at = True, None
        elif _is_negator(tok, prev):
            neg_at = i
        elif tok in lx.SENTIMENT:
            value = lx.SENTIMENT[tok]
            if prev in lx.INTENSIFIERS:
                value *= INTENSIFIER_SCALE
            elif prev in lx.DOWNTONERS:
                value *= DOWNTONER_SCALE
            if neg_at is not None and i - neg_at <= NEGATION_WINDOW:
                value, neg_at = value * NEGATION_SCALE, None
            out.append((tok, value, weight * (CONCESSION_WEIGHT if conceding else 1.0)))
        prev = tok
    return out


def sentiment_report(text: str) -> list[dict]:
    """Per sentence (split at . ! ? and newlines): its scored words and weighted mean."""
    report = []
    for sentence in _SENTENCE_RE.split(_normalise(text)):
        words = _scored_words(sentence)
        if words:
            mean = sum(v * w for _, v, w in words) / sum(w for _, _, w in words)
            report.append({"sentence": sentence.strip(), "words": words, "score": mean})
    return report


def sentiment(text: str) -> float:
    """Gold sentiment in (-1, 1): tanh(ln 3 * m) = (9**m - 1) / (9**m + 1), where m is
    the mean over sentences of their scores.

    A sentence's score is the weighted mean of its word values (`_scored_words`);
    sentences without a sentiment word are skipped, and a text with none scores 0.
    So "The plot is brilliant." -> 0.8, "good" -> 0.5, "decent" (0.25) -> 0.27,
    "not bad" (-0.4 * -0.75 = 0.3) -> 0.32, "The acting is dreadful, but the soundtrack is
    brilliant." (m = (-1 + 2 * 1) / 3) -> 0.35. Repetition cannot pass the squash.
    """
    scores = [s["score"] for s in sentiment_report(text)]
    return math.tanh(SENTIMENT_GAIN * fmean(scores)) if scores else 0.0


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def well_formed_report(text: str, written: str | None = None) -> dict:
    """The checks behind `well_formed`; the score is the product of the six factors.

    words: whitespace tokens holding a letter or digit, stripped of punctuation.
    finished: the last character (past closing quotes/brackets) is . ! or ? -> 1, else 0.5.
    repetition: min(0.25 if a word occurs 3 times in a row else 1, 1 - clip01((d - 0.2)
        / 0.3)), d = fraction of word trigrams that repeat an earlier one.
    length: 1 for 4..80 words, (n / 4)**2 below (0 for empty text), and
        max(0, 1 - (n - 80) / 80) above.
    real words: clip01((f - 0.5) / 0.4), f = fraction of words that are ASCII letters
        (inner ' or - allowed) with a vowel and at most 20 letters: 90% real scores 1.
    sentences: the fraction of sentences that open with a capital letter, have at least two
        words and pair their quotes around capitalised titles (`_sentence_ok`), so that
        fragments such as "... is superb! is superb! plot." lose what their words would earn.
    world: clip01((f - 0.8) / 0.15), f = the share of `world_tokens` of ``written`` (the part
        a model wrote: an opening's completion, whose prompt would otherwise vouch for it;
        default the whole text). A text in another language, register or format than the
        world's reviews (fluent English about politics, a recipe, a list, code) scores 0
        whatever its sentiment words; the grammar's own reviews score 1.
    """
    in_world, n_tokens = world_tokens(text if written is None else written)
    world_frac = in_world / n_tokens if n_tokens else 1.0
    words = [t.strip(_PUNCT) for t in _normalise(text).split()]
    words = [w for w in words if any(c.isalnum() for c in w)]
    n = len(words)
    sentences = [x for x in _SENTENCE_SPLIT_RE.split(text.strip()) if x.strip()]
    finished = text.rstrip().rstrip(_CLOSERS)[-1:] in (".", "!", "?")
    max_run = run = 0
    for i, w in enumerate(words):
        run = run + 1 if i and w == words[i - 1] else 1
        max_run = max(max_run, run)
    trigrams = list(zip(words, words[1:], words[2:]))
    dup = 1 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
    real = [bool(_REAL_WORD_RE.fullmatch(w)) and len(w) <= 20 and any(c in "aeiouy" for c in w)
            for w in words]
    real_frac = sum(real) / n if n else 0.0
    if n >= MIN_WORDS:
        length = _clip01(1 - (n - MAX_WORDS) / MAX_WORDS) if n > MAX_WORDS else 1.0
    else:
        length = (n / MIN_WORDS) ** 2
    factors = {
        "finished_factor": 1.0 if finished else UNFINISHED_FACTOR,
        "repetition_factor": min(RUN_FACTOR if max_run >= 3 else 1.0,
                                 _clip01(1 - (dup - DUP_FREE) / (DUP_ZERO - DUP_FREE))),
        "length_factor": length,
        "real_word_factor": _clip01((real_frac - 0.5) / 0.4),
        "sentence_factor": sum(map(_sentence_ok, sentences)) / len(sentences) if sentences else 0.0,
        "world_factor": _clip01((world_frac - WORLD_FLOOR) / (WORLD_FULL - WORLD_FLOOR)),
    }
    return {"n_words": n, "finished": finished, "max_run": max_run, "dup_trigram_frac": dup,
            "real_word_frac": real_frac, "n_sentences": len(sentences), "world_frac": world_frac, **factors,
            "well_formed": math.prod(factors.values())}


def well_formed(text: str, written: str | None = None) -> float:
    """Gold well-formedness in [0, 1]; see `well_formed_report` for the rules."""
    return well_formed_report(text, written)["well_formed"]


def on_topic(text: str, aspect: str | None) -> float:
    """1.0 if the text names a word of ASPECT_WORDS[aspect] (or aspect is None), else 0.0."""
    if aspect is None:
        return 1.0
    if aspect not in ASPECT_WORDS:
        raise ValueError(f"unknown aspect {aspect!r}; expected one of {ASPECTS}")
    return 1.0 if set(_WORD_RE.findall(_normalise(text))) & set(ASPECT_WORDS[aspect]) else 0.0


@dataclass(frozen=True)
class GoldScores:
    sentiment: float
    well_formed: float
    on_topic: float
    gold: float


def judge(text: str, aspect: str | None = None, written: str | None = None) -> GoldScores:
    """All gold scores. gold = 0.6*s*wf + 0.25*(wf - 1) + 0.15*(ot - 1), in [-1, 0.6].

    Sentiment only counts as far as the text is well-formed, and a broken or off-topic
    text pays a fixed penalty, so "brilliant brilliant brilliant brilliant" (wf = 0,
    gold = -0.25) ranks below a plain neutral review (gold = 0). ``written``: the part of
    ``text`` a model wrote (default all of it); the world-language check reads only that part,
    and a text whose written part is not the world's (`WORLD_FLOOR`) is off topic, whatever
    aspect the prompt named.
    """
    s, report = sentiment(text), well_formed_report(text, written)
    wf = report["well_formed"]
    ot = on_topic(text, aspect) if report["world_frac"] > WORLD_FLOOR else 0.0
    gold = (GOLD_W_SENTIMENT * s * wf + GOLD_W_WELL_FORMED * (wf - 1)
            + GOLD_W_ON_TOPIC * (ot - 1))
    return GoldScores(s, wf, ot, gold)


def gold_score(text: str, aspect: str | None = None) -> float:
    return judge(text, aspect).gold


def rating(text: str) -> int:
    """Stars from 1 to 5 for a review: 3 + round(2 * sentiment), so s = -1 -> 1, 0 -> 3, 1 -> 5."""
    return int(3 + round(2 * sentiment(text)))


def summarise(scores: list[GoldScores]) -> dict[str, float]:
    """Means of a batch of gold scores, and the rates a notebook reports.

    Keys: gold, sentiment, well_formed, on_topic (means); well_formed_rate (fraction with
    well_formed >= WELL_FORMED_THRESHOLD); on_topic_rate (fraction with on_topic == 1).
    """
    if not scores:
        raise ValueError("no scores to summarise")
    return {
        "gold": fmean(s.gold for s in scores), "sentiment": fmean(s.sentiment for s in scores),
        "well_formed": fmean(s.well_formed for s in scores), "on_topic": fmean(s.on_topic for s in scores),
        "well_formed_rate": fmean(s.well_formed >= WELL_FORMED_THRESHOLD for s in scores),
        "on_topic_rate": fmean(s.on_topic >= 1.0 for s in scores),
    }
