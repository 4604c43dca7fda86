"""The checkers of notebook 00's exercises (the base model): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

from transformers import AutoConfig

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.lm.models import resolve
from rlhf_lab.world.judges import WELL_FORMED_THRESHOLD, well_formed


@exercise("00.1")
def _unembedding_sizes(answer) -> tuple[bool, str]:
    """(parameters of the tiny model's unembedding without bias, parameters of a reward head with bias)."""
    cfg = AutoConfig.from_pretrained(resolve("tiny")[1])
    expected = (cfg.n_embd * cfg.vocab_size, cfg.n_embd + 1)
    if tuple(answer) == expected:
        return True, f"n_emb x n_vocab = {expected[0]:,} weights become n_emb + 1 = {expected[1]}"
    return False, "the unembedding maps n_emb -> n_vocab; the reward head maps n_emb -> 1 and has a bias"


@exercise("00.2")
def _fraction_well_formed(answer) -> tuple[bool, str]:
    """A function texts -> fraction judged well-formed (world.well_formed >= WELL_FORMED_THRESHOLD)."""
    cases = [
        ["The plot is brilliant.", "The plot is", "good good good good good."],
        ["I watched it twice and the soundtrack is lovely!"],
        ["", "dull dull dull", "The acting is not bad, but the ending drags."],
    ]
    for texts in cases:
        expected = sum(well_formed(t) >= WELL_FORMED_THRESHOLD for t in texts) / len(texts)
        got = answer(texts)
        if not math.isclose(float(got), expected, abs_tol=1e-9):
            return False, f"for {texts!r} expected {expected:.3f}, got {got}"
    return True, ""


@exercise("00.3")
def _frozen_reference(answer) -> tuple[bool, str]:
    """A frozen copy of a model: no parameter requires a gradient, and it is in eval mode."""
    params = list(answer.parameters())
    if any(p.requires_grad for p in params):
        return False, "some parameters still require gradients (see requires_grad_)"
    if answer.training:
        return False, "the copy is in training mode: dropout would make pi_0 random (call .eval())"
    return True, "pi_0 stays fixed for the whole of RLHF"
