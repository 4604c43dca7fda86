"""Specifications a program can check exactly: the review world's verifiable task.

An instruction that carries a specification, e.g. 'Write a 2-star review of the ending of "The Paper
Monsoon".', and a verifier that checks each of its constraints with the world's own judges:

* **rating**: the review's stars, `judges.rating` (3 + round(2 s)), are the ones asked for;
* **aspect**: it is about the asked aspect (`judges.on_topic`);
* **title**: every film it names is the one asked for, its title copied exactly: whatever it quotes, and every
  title of the world it writes without quotes (the world's titles are a regular language, `TITLE_RE`); a
  review may name no film at all. A garbled title written without quotes that is no title of the world
  ("Tower of Ashes") names no film as far as the verifier can tell: it checks what it checks;
* **well_formed**: a finished, well-formed review (`judges.well_formed` at least the threshold).

`verify` is a pure function of (spec, text): each constraint's pass or fail, and the reward 1.0 when all
pass, else 0.0. Specifications are split by title exactly as the world splits its prompts, so a held-out
specification never shares a film with a training one. The verifier checks what it checks and nothing
else: quality is the gold judge's business (`judges.gold_score`), which is how a verifier can be gamed.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from rlhf_lab.world.lexicon import TITLE_ADJECTIVES, TITLE_NOUNS, TITLE_OF
from rlhf_lab.world.judges import ASPECTS, WELL_FORMED_THRESHOLD, on_topic, rating, well_formed
from rlhf_lab.world.reviews import SPLITS, Prompt, ReviewWorld

SPEC_TEMPLATE = 'Write a {stars}-star review of the {aspect} of "{title}".\nReview:'
CONSTRAINTS = ("rating", "aspect", "title", "well_formed")
_ADJ, _NOUN, _OF = ("|".join(words) for words in (TITLE_ADJECTIVES, TITLE_NOUNS, TITLE_OF))
_QUOTED = re.compile(r'"([^"]*)"')
TITLE_RE = re.compile(rf"\b(?:The )?(?:(?:{_ADJ}) (?:{_NOUN})|(?:{_NOUN}) of (?:{_OF}))\b")
"""A film title of the world, anywhere in a text: "[The ]Adjective Noun" or "[The ]Noun of Noun"."""


def films_named(text: str) -> list[str]:
    """Every film ``text`` names: whatever it puts between double quotes, and every title of the world it writes
    without them (the longest match: "The Paper Monsoon", not "Paper Monsoon"), in order of appearance."""
    spans = [(m.start(1), m[1]) for m in _QUOTED.finditer(text)]
    quoted = [range(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    spans += [(m.start(), m[0]) for m in TITLE_RE.finditer(text) if not any(m.start() in q for q in quoted)]
    return [name for _, name in sorted(spans)]


@dataclass(frozen=True)
class Spec:
    """One checkable instruction: the stars (1..5), the aspect and the film asked for."""
    id: str
    stars: int
    aspect: str
    title: str

    def __post_init__(self):
        if not 1 <= self.stars <= 5:
            raise ValueError(f"spec {self.id}: stars must be 1 to 5, got {self.stars}")
        if self.aspect not in ASPECTS:
            raise ValueError(f"spec {self.id}: unknown aspect {self.aspect!r}; expected one of {ASPECTS}")

    @property
    def text(self) -> str:
        return SPEC_TEMPLATE.format(stars=self.stars, aspect=self.aspect, title=self.title)

    @property
    def prompt(self) -> Prompt:
        """The spec as a world prompt (an instruction), for the samplers, trainers and the gold judge."""
        return Prompt(self.id, self.text, "instruction", self.aspect, self.title)


@dataclass(frozen=True)
class Verdict:
    checks: dict[str, bool]

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    @property
    def reward(self) -> float:
        return 1.0 if self.passed else 0.0


def verify(spec: Spec, text: str) -> Verdict:
    """Check ``text`` (a completion, without the prompt) against ``spec``, constraint by constraint."""
    return Verdict({
        "rating": rating(text) == spec.stars,
        "aspect": on_topic(text, spec.aspect) >= 1.0,
        "title": all(t == spec.title for t in films_named(text)),
        "well_formed": well_formed(text) >= WELL_FORMED_THRESHOLD,
    })


def demonstration(spec: Spec, seed: int = 0) -> str:
    """A completion the grammar writes for ``spec`` that the verifier passes (a leading space, as the world's
    demonstrations have): one of the world's reviews of the asked film, about the asked aspect, aimed at the
    middle of the asked stars' band of sentiment, redrawn until it passes. Like the world's reviews, about two
    in three name the film and the rest do not. For the short fine-tuning that teaches the spec form."""
    world = ReviewWorld(seed)
    for attempt in range(200):
        rng = random.Random(f"{seed}/{spec.id}/demo/{attempt}")
        polarity = max(-1.0, min(1.0, (spec.stars - 3) / 2 + rng.uniform(-0.2, 0.2)))
        text = world.review(rng, spec.aspect, polarity, title=spec.title).text
        if verify(spec, text).passed:
            return " " + text
    raise RuntimeError(f"the grammar wrote no review that passes {spec.id} ({spec.text!r}) in 200 tries")


def demonstrations(n: int, split: str = "train", seed: int = 0) -> list[tuple[str, str]]:
    """(instruction, completion) pairs for ``n`` specifications of ``split``: `demonstration` of each of `specs`."""
    return [(s.text, demonstration(s, seed)) for s in specs(n, split, seed)]


_SPEC_RE = re.compile(r'Write a ([1-5])-star review of the (\w+) of "([^"]+)"\.\nReview:')


def parse_spec(text: str) -> Spec:
    """The specification an instruction carries (the inverse of ``Spec.text``); ValueError if it carries none."""
    m = _SPEC_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a specification: {text[:80]!r}; expected the form {SPEC_TEMPLATE[:60]!r}...")
    return Spec(f"spec-{m[3]}-{m[1]}-{m[2]}", int(m[1]), m[2], m[3])


class SpecReward:
    """The verifier as a reward function over prompt texts: ``reward(prompts, completions)`` -> a list of 0.0 / 1.0,
    the form the kit's trainers take as ``reward_fn`` (and as ``reward_model="verifier"``) and TRL's GRPOTrainer and
    RLOOTrainer as ``reward_funcs`` (they call it by keyword, with extra columns in ``kwargs``). Each prompt is read
    back into its specification (`parse_spec`); a prompt that carries none is an error, not a 0: a verifier that
    cannot tell what was asked must not pretend it failed."""

    __name__ = "verifier"     # TRL names a reward function's column in its logs by __name__

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        out = []
        for prompt, completion in zip(prompts, completions):
            try:
                spec = parse_spec(prompt)
            except ValueError as err:
                raise ValueError(f"the verifier cannot check this prompt: {err}") from None
            out.append(verify(spec, completion).reward)
        return out


def specs(n: int, split: str = "train", seed: int = 0) -> list[Spec]:
    """``n`` specifications of ``split``, fixed by (seed, split, index); titles follow the world's split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    out = []
    for i in range(n):
        rng = random.Random(f"{seed}/{split}/spec/{i}")
        title = ReviewWorld.title(rng, split)    # the world's own title sampler, held to the split
        out.append(Spec(f"spec-{split}-{i:05d}", rng.randint(1, 5), rng.choice(ASPECTS), title))
    return out
