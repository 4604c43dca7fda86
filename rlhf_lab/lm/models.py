"""The language models of the course: the embedded tiny GPT-2, GPT-2 by name, and the three copies.

The course (after InstructGPT, Ouyang et al. 2022, §3.5) starts RLHF from one supervised
fine-tuned model pi_SFT and makes three copies of it:

1. the baseline pi_0, frozen for the whole of RLHF (the reference of the KL penalty);
2. the policy pi_theta, the only copy whose parameters RL changes;
3. the reward model r_phi: the same transformer with its unembedding (n_emb x n_vocab)
   removed and replaced by a linear map n_emb x 1, a scalar reward (`load_model(...,
   role="backbone")` gives the transformer without the unembedding; `rlhf_lab.reward.train`
   puts the head on).

`load_model` loads any of them from ``"tiny"`` (the shipped SFT model, the offline default),
``"tiny-base"`` (the shipped pretrained model before SFT), a local folder, or a Hugging Face
hub id such as ``"gpt2"``. GPT-2 has no PAD token; one is added (PAD is not EOS, `rlhf_lab.lm.tokens`).
"""
from __future__ import annotations

import copy
import difflib
import json
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from huggingface_hub import constants
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
from transformers.activations import GELUTanh, NewGELUActivation
from transformers.utils import logging as hf_logging

from rlhf_lab.config import data_dir, repo_root
from rlhf_lab.lm.tokens import PAD, ensure_pad_token
from rlhf_lab.utils.artefacts import LOADS, atomic_dir, read_json, recover
from rlhf_lab.utils.cards import model_card, records_sha256
from rlhf_lab.utils.guard import check_parameters

# The embedded model loads in milliseconds; transformers' per-load progress bars would
# only clutter notebook outputs. Hub downloads keep huggingface_hub's own progress bars.
hf_logging.disable_progress_bar()

SHIPPED = {"tiny": "tiny-sft", "tiny-sft": "tiny-sft", "tiny-base": "tiny-upt", "tiny-upt": "tiny-upt"}
"""Names of the embedded checkpoints under data/models/ ("tiny" is the SFT model)."""
DEFAULT_MODEL = "tiny"
ROLES = ("policy", "reference", "backbone")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


