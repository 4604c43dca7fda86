"""The checkers of notebook 00's exercises (the base model): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import math

import torch
from transformers import AutoConfig

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.lm.models import load_model, resolve
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
    """A function ``make_reference(policy)`` that returns pi_0: a frozen copy of the policy (copy.deepcopy,
    not `frozen_copy`), leaving the policy itself trainable."""
    if isinstance(answer, torch.nn.Module) or not callable(answer):
        return False, "answer with a function make_reference(policy) that returns the frozen copy"
    if "frozen_copy" in getattr(getattr(answer, "__code__", None), "co_names", ()):
        return False, "the exercise is to write what frozen_copy does: use copy.deepcopy"
    policy, _ = load_model("tiny", role="policy", device="cpu")
    policy.train().requires_grad_(True)
    reference = answer(policy)
    if reference is policy:
        return False, "that is the policy itself: once frozen, RL could not train it any more. Copy it first"
    if not all(p.requires_grad for p in policy.parameters()) or not policy.training:
        return False, "making the reference changed the policy too (it must stay trainable, in training mode)"
    if not isinstance(reference, torch.nn.Module):
        return False, f"make_reference returned a {type(reference).__name__}, not a model"
    shared = {p.data_ptr() for p in policy.parameters()} & {p.data_ptr() for p in reference.parameters()}
    if shared:
        return False, "the reference shares its weights with the policy: every policy update would move pi_0 too"
    if any(p.requires_grad for p in reference.parameters()):
        return False, "some of the reference's parameters still require gradients"
    if reference.training:
        return False, "the copy is in training mode: dropout would make pi_0 random"
    ids = torch.arange(1, 9)[None]
    with torch.no_grad():
        out = reference(input_ids=ids)
        if not hasattr(out, "logits"):
            return False, "pi_0 must be the whole language model: it scores tokens with log-probs (logits)"
        policy.eval()
        same = torch.allclose(out.logits, policy(input_ids=ids).logits, atol=1e-6)
    if not same:
        return False, "the reference gives other logits than the policy: at the start, pi_0 = pi_theta"
    return True, "pi_0 stays fixed for the whole of RLHF"
