"""The resumable checkpoint of an RL run: what the folder holds, how it is written and read back.

A checkpoint holds everything that makes a resumed run continue exactly as an uninterrupted one
(same machine and seed):

    policy/               the policy, save_pretrained (loads with plain transformers too)
    value.safetensors     the value function (PPO's head or separate critic); critic-free runs have none
    trainer_state.pt      optimizer state, beta, torch and generator RNG states (tensors only)
    config.json           the run's config fields
    prompts.json          the prompts the run draws from
    history.json          one row of metrics per iteration, and a few samples

It is written whole into a hidden staging folder and swapped in atomically
(`rlhf_lab.utils.artefacts.atomic_dir`), so a kill at any instant leaves the previous checkpoint or the
new one. `read_checkpoint` checks every file before any model is loaded and names the one that is
damaged, missing or foreign; `read_policy` and `load_value_function` then load the models' weights.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rlhf_lab.config import ConfigError
from rlhf_lab.lm.models import load_model, policy_card
from rlhf_lab.rl.rollout import PPOHistory
from rlhf_lab.utils.artefacts import ArtefactError, atomic_dir, read_json
from rlhf_lab.utils.guard import nonfinite_parameter
from rlhf_lab.world.reviews import Prompt

CHECKPOINT_STATE = "trainer_state.pt"
STATE_KEYS = {"optimizer", "kl_coef", "torch_rng", "generator", "cuda_rng"}


def write_checkpoint(path, policy, tokenizer, value_function: torch.nn.Module | None, state: dict, cfg,
                     prompts: list[Prompt], history: PPOHistory, algo: str) -> Path:
    """Write the folder described above atomically. ``state`` holds `STATE_KEYS`; a run without a
    ``value_function`` (None: RLOO, GRPO) writes no value.safetensors. ``algo``: the command of the run."""
    with atomic_dir(path) as tmp:
        policy.save_pretrained(tmp / "policy")
        tokenizer.save_pretrained(tmp / "policy")
        if value_function is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in value_function.state_dict().items()},
                      tmp / "value.safetensors")
        torch.save(state, tmp / CHECKPOINT_STATE)
        (tmp / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        prompts_json = json.dumps([asdict(p) for p in prompts])
        (tmp / "prompts.json").write_text(prompts_json)
        (tmp / "history.json").write_text(json.dumps(history.to_dict()))
        last, name = (history.rows[-1] if history.rows else {}), algo.upper()
        (tmp / "policy" / "README.md").write_text(policy_card(
            Path(path) / "policy", {"command": f"rlhf-lab {algo}", "config": asdict(cfg),
                                    "base_model": cfg.model, "data": f"{len(prompts)} prompts (prompts.json beside it)",
                                    "data_sha256": hashlib.sha256(prompts_json.encode()).hexdigest(),
                                    "gold (last iteration)": last.get("objective/gold"),
                                    "kl (last iteration)": last.get("objective/kl")},
            title=f"{name} policy", what=f"The policy of an rlhf-lab {name} checkpoint after {len(history)} "
            f"iterations against the reward model {cfg.reward_model!r}; the folder above it resumes the run."))
    return Path(path)


def checkpoint_note(path, algo: str) -> str:
    """One sentence for an error message: which checkpoint is intact, and how to resume from it
    (`rlhf-lab <algo> --resume`)."""
    if path is not None and (Path(path) / CHECKPOINT_STATE).exists():
        try:
            done = len(read_json(Path(path) / "history.json")["rows"])
        except (ArtefactError, KeyError, TypeError):
            done = "?"
        return (f"The last checkpoint ({path}, after iteration {done}) is intact; "
                f"resume from it with `rlhf-lab {algo} --resume` (or the trainer's resume()).")
    return "No checkpoint was written (pass out_dir to train to keep one)."


def read_checkpoint(path, config_cls, **overrides) -> dict:
    """Read and check every file of a checkpoint except the policy's weights: the config (a
    ``config_cls``, with ``overrides`` applied and validated), prompts, history, value function (None
    when the folder has no value.safetensors) and trainer state. Returns them in a dict; a missing,
    damaged or foreign file is an `ArtefactError` naming it, a bad override a `ConfigError`."""
    path = Path(path)
    if not (path / CHECKPOINT_STATE).exists():
        if (path / "reward_config.json").exists():
            raise ArtefactError(f"{path} is a reward model, not a checkpoint of an RL run")
        raise FileNotFoundError(f"{path} is not a PPO checkpoint (no {CHECKPOINT_STATE}); "
                                f"start a new run without --resume")
    hint = (f"The checkpoint in {path} is damaged (saves are atomic, so it was changed after saving): "
            f"start a new run with another --out.")
    saved = read_json(path / "config.json", "checkpoint", hint)
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(saved) - known) if isinstance(saved, dict) else []
    if not isinstance(saved, dict) or unknown:
        raise ArtefactError(f"{path / 'config.json'}: unknown field(s) {unknown} (a checkpoint of another rlhf-lab "
                            f"version, or edited by hand); known fields are {config_cls.__name__}'s: {sorted(known)}")
    try:
        cfg = config_cls(**{**saved, **overrides})
    except ConfigError as err:
        raise ConfigError(f"{path / 'config.json'} with the options given: {err}") from None
    try:
        prompts = [Prompt(**p) for p in read_json(path / "prompts.json", "checkpoint", hint)]
    except TypeError as err:
        raise ArtefactError(f"{path / 'prompts.json'}: not a list of prompts ({err}). {hint}") from None
    try:
        history = PPOHistory.from_dict(read_json(path / "history.json", "checkpoint", hint))
    except (KeyError, TypeError) as err:
        raise ArtefactError(f"{path / 'history.json'}: not a run's history ({err!r}). {hint}") from None
    try:
        value = load_file(path / "value.safetensors") if (path / "value.safetensors").exists() else None
    except Exception as err:   # safetensors raises its own error types for truncated files
        raise ArtefactError(f"{path / 'value.safetensors'} could not be read ({type(err).__name__}: "
                            f"{str(err)[:160]}). {hint}") from None
    try:
        state = torch.load(path / CHECKPOINT_STATE, map_location="cpu", weights_only=True)
    except Exception as err:   # UnpicklingError for foreign pickles, RuntimeError/EOFError for truncation
        why = ("it holds pickled Python objects, which are refused (weights_only): it was not written by rlhf-lab"
               if "weights_only" in str(err) or "Unpickl" in type(err).__name__ else "it is cut short or damaged")
        raise ArtefactError(f"{path / CHECKPOINT_STATE} could not be read: {why} "
                            f"({type(err).__name__}). {hint}") from None
    missing = STATE_KEYS - set(state if isinstance(state, dict) else {})
    if missing:
        raise ArtefactError(f"{path / CHECKPOINT_STATE} lacks {sorted(missing)}. {hint}")
    return {"config": cfg, "prompts": prompts, "history": history, "value": value, "state": state}


def read_policy(path, device):
    """The policy and tokenizer of the checkpoint in ``path``, refused if a parameter is NaN or inf."""
    policy, tokenizer = load_model(str(Path(path) / "policy"), role="policy", device=device)
    if bad := nonfinite_parameter(policy):
        raise ArtefactError(f"{Path(path) / 'policy'}: parameter {bad} is not finite; this checkpoint was saved after "
                            f"training diverged and cannot be resumed: start a new run with another --out")
    return policy, tokenizer


def load_value_function(path, module: torch.nn.Module | None, saved: dict | None) -> None:
    """Load ``saved`` (`read_checkpoint`'s "value") into the run's value function ``module``; a run
    without one (None) needs none, a run with one needs the file, and it must fit the module."""
    if module is None:
        return
    if saved is None:
        raise ArtefactError(f"{Path(path) / 'value.safetensors'} is missing, and this run has a value function "
                            f"({type(module).__name__}); start a new run with another --out")
    try:
        module.load_state_dict(saved)
    except RuntimeError as err:
        raise ArtefactError(f"{Path(path) / 'value.safetensors'} does not fit this run's value function "
                            f"({type(module).__name__}): {str(err)[:200]}") from None