SHIPPED_REWARD_MODELS = ("tiny-rm",)
"""Shipped reward models (data/models/), which are not policies."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def _shipped_names() -> str:
    return ", ".join(repr(n) for n in (*SHIPPED, *SHIPPED_REWARD_MODELS))


def resolve(name: str) -> tuple[str, str]:
    """Map a model name to ``(kind, location)``: ("shipped" | "local" | "hub", path or id).

    A name that is neither shipped, nor a folder, nor shaped like a hub id ("gpt2",
    "openai-community/gpt2") fails here, with the shipped names, before any network attempt:
    a path whose folder is missing, a name with spaces or a file name, a near-miss of a
    shipped name ("tiny-sf"), or "runs/..." when that folder does not exist.
    """
    name = str(name).strip()
    if name in SHIPPED or name in SHIPPED_REWARD_MODELS:
        return "shipped", str(data_dir() / "models" / SHIPPED.get(name, name))
    path = Path(name).expanduser()
    if name and not path.is_absolute() and not path.exists() and (repo_root() / path).exists():
        path = repo_root() / path   # "runs/..." from a notebook kernel, which runs in notebooks/
    if name and not path.exists():
        recover(path)   # a save killed between its two renames (systems without an atomic exchange)
    if path.is_dir():
        return "local", str(path)
    shipped = f"the shipped models are {_shipped_names()}"
    if not name:
        raise ModelLoadError(f"no model name given; {shipped}")
    if path.exists():
        raise ModelLoadError(f"{name!r} is a file; a model is a folder (saved with save_pretrained) or a name: {shipped}")
    first = Path(name.split("/")[0]).expanduser()
    if (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
            or ("/" in name and (first.is_dir() or first.name in ("runs", "data")))):
        raise ModelLoadError(f"model folder {name!r} does not exist; {shipped}, or give a folder saved "
                             f"with save_pretrained")
    close = difflib.get_close_matches(name, [*SHIPPED, *SHIPPED_REWARD_MODELS], n=1, cutoff=0.75)
    if close:
        raise ModelLoadError(f"unknown model {name!r}: did you mean {close[0]!r}? {shipped[0].upper() + shipped[1:]}")
    if not _HUB_ID.match(name) or ".." in name or "--" in name or name.endswith((".json", ".safetensors", ".bin", ".pt")):
        raise ModelLoadError(f"{name!r} is neither a shipped model, a folder, nor a Hugging Face hub id "
                             f"(such as 'gpt2'); {shipped}")
    return "hub", name


def _from_pretrained(cls, location: str, kind: str, name: str):
    """``cls.from_pretrained`` with errors that say what went wrong and what to do."""
    if kind != "hub":
        try:
            return cls.from_pretrained(location)
        except Exception as err:  # a truncated or hand-edited checkpoint fails in many ways
            hint = ("restore it with `git checkout data/models` or rebuild it with `rlhf-lab pretrain` "
                    "and `rlhf-lab sft`") if kind == "shipped" else "re-save it with save_pretrained"
            raise ModelLoadError(f"the checkpoint in {location} could not be read "
                                 f"({type(err).__name__}: {str(err)[:200]}); it may be corrupt: {hint}") from err
    try:  # the local Hugging Face cache first: no network needed
        return cls.from_pretrained(location, local_files_only=True)
    except OSError:
        pass
    if not _hub_reachable():
        raise ModelLoadError(
            f"model {name!r} is not in the local Hugging Face cache and the hub cannot be reached (offline). "
            f"Connect once to download it, or use the embedded default {DEFAULT_MODEL!r} (a GPT-2-architecture "
            f"model shipped in data/models/), or a local folder saved with save_pretrained.")
    try:
        return cls.from_pretrained(location)
    except OSError as err:
        raise ModelLoadError(f"model {name!r} was not found on the Hugging Face hub ({str(err)[:160]}); "
                             f"check the spelling (e.g. 'gpt2') or use {DEFAULT_MODEL!r}") from err


def load_tokenizer(name: str = DEFAULT_MODEL):
    """The tokenizer of model ``name``, left-padding, with a PAD token distinct from EOS."""
    kind, location = resolve(name)
    tok = _from_pretrained(AutoTokenizer, location, kind, name)
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        tok.add_special_tokens({"pad_token": PAD})
    tok.padding_side = "left"
    return tok


def load_model(name: str = DEFAULT_MODEL, role: str = "policy", device=None):
    """Load ``(model, tokenizer)`` for one of the course's three copies.

    role="policy": a causal LM whose parameters will be trained (pi_theta).
    role="reference": the same, frozen (requires_grad False) and in eval mode (pi_0).
    role="backbone": the transformer without its unembedding, for a reward or value
    model; its last hidden state (B, L, n_emb) feeds a scalar head.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if str(name) in SHIPPED_REWARD_MODELS and role != "backbone":
        raise ModelLoadError(f"{name!r} is the shipped reward model, not a policy; the shipped SFT policy is "
                             f"{DEFAULT_MODEL!r} (load reward models with rlhf_lab.reward.train.load_reward_model)")
    kind, location = resolve(name)
    LOADS.record(("model", location))
    if kind != "hub" and role != "backbone":
        refuse_non_policy(Path(location))
    tokenizer = load_tokenizer(name)
    cls = AutoModel if role == "backbone" else AutoModelForCausalLM
    model = fused_gelu(_from_pretrained(cls, location, kind, name))
    ensure_pad_token(model, tokenizer)
    model.to(device or "cpu")
    if role == "reference":
        model = freeze(model)
    return model, tokenizer


def folder_kind(folder: Path) -> str | None:
    """What a saved folder is, from its files: "reward model", "PPO checkpoint", "policy" (a causal
    LM with a generation config), or None. Loaders use it to refuse the wrong kind by name."""
    folder = Path(folder)
    if (folder / "reward_config.json").exists() or (folder / "reward_head.safetensors").exists():
        return "reward model"
    if (folder / "trainer_state.pt").exists():
        return "PPO checkpoint"
    if (folder / "generation_config.json").exists():
        return "policy"
    return None


def refuse_non_policy(folder: Path) -> None:
    """A policy must be a causal LM: refuse a reward model's folder or a PPO checkpoint's top
    folder (whose policy is in ``policy/``) with an error that says what to pass instead."""
    kind = folder_kind(folder)
    if kind == "reward model":
        raise ModelLoadError(f"{folder} is a reward model (it scores text; it does not write it): a policy is "
                             f"a causal LM such as {DEFAULT_MODEL!r}, an SFT folder or a PPO checkpoint's policy/; "
                             f"load reward models with rlhf_lab.reward.train.load_reward_model")
    if kind == "PPO checkpoint" and (folder / "policy").is_dir():
        raise ModelLoadError(f"{folder} is a PPO checkpoint; its policy is {folder / 'policy'}")
    config = folder / "config.json"
    if config.exists():
        arch = read_json(config, "model folder").get("architectures") or []
        if arch and not any(a.endswith(("LMHeadModel", "ForCausalLM")) for a in arch):
            raise ModelLoadError(f"{folder} holds a {arch[0]}, not a causal language model: it cannot be a policy "
                                 f"(a reward model or a bare backbone?); use an SFT folder or {DEFAULT_MODEL!r}")


