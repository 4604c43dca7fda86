"""Rejection-sampling fine-tuning (expert iteration): sample K completions per prompt, keep the ones a checker
passes, fine-tune on them, repeat (as for Llama 2's rejection sampling and in Stanford CS336's assignment 5).

`select_passing` keeps every passing completion of each prompt; `matched_random` is its control: as many
completions per prompt as passed, chosen at random among all K, so that a comparison of the two differs in
the selection only, not in the amount of data (notebook 09).
"""
from __future__ import annotations

import random


def select_passing(prompts: list[str], completions: list[list[str]], passed: list[list[bool]]) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of every completion that passed, prompt by prompt, in order."""
    _check(prompts, completions, passed)
    return [(p, c) for p, cs, ok in zip(prompts, completions, passed) for c, good in zip(cs, ok) if good]


def matched_random(prompts: list[str], completions: list[list[str]], passed: list[list[bool]],
                   seed: int = 0) -> list[tuple[str, str]]:
    """For each prompt, as many of its completions as passed, drawn at random without replacement from all of them."""
    _check(prompts, completions, passed)
    rng = random.Random(seed)
    return [(p, c) for p, cs, ok in zip(prompts, completions, passed) for c in rng.sample(cs, sum(map(bool, ok)))]


def _check(prompts, completions, passed) -> None:
    if not len(prompts) == len(completions) == len(passed):
        raise ValueError(f"{len(prompts)} prompts, {len(completions)} rows of completions, {len(passed)} rows of verdicts")
    for i, (cs, ok) in enumerate(zip(completions, passed)):
        if len(cs) != len(ok):
            raise ValueError(f"prompt {i}: {len(cs)} completions but {len(ok)} verdicts")
