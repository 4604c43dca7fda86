"""The review world: a seeded grammar of short movie reviews, and the gold judges.

RLHF assumes labelers whose preferences come from a latent reward r*(x, y) through the
Bradley-Terry model P(y1 > y2 | x) = sigmoid(r*(x, y1) - r*(x, y2)) (Christiano et al.
2017 eq. 1; InstructGPT, Ouyang et al. 2022, eq. 1). Real labelers hide r*; here we write
it down, as Ziegler et al. (2019, §3.1, "mock sentiment") and Gao et al. (2023, §2, the
"gold" reward model) do, so that a learned reward model and a tuned policy can be checked
against the truth. The module has two halves:

* a generator (`ReviewWorld`) that writes reviews of made-up films from `PATTERNS` and
  the word tables in `rlhf_lab.world.lexicon`: a pretraining corpus, opening prompts to
  continue, and instruction prompts with demonstrations for supervised fine-tuning;
* gold judges (`sentiment`, `well_formed`, `on_topic`, combined by `judge` into
  gold = 0.6*s*wf + 0.25*(wf - 1) + 0.15*(ot - 1)) that play r*. They are pure,
  deterministic and accept any string, since they will score half-trained models. They judge
  the world's language, not English: text the grammar could not have written (a recipe, a
  list, code, politics, French; `world_tokens`) is neither well-formed nor on topic, so a
  policy as fluent as GPT-2 cannot earn gold with glowing words outside the world.

The generator aims each review at a polarity p ~ U(-1, 1) and every sentiment table is
symmetric, so the corpus is balanced around 0 and RL has room to move towards positive.
"""
from __future__ import annotations

import functools
import math
import random
import re
import string
import zlib
from dataclasses import dataclass
from statistics import fmean

from rlhf_lab.world import lexicon as lx
# Re-exported: the grammar's patterns and vocabulary are part of this module's API.
from rlhf_lab.world.lexicon import (DOWNTONER_SCALE, INSTRUCTION_TEMPLATE, INTENSIFIER_SCALE, NEGATION_SCALE, PATTERNS,
                                    SHAPES, Pattern, vocabulary)

ASPECTS: tuple[str, ...] = tuple(lx.ASPECT_NOUNS)
ASPECT_WORDS: dict[str, tuple[str, ...]] = {
    a: tuple(w for w, _ in lx.ASPECT_NOUNS[a]) + lx.ASPECT_EXTRA_WORDS[a] for a in ASPECTS}
SPLITS = ("train", "val", "test")

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


# ---- prompts and reviews -----------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    id: str             # "<open|ins>-<split>-<index>", fixed by (seed, split, index)
    text: str
    kind: str           # "opening" | "instruction"
    aspect: str | None  # the asked aspect, or the aspect an opening names (else None)
    title: str


@dataclass(frozen=True)
class Review:
    title: str
    aspects: tuple[str, ...]       # aspects mentioned, in order
    polarity: float                # the polarity the generator aimed at, in [-1, 1]
    text: str
    patterns: tuple[str, ...] = ()  # names of the PATTERNS used, one per sentence


def judge_completion(prompt: Prompt, completion: str) -> GoldScores:
    """Openings are judged as the whole review prompt.text + completion (joined as is), with
    the world-language check on the completion alone (the prompt's words would vouch for any
    continuation); instructions judge the completion alone, on prompt.aspect."""
    if prompt.kind == "opening":
        return judge(prompt.text + completion, prompt.aspect, written=completion)
    return judge(completion, prompt.aspect)


RATING_RATE = 0.5   # share of pre-training reviews that end with a star rating


def rating(text: str) -> int:
    """Stars from 1 to 5 for a review: 3 + round(2 * sentiment), so s = -1 -> 1, 0 -> 3, 1 -> 5."""
    return int(3 + round(2 * sentiment(text)))


