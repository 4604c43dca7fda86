"""The checkers of notebook 00's exercises (the base model): `rlhf_lab.exercises.registry.check` runs them."""
from __future__ import annotations

import copy
import math

import numpy as np

import torch
from transformers import AutoConfig, GPT2Config, GPT2LMHeadModel

from rlhf_lab.exercises.registry import exercise
from rlhf_lab.lm.models import frozen_copy, load_model, resolve
from rlhf_lab.world.judges import GOLD_W_ON_TOPIC, GOLD_W_SENTIMENT


def _tied_counts(name: str) -> tuple[float, int]:
    """(share of the LM's parameters in its tied token embedding, its parameter count with the unembedding
    untied) for the config of model ``name``, counted on the meta device (no memory, no weights)."""
    cfg = AutoConfig.from_pretrained(resolve(name)[1]) if name == "tiny" else GPT2Config()
    with torch.device("meta"):
        model = GPT2LMHeadModel(cfg)
    total = sum(p.numel() for p in model.parameters())       # parameters() counts a tied tensor once
    embedding = cfg.vocab_size * cfg.n_embd
    return embedding / total, total + embedding


@exercise("00.1")
def _unembedding_sizes(answer) -> tuple[bool, str]:
    """(share of the policy's parameters held by its tied embedding matrix, the policy's parameter count if its
    unembedding were a matrix of its own): for the tiny model, or for GPT-2 (124M) on the gpu profile."""
    got = tuple(answer)
    if len(got) != 2:
        return False, "answer with two numbers: (a share between 0 and 1, a parameter count)"
    counts = [_tied_counts(name) for name in ("tiny", "gpt2")]
    for share, untied in counts:
        if math.isclose(float(got[0]), share, abs_tol=5e-4) and int(got[1]) == untied:
            return True, (f"{share:.1%} of the model is one matrix, used twice; untied, the policy, the reference and "
                          f"the reward model's backbone would each carry it separately ({untied:,} parameters)")
    if any(math.isclose(float(got[0]), share, abs_tol=5e-4) for share, _ in counts):
        return False, "the share is right; the untied count is not"
    return False, "count the parameters the model reports, and what one more matrix of that shape adds"


@exercise("00.2")
def _gold_tie(answer) -> tuple[bool, str]:
    """(the sentiment at which a well-formed, off-topic review ties a neutral, well-formed, on-topic one;
    the highest gold score a well-formed, off-topic review can reach), from the gold formula."""
    tie = GOLD_W_ON_TOPIC / GOLD_W_SENTIMENT                 # 0.6 s - 0.15 = 0
    best_off_topic = GOLD_W_SENTIMENT - GOLD_W_ON_TOPIC     # s = 1, w = 1, o = 0
    got = tuple(float(x) for x in answer)
    if len(got) == 2 and math.isclose(got[0], tie, abs_tol=1e-3) and math.isclose(got[1], best_off_topic, abs_tol=1e-3):
        return True, (f"s = {tie:.2f}: a mildly positive review on the wrong aspect is worth a neutral one on the right "
                      f"aspect, and no off-topic review beats {best_off_topic:.2f}")
    if len(got) != 2:
        return False, "answer with two numbers: (a sentiment, a gold score)"
    return False, "write r* for each review with w = 1 and solve; the second number is a maximum over s"


def _reference_candidates(policy):
    """(name, candidate reference, is it a valid pi_0 for this policy) built from the policy."""
    trainable = copy.deepcopy(policy).train()
    in_train_mode = copy.deepcopy(policy).requires_grad_(False).train()
    sharing = copy.deepcopy(policy).requires_grad_(False).eval()
    for name, param in policy.named_parameters():       # the same tensors as the policy: a shallow copy
        module, attr = sharing.get_submodule(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]
        setattr(module, attr, param)
    other = copy.deepcopy(policy).requires_grad_(False).eval()
    with torch.no_grad():
        next(other.parameters()).add_(0.01)              # a different model: not the policy at the start
    return [("the policy itself", policy, False), ("a trainable copy", trainable, False),
            ("a frozen copy left in training mode", in_train_mode, False),
            ("a copy that shares the policy's tensors", sharing, False),
            ("a frozen copy of other weights", other, False),
            ("a frozen deep copy in eval mode", copy.deepcopy(policy).requires_grad_(False).eval(), True),
            ("frozen_copy(policy)", frozen_copy(policy), True)]


@exercise("00.3")
def _valid_reference(answer) -> tuple[bool, str]:
    """A function ``is_valid_reference(policy, reference) -> bool``: True exactly when ``reference`` can serve
    as pi_0 for a policy about to be trained (a separate, frozen, deterministic copy of the same weights)."""
    if isinstance(answer, torch.nn.Module) or not callable(answer):
        return False, "answer with a function is_valid_reference(policy, reference) -> bool"
    policy, _ = load_model("tiny", role="policy", device="cpu")
    policy.train().requires_grad_(True)
    for name, reference, valid in _reference_candidates(policy):
        got = answer(policy, reference)
        if not isinstance(got, (bool, np.bool_)) and not (isinstance(got, torch.Tensor) and got.numel() == 1):
            return False, f"is_valid_reference returned a {type(got).__name__}, not True or False"
        if bool(got) != valid:
            return False, f"your function calls {name} {'valid' if got else 'invalid'}"
        if not policy.training or not all(p.requires_grad for p in policy.parameters()):
            return False, "checking the reference changed the policy: it must stay trainable, in training mode"
    return True, "pi_0 is a separate, frozen, deterministic copy of the policy as it starts"
