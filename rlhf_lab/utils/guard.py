"""The one non-finite guard of every training loop in the kit.

A loss, a gradient norm or a parameter that is NaN or infinite means the update diverged (too
large a learning rate, a reward of NaN, log-probs that overflowed): every step after it trains on
garbage, and a checkpoint written then would replace a good one with a spoiled one. So each loop
of the kit (pre-training and SFT, the reward model, DPO, REINFORCE, PPO and the critic-free
methods) checks the numbers it reads back from the device with `check_step`, and its parameters
with `check_parameters` before it returns or saves, and stops with a message that says where the
run was and what to change.
"""
from __future__ import annotations

import math

import torch


def nonfinite_parameter(module) -> str | None:
    """The name of the first parameter of ``module`` that holds NaN or inf, or None (one device wait)."""
    named = list(module.named_parameters())
    if not named:
        return None
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).cpu().tolist()
    return next((n for (n, _), ok in zip(named, finite) if not ok), None)


def check_step(loss: float, grad_norm: float | None, what: str, at: str, fix: str) -> None:
    """Stop at a loss or gradient norm (floats read from the device) that is not finite.

    ``what`` names the loss ("the DPO"), ``at`` the place in the run ("at step 3 of 40"), ``fix``
    what to change and what became of the saved files ("lower lr (=0.001). Nothing was saved.")."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"{what} loss is {loss} {at}; {fix}")
    if grad_norm is not None and not math.isfinite(grad_norm):
        raise FloatingPointError(f"{what} gradient norm is {grad_norm} {at} with a finite loss ({loss:.4g}): a "
                                 f"gradient overflowed or a model produced NaN in its backward pass; {fix}")


def check_parameters(module, what: str, when: str, fix: str) -> None:
    """Stop if a parameter of ``module`` is not finite; ``what`` names the model ("the policy's")."""
    if module is None:
        return
    bad = nonfinite_parameter(module)
    if bad:
        raise FloatingPointError(f"{what} parameter {bad} is not finite {when}; {fix}")
