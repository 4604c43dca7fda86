"""Specifications a program can check exactly: the review world's verifiable task.

An instruction that carries a specification, e.g. 'Write a 2-star review of the ending of "The Paper
Monsoon" that names the film.', and a verifier that checks each of its constraints with the world's
own judges:

* **rating**: the review's stars, `judges.rating` (3 + round(2 s)), are the ones asked for;
* **aspect**: it is about the asked aspect (`judges.on_topic`);
* **title**: it names the film, its title copied exactly between quotes, and no other film;
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

from rlhf_lab.world.judges import ASPECTS, WELL_FORMED_THRESHOLD, on_topic, rating, well_formed
from rlhf_lab.world.reviews import SPLITS, Prompt, ReviewWorld

SPEC_TEMPLATE = 'Write a {stars}-star review of the {aspect} of "{title}" that names the film.\nReview:'
CONSTRAINTS = ("rating", "aspect", "title", "well_formed")
_QUOTED = re.compile(r'"([^"]+)"')


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
    named = _QUOTED.findall(text)
    return Verdict({
        "rating": rating(text) == spec.stars,
        "aspect": on_topic(text, spec.aspect) >= 1.0,
        "title": bool(named) and all(t == spec.title for t in named),
        "well_formed": well_formed(text) >= WELL_FORMED_THRESHOLD,
    })


def demonstration(spec: Spec, seed: int = 0) -> str:
    """A completion the grammar writes for ``spec`` that the verifier passes (a leading space, as the world's
    demonstrations have): a review of the asked film, focused on the asked aspect, aimed at the middle of the
    asked stars' band of sentiment, redrawn until it passes. For a short fine-tuning on the spec form."""
    world = ReviewWorld(seed)
    for attempt in range(200):
        rng = random.Random(f"{seed}/{spec.id}/demo/{attempt}")
        polarity = max(-1.0, min(1.0, (spec.stars - 3) / 2 + rng.uniform(-0.2, 0.2)))
        text = world.review(rng, spec.aspect, polarity, title=spec.title, demo=True).text
        if verify(spec, text).passed:
            return " " + text
    raise RuntimeError(f"the grammar wrote no review that passes {spec.id} ({spec.text!r}) in 200 tries")


class SpecReward:
    """The verifier as a reward function over prompt texts: ``reward(prompts, completions)`` -> a list of 0.0 / 1.0,
    the form the kit's trainers take as ``reward_fn`` and TRL's GRPOTrainer and RLOOTrainer as ``reward_funcs``
    (they call it by keyword, with extra columns in ``kwargs``). A prompt that is not one of ``specs`` is an
    error, not a 0: a verifier that cannot tell what was asked must not pretend it failed."""

    def __init__(self, specs: list[Spec]):
        self.by_text = {s.text: s for s in specs}

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        out = []
        for prompt, completion in zip(prompts, completions):
            if prompt not in self.by_text:
                raise KeyError(f"no specification has the prompt {prompt[:80]!r}; "
                               f"SpecReward knows {len(self.by_text)} specifications")
            out.append(verify(self.by_text[prompt], completion).reward)
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
