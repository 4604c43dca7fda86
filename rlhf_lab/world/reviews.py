"""The review world: a seeded grammar of short movie reviews, its prompts and demonstrations.

`ReviewWorld` writes reviews of made-up films from `PATTERNS` and the word tables in
`rlhf_lab.world.lexicon`: a pre-training corpus, opening prompts to continue, and instruction
prompts with demonstrations for supervised fine-tuning. `judge_completion` scores a model's
completion of a prompt with the gold judges of `rlhf_lab.world.judges`, which play the latent
reward r* that real labelers hide (Christiano et al. 2017 eq. 1; Gao et al. 2023, §2).

The generator aims each review at a polarity p ~ U(-1, 1) and every sentiment table is
symmetric, so the corpus is balanced around 0 and RL has room to move towards positive.
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

from rlhf_lab.world import lexicon as lx
from rlhf_lab.world.judges import ASPECTS, GoldScores, judge, rating
from rlhf_lab.world.lexicon import (INSTRUCTION_TEMPLATE, PATTERNS,
                                    SHAPES, Pattern)

SPLITS = ("train", "val", "test")


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


def judge_many(prompts: list[Prompt], completions: list[str]) -> list[GoldScores]:
    """`judge_completion` for each (prompt, completion) pair, in order."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    return [judge_completion(p, c) for p, c in zip(prompts, completions)]


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
            text = lx.SLOT_RE.sub(lambda m: self._slot(rng, m.group(1), clauses, draft), tmpl)
            said = [w for w in lx.WORD_RE.findall(text.lower()) if w in lx.SENTIMENT]
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
    def review(self, rng: random.Random, aspect: str | None = None, polarity: float | None = None,
               title: str | None = None, demo: bool = False) -> Review:
        """A review of ``title`` (default: a fresh one), about `aspect` if given, aimed at `polarity`; ``demo``
        opens it as an SFT demonstration does, with a sentence naming the aspect and the title."""
        if aspect is not None and aspect not in ASPECTS:
            raise ValueError(f"unknown aspect {aspect!r}; expected one of {ASPECTS}")
        if polarity is not None and not -1 <= polarity <= 1:
            raise ValueError(f"polarity must be in [-1, 1], got {polarity}")
        title = self._title(rng) if title is None else title
        return self._compose(rng, title, focus=aspect, polarity=polarity, demo=demo)

    @staticmethod
    def title(rng: random.Random, split: str | None = None) -> str:
        """A film title drawn from ``rng``, one of ``split``'s titles when it is given."""
        return ReviewWorld._title(rng, split)

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