def save_policy(model, tokenizer, path, metadata: dict | None = None, records=None) -> Path:
    """Save a policy (an SFT, DPO or RL-trained causal LM) so that `load_model(path)` and plain
    ``AutoModelForCausalLM.from_pretrained(path)`` load it: save_pretrained of model and tokenizer
    and an optional ``metadata.json``, written whole and swapped in atomically
    (`rlhf_lab.utils.artefacts.atomic_dir`). ``records``: the preference records it was trained on (DPO);
    their count and SHA-256 go into the metadata and the model card. Non-finite parameters are refused
    before anything is written."""
    if records is not None:
        records = list(records)
        metadata = {**(metadata or {}), "data": f"{len(records)} rankings", "data_sha256": records_sha256(records)}
    check_parameters(model, "the policy's", f"when saving to {path}", "not saved (training diverged; lower the "
                     "learning rate)")
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if metadata is not None:
            (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n")
        (tmp / "README.md").write_text(policy_card(Path(path), metadata or {}))
    return Path(path)


def policy_card(path: Path, meta: dict, title: str | None = None, what: str | None = None) -> str:
    """A policy's README.md (`rlhf_lab.utils.cards`) from its metadata (command, seed, data, metrics)."""
    config = meta.get("config") or {}
    made = {"command": meta.get("command"), "seed": meta.get("seed", config.get("seed")),
            "base model": meta.get("base_model") or config.get("model"), "data": meta.get("data"),
            "data sha256": meta.get("data_sha256")}
    metrics = {k: v for k, v in meta.items() if k.startswith(("final_", "val_", "gold", "kl")) and not isinstance(v, (dict, list))}
    return model_card(title or f"Policy {path.name}", what or "A GPT-2-architecture causal language model trained "
                      "with rlhf-lab (a policy: it writes reviews of the course's film world).", "causal LM",
                      made, metrics, path=str(path))


def fused_gelu(model):
    """Swap GPT-2's "gelu_new" for torch's fused tanh GELU, in place; returns the model.

    Both compute 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))); transformers writes "gelu_new"
    out in Python (eight element-wise kernels forward, more backward), torch's
    ``F.gelu(approximate="tanh")`` is one kernel each way: outputs agree to ~1e-7 and the MLP
    activation runs about 3x faster (a fifth of a training step of the embedded model on a CPU).
    The config says "gelu_pytorch_tanh" afterwards, so saved copies load the same way anywhere.
    """
    for module in model.modules():
        for child_name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, child_name, GELUTanh())
    config = getattr(model, "config", None)
    if getattr(config, "activation_function", None) == "gelu_new":
        config.activation_function = "gelu_pytorch_tanh"
    return model


def model_metadata(name: str = DEFAULT_MODEL) -> dict:
    """The ``metadata.json`` of a shipped or local checkpoint: how it was made ({} if absent)."""
    kind, location = resolve(name)
    path = Path(location) / "metadata.json"
    return json.loads(path.read_text()) if kind != "hub" and path.exists() else {}


def freeze(model):
    """Freeze in place: no gradients, eval mode (dropout off). Returns the model."""
    model.requires_grad_(False)
    return model.eval()


def frozen_copy(model):
    """The baseline pi_0: a deep copy of ``model`` that RL never changes."""
    return freeze(copy.deepcopy(model))


def context_length(config) -> int:
    """Tokens the model attends over: GPT-2's n_positions, or max_position_embeddings elsewhere."""
    return getattr(config, "n_positions", None) or config.max_position_embeddings


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def describe(model) -> str:
    """One line: architecture sizes and parameter count."""
    c = model.config
    return (f"{type(model).__name__}: {c.n_layer} layers, {c.n_head} heads, n_emb={c.n_embd}, "
            f"n_vocab={c.vocab_size}, context={c.n_positions}, {count_parameters(model) / 1e6:.2f}M parameters")


@torch.no_grad()
def unembedding(model) -> torch.nn.Module:
    """The last linear layer of the LM, n_emb -> n_vocab (tied to the token embedding in GPT-2)."""
    return model.get_output_embeddings()