def judge_many(prompts: list[Prompt], completions: list[str]) -> list[GoldScores]:
    """`judge_completion` for each (prompt, completion) pair, in order."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    return [judge_completion(p, c) for p, c in zip(prompts, completions)]


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


_BY_ROLE = {r: [p for p in PATTERNS if p.role == r]
            for r in ("aspect", "contrast", "verdict", "neutral", "opener")}
_BY_NAME = {p.name: p for p in PATTERNS}
# a demonstration opens by naming the asked aspect and the title, as the prompt did
_DEMO_FIRST = [_BY_NAME[n] for n in ("aspect_of", "in_title", "title_has", "aspect_of_but")]


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _title_split(title: str) -> str:
    """A fixed split per title (crc32 mod 10: 0-7 train, 8 val, 9 test), so prompts of
    different splits never share a title and can never coincide."""
    h = zlib.crc32(title.encode()) % 10
    return "train" if h < 8 else "val" if h == 8 else "test"


class ReviewWorld:
    """Seeded generator; every list it returns is fixed by (seed, split, index)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _rng(self, split: str, stream: str, i: int) -> random.Random:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return random.Random(f"{self.seed}/{split}/{stream}/{i}")   # str seeds are stable

    @staticmethod
    def _title(rng: random.Random, split: str | None = None) -> str:
        while True:
            noun = rng.choice(lx.TITLE_NOUNS)
            if rng.random() < 0.75:
                title = f"{rng.choice(lx.TITLE_ADJECTIVES)} {noun}"
            else:
                title = f"{noun} of {rng.choice(lx.TITLE_OF)}"
            title = f"The {title}" if rng.random() < 0.5 else title
            if split is None or _title_split(title) == split:
                return title

    # -- phrases -------------------------------------------------------------------
    def _phrase(self, rng, kind: str, target: float, aspect=None, number="sg") -> str:
        """A phrase of `kind` whose judged value is near `target` (soft nearest shape)."""
        shapes = SHAPES[kind]
        weights = [prior * math.exp(-abs(value - target) / lx.SHAPE_TAU)
                   for value, prior, _, _ in shapes]
        _, _, form, v = rng.choices(shapes, weights)[0]
        if kind in ("adjp", "adj", "attr"):
            word = rng.choice(lx.ADJECTIVES[v] + lx.ASPECT_ADJECTIVES.get(aspect, {}).get(v, ()))
            downs = lx.DOWNTONER_WORDS if kind == "attr" else lx.DOWNTONER_PHRASES
            mods = {"int": lx.ADJ_INTENSIFIERS, "down": downs, "neg": lx.NEGATION_PHRASES,
                    "negint": ("not very", "not really")}
        elif kind == "vi":
            word = rng.choice([pl if number == "pl" else sg
                               for sg, pl, x in lx.VERBS_INTRANSITIVE if x == v])
            mods = {"int": lx.VERB_INTENSIFIERS, "neg": ("never",)}
        elif kind == "vt":
            past, base = rng.choice([(a, b) for a, b, x in lx.VERBS_TRANSITIVE if x == v])
            if form == "neg":
                return rng.choice((f"did not {base}", f"didn't {base}", f"never {past}"))
            word, mods = past, {"int": lx.VERB_INTENSIFIERS}
        elif kind == "noun":
            word = rng.choice(lx.NOUNS[v])
            if form == "int":
                return _article(f"{rng.choice(lx.NOUN_INTENSIFIERS)} {word}")
            word, mods = _article(word), {"neg": ("not", "far from", "hardly")}
        elif kind == "adv":
            word = rng.choice(lx.ADVERBS[v])
            mods = {"int": lx.ADV_INTENSIFIERS, "down": lx.DOWNTONER_WORDS}
        else:  # rec
            word = rng.choice(lx.RECOMMEND[v])
            mods = {"int": lx.REC_INTENSIFIERS[v], "neg": ("not",)}
        return word if form == "plain" else f"{rng.choice(mods[form])} {word}"

    def _slot(self, rng, name: str, clauses: list, draft: _Draft) -> str:
        """Fill one {slot}; a name ending in 2 reads the second clause."""
        aspect, noun, number, t = clauses[1 if name.endswith("2") else 0]
        base, plural = name.rstrip("2"), number == "pl"
        if base in lx.PHRASE_SLOTS:
            return self._phrase(rng, lx.PHRASE_SLOTS[base], t, aspect, number)
        if base in lx.AGREE:
            return lx.AGREE[base][plural]
        if base in lx.SLOT_TABLES:
            return rng.choice(lx.SLOT_TABLES[base])
        if base == "indef":   # "a clever plot", "wooden acting", "gorgeous visuals"
            np_ = f"{self._phrase(rng, 'attr', t, aspect)} {noun}"
            return _article(np_) if number == "sg" else np_
        if base == "a_film":  # "a truly great thriller"
            film = rng.choice(lx.FILM_NOUNS + (draft.genre,))
            return _article(f"{self._phrase(rng, 'attr', t)} {film}")
        if base == "a_genre":
            return _article(draft.genre)
        if base == "end":     # strong feelings sometimes get an exclamation mark
            return "!" if rng.random() < (0.3 if abs(t) >= 0.75 else 0.03) else "."
        if base == "part":
            return rng.choice(lx.PARTICIPLES[aspect])
        if base == "name":
            return f"{rng.choice(lx.FIRST_NAMES)} {rng.choice(lx.LAST_NAMES)}"
        return {"np": f"the {noun}", "title": draft.title, "genre": draft.genre,
                "subject": draft.subject}[base]

    def _sentence(self, rng, pattern: Pattern, draft: _Draft, p: float) -> tuple[str, list[str]]:
        """Render one pattern; returns (text with any " | " cut kept, aspects used)."""
        tmpl = pattern.template
        t = max(-1.0, min(1.0, p + rng.gauss(0, 0.2)))    # this sentence's target
        if pattern.role == "contrast":
            # "X, but Y" reads as (x + 2y) / 3: give the loser x the opposite sign to the
            # target and solve for the winner y, so the sentence still lands near t.
            sign = math.copysign(1, t) if t else rng.choice((-1, 1))
            x = -sign * rng.choice((0.25, 0.5, 0.75, 1.0))
            targets = [x, max(-1.5, min(1.5, (3 * t - x) / 2))]
        else:
            targets = [t]
        clauses = []
        for target in targets:
            if "{np}" not in tmpl and "{indef}" not in tmpl:
                clauses.append((None, None, "sg", target))
            elif pattern.name == "starts_ends" and clauses:   # one noun, two clauses
                clauses.append(clauses[0][:3] + (target,))
            else:
                aspect = draft.aspect()
                clauses.append((aspect, *draft.noun(aspect), target))
        for _ in range(5):   # redraw "good and good": no sentiment word twice in a sentence
            text = _SLOT_RE.sub(lambda m: self._slot(rng, m.group(1), clauses, draft), tmpl)
            said = [w for w in _WORD_RE.findall(text.lower()) if w in lx.SENTIMENT]
            if len(said) == len(set(said)):
                break
        aspects = list(dict.fromkeys(c[0] for c in clauses if c[0]))
        return text[0].upper() + text[1:], aspects

    def _compose(self, rng, title: str, focus=None, polarity=None, demo=False) -> Review:
        """One review of `title`. With `focus`, the first aspect is `focus` and at most one
        other aspect joins it; `demo` opens with a sentence naming focus and title."""
        p = rng.uniform(-1, 1) if polarity is None else float(polarity)
        for _ in range(50):   # redraw until the length is in range (bounded, deterministic)
            draft = _Draft(rng, title, focus)
            if demo:
                roles = [None] + rng.choice([[], ["aspect"], ["contrast"], ["aspect", "verdict"]])
            else:
                n = rng.choices((1, 2, 3, 4, 5), (2, 4, 4, 3, 2))[0]
                roles = [rng.choices(("opener", "aspect", "contrast"), (0.45, 0.35, 0.2))[0]]
                roles += rng.choices(("aspect", "contrast", "neutral"), (2, 1, 1), k=max(0, n - 2))
                if n >= 2:
                    roles.append(rng.choices(("verdict", "aspect", "contrast", "neutral"),
                                             (9, 5, 3, 3))[0])
            sentences, used, names = [], [], []
            for role in roles:
                # no pattern twice, and the film's subject is told at most once
                told = any("{subject}" in _BY_NAME[x].template for x in names)
                pool = [x for x in (_DEMO_FIRST if role is None else _BY_ROLE[role])
                        if x.name not in names and not (told and "{subject}" in x.template)]
                pattern = rng.choice(pool or _BY_ROLE["aspect"])
                text, a = self._sentence(rng, pattern, draft, p)
                sentences.append(text.replace(" | ", " "))
                used += [x for x in a if x not in used]
                names.append(pattern.name)
            text = " ".join(sentences)
            n_words = len(text.split())
            if (5 if demo else 8) <= n_words <= 70 and (focus is None or focus in used):
                break
        return Review(title, tuple(used), p, text, tuple(names))

    # -- public API ----------------------------------------------------------------
    def review(self, rng: random.Random, aspect: str | None = None,
               polarity: float | None = None) -> Review:
        """A review of a fresh title, about `aspect` if given, aimed at `polarity`."""
        if aspect is not None and aspect not in ASPECTS:
            raise ValueError(f"unknown aspect {aspect!r}; expected one of {ASPECTS}")
        if polarity is not None and not -1 <= polarity <= 1:
            raise ValueError(f"polarity must be in [-1, 1], got {polarity}")
        return self._compose(rng, self._title(rng), focus=aspect, polarity=polarity)

    def corpus(self, n: int, split: str = "train") -> list[str]:
        """n plain reviews for pre-training; about half end with a star rating, "Rating: 4/5.".

        The rating follows the judged sentiment of the review, as on a review site. To
        predict it, a language model must keep track of how positive the review has been
        so far: pre-training then leaves a sentiment feature in the model's hidden state
        (Radford et al. 2017 found a "sentiment neuron" this way), which the reward model
        of notebook 03 reads. Demonstrations and prompts never carry a rating.
        """
        out = []
        for i in range(n):
            rng = self._rng(split, "corpus", i)
            text = self._compose(rng, self._title(rng, split)).text
            if rng.random() < RATING_RATE:
                text += f" Rating: {rating(text)}/5."
            out.append(text)
        return out

    def opening_prompts(self, n: int, split: str = "train") -> list[Prompt]:
        out = []
        for i in range(n):
            rng = self._rng(split, "open", i)
            title = self._title(rng, split)
            pattern = rng.choice(_BY_ROLE["opener"])
            text, aspects = self._sentence(rng, pattern, _Draft(rng, title), rng.uniform(-1, 1))
            head = text.split(" | ")[0]
            named = aspects[0] if "{np}" in pattern.template.split(" | ")[0] else None
            out.append(Prompt(f"open-{split}-{i:05d}", head, "opening", named, title))
        return out

    def instruction_prompts(self, n: int, split: str = "train") -> list[Prompt]:
        out = []
        for i in range(n):
            rng = self._rng(split, "ins", i)
            title = self._title(rng, split)
            aspect = rng.choice(ASPECTS)
            text = INSTRUCTION_TEMPLATE.format(aspect=aspect, title=title)
            out.append(Prompt(f"ins-{split}-{i:05d}", text, "instruction", aspect, title))
        return out

    def demonstrations(self, n: int, split: str = "train") -> list[tuple[Prompt, str]]:
        """(prompt, completion) pairs for SFT; prompts equal `instruction_prompts(n, split)`
        and each completion starts with a space and names the asked aspect."""
        pairs = []
        for i, prompt in enumerate(self.instruction_prompts(n, split)):
            rng = self._rng(split, "demo", i)
            review = self._compose(rng, prompt.title, focus=prompt.aspect, demo=True)
            pairs.append((prompt, " " + review.text))
        return pairs

    def prompts(self, n: int, kind: str = "mixed", split: str = "train") -> list[Prompt]:
        """Openings, instructions, or both alternating (opening first) for "mixed"."""
        if kind == "opening":
            return self.opening_prompts(n, split)
        if kind == "instruction":
            return self.instruction_prompts(n, split)
        if kind != "mixed":
            raise ValueError(f"kind must be opening, instruction or mixed, got {kind!r}")
        opens = self.opening_prompts((n + 1) // 2, split)
        ins = self.instruction_prompts(n // 2, split)
        return [(opens if i % 2 == 0 else ins)[i // 2] for i in range(n)]


class _Draft:
    """A review being written: its title, genre and subject (one each per review, so a
    film is not called a western and then a musical) and the aspects and nouns it has
    used. Aspects are distinct, or with a focus: the focus first, then the focus or one
    other. Unused nouns come first, so a review says "the score", then "the music"."""

    def __init__(self, rng: random.Random, title: str, focus: str | None = None):
        self.rng, self.title, self.focus, self.calls, self.used = rng, title, focus, 0, set()
        self.genre, self.subject = rng.choice(lx.GENRES), rng.choice(lx.SUBJECTS)
        self.pool = rng.sample(ASPECTS, len(ASPECTS))
        self.other = next(a for a in self.pool if a != focus)

    def aspect(self) -> str:
        self.calls += 1
        if self.focus is not None:
            return self.focus if self.calls == 1 else self.rng.choice((self.focus, self.other))
        if not self.pool:
            self.pool = self.rng.sample(ASPECTS, len(ASPECTS))
        return self.pool.pop()

    def noun(self, aspect: str) -> tuple[str, str]:
        nouns = lx.ASPECT_NOUNS[aspect]
        if aspect == self.focus and self.calls == 1 and self.rng.random() < 0.7:
            choice = nouns[0]        # the asked aspect by name: "the soundtrack of ..."
        else:
            choice = self.rng.choice([x for x in nouns if x not in self.used] or nouns)
        self.used.add(choice)
        return choice
