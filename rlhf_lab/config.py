"""Device, seeds, paths and the two run profiles of the course.

Every notebook starts with

    device = get_device()          # cuda, then mps, then cpu; printed once
    profile = get_profile(device)  # "cpu" (embedded model) or "gpu" (GPT-2 124M)

The profile is chosen from the device and can be overridden with the environment
variable ``RLHF_LAB_PROFILE=cpu|gpu``; ``RLHF_LAB_MODEL`` overrides only the model
name (a hub id such as ``"gpt2"``, a local path, or ``"tiny"``). Notebooks print the
profile so that every shown output says which setting produced it.

Everything the course writes (checkpoints, histories, a student's labels) goes under
``runs_dir()``: ``RLHF_LAB_RUNS`` if set, else ``runs/`` at the repository root, which
git ignores. The shipped ``data/`` folder is only ever read.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

PROFILE_ENV = "RLHF_LAB_PROFILE"
MODEL_ENV = "RLHF_LAB_MODEL"
RUNS_ENV = "RLHF_LAB_RUNS"

_printed_device: str | None = None


class DeviceError(RuntimeError):
    """The device asked for is not on this machine (no CUDA GPU, no MPS)."""


def get_device(prefer: str | None = None, verbose: bool = True) -> torch.device:
    """Return the best available device: cuda, then mps, then cpu.

    ``prefer`` ("cpu", "cuda", "mps") forces a choice; asking for one that is not
    available is a `DeviceError` rather than a silent fallback. The choice is printed once
    per process so notebooks show it without repeating it.
    """
    global _printed_device
    if prefer is not None:
        prefer = str(prefer)
        kind = prefer.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"device {prefer!r} was asked for but no CUDA GPU is available; use 'cpu'")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise DeviceError(f"device {prefer!r} was asked for but MPS is not available; use 'cpu'")
        if kind not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unknown device {prefer!r}; expected 'cpu', 'cuda' or 'mps'")
        device = torch.device(prefer)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cuda":   # TF32 tensor cores for the float32 matmuls left outside bf16 autocast
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        # cuDNN's attention builds a plan per shape (2.5 ms of CPU per call on an H200, half a PPO
        # iteration: every decode step is a new key length); the flash and memory-efficient kernels don't
        torch.backends.cuda.enable_cudnn_sdp(False)
    if verbose and _printed_device != str(device):
        threads = torch.get_num_threads()
        name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{threads} CPU thread" + ("s" if threads != 1 else ""))
        print(f"rlhf-lab device: {device} ({name})")
        _printed_device = str(device)
    return device


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (all devices). Reseed right before each random cell."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def fork_rng():
    """``torch.random.fork_rng`` over the CPU's generator and every CUDA device's: what runs inside
    (an evaluation's sampling, a head's random init) leaves the caller's random streams as they were,
    on a GPU too (``devices=[]`` forks the CPU's alone, and sampling on a GPU draws from CUDA's)."""
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else [])


def bf16_autocast(device, enabled: bool = True):
    """bf16 autocast on a CUDA GPU that supports bf16 when ``enabled``, a no-op elsewhere (CPUs, and
    GPUs before Ampere such as a T4, run float32; `get_device` turns TF32 matmuls on for CUDA).

    Inside, the transformer's matmuls run in bf16 (twice the tensor-core rate of float32, half
    the memory traffic). Safe there; not for what the methods subtract and sum: log-softmax,
    log-prob differences, the KL, rewards, values and losses. The callers cast logits and hidden
    states to float32 before those (``.float()`` in generation, packing, reward and rollout).
    """
    device = torch.device(device)
    on = enabled and device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def float32_head(head: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A scalar head (reward, value) on hidden states ``h``, in float32 even inside bf16 autocast:
    autocast would run the linear layer in bf16, whose 8-bit mantissa rounds a reward of 1.23 by
    up to 0.005, more than the differences PPO's advantages and the Bradley-Terry loss are made of."""
    with torch.autocast(device_type=h.device.type, enabled=False):
        return head(h.float()).squeeze(-1)


def adamw(params, lr: float, **kwargs) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (one kernel for every parameter: what transformers' Trainer
    uses on torch >= 2.8) where the parameters' device has it, the multi-tensor one elsewhere.
    With ``weight_decay=0`` (the default here) it is Adam. ``params``: tensors or param groups."""
    params = list(params)
    kwargs.setdefault("weight_decay", 0.0)
    try:
        return torch.optim.AdamW(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, ValueError):   # a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, **kwargs)


class ConfigError(ValueError):
    """A config field has a value it cannot take; the message names the field and the value."""


_RANGES = {">0": (lambda v: v > 0, "greater than 0"), ">=0": (lambda v: v >= 0, "0 or more"),
           ">=1": (lambda v: v >= 1, "at least 1"), "[0,1]": (lambda v: 0 <= v <= 1, "between 0 and 1"),
           "(0,1)": (lambda v: 0 < v < 1, "strictly between 0 and 1"),
           "[0,1)": (lambda v: 0 <= v < 1, "in [0, 1)"), "(0,1]": (lambda v: 0 < v <= 1, "in (0, 1]"),
           "name": (lambda v: bool(v.strip()), "a non-empty name")}


def _type_problem(annotation: str, value) -> str | None:
    """Why ``value`` does not fit the field's annotation ("int", "float | None", ...), or None."""
    if not isinstance(annotation, str):   # a module without `from __future__ import annotations`
        annotation = getattr(annotation, "__name__", None) or str(annotation)
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None:
        return None if "None" in kinds else "must not be None"
    if "bool" in kinds:
        return None if isinstance(value, bool) else "must be True or False"
    if "int" in kinds and isinstance(value, int) and not isinstance(value, bool):
        return None
    if "float" in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if math.isfinite(value) else "must be a finite number"
    if "str" in kinds and isinstance(value, str):
        return None
    return f"must be of type {annotation}"


def validate_config(cfg, ranges: dict[str, str | tuple]) -> None:
    """Check every field of a config dataclass on construction: its type (a finite number where a
    float is wanted, an integer where an int is) and, from ``ranges``, its range (">0", ">=0",
    ">=1", "[0,1]", "(0,1)", "[0,1)", "(0,1]", "name": a non-empty string) or its allowed values (a tuple). None passes where
    the field allows None. Raises `ConfigError` naming the config, the field and the value."""
    name = type(cfg).__name__
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        problem = _type_problem(f.type, value)
        rule = ranges.get(f.name)
        if problem is None and value is not None and rule is not None:
            if isinstance(rule, tuple):
                problem = None if value in rule else f"must be one of {', '.join(map(repr, rule))}"
            else:
                ok, says = _RANGES[rule]
                problem = None if ok(value) else f"must be {says}"
        if problem:
            raise ConfigError(f"{name}.{f.name} {problem}, got {value!r}")


@dataclass(frozen=True)
class Profile:
    """Sizes shared by every notebook, and the profile's chain of artefacts (`rlhf_lab.course`):
    base model -> SFT model -> labels -> reward model. One preset per kind of machine."""

    name: str
    """Profile name: "cpu" (the embedded model, CI) or "gpu" (GPT-2 124M)."""
    model_name: str
    """The chain's SFT model: the policy and reference of every notebook ("tiny", or a folder)."""
    base_model: str
    """The pretrained model the SFT model is fine-tuned from ("tiny-base", "gpt2", a folder)."""
    labels: str
    """The chain's preference file: rankings of the SFT model's samples (notebook 02)."""
    reward_model: str
    """The chain's reward model, trained on ``labels`` on the SFT backbone (notebook 03)."""
    n_label_prompts: int
    """Prompts the chain's simulated labelers rank (K = 4 completions each)."""
    batch_size: int
    """Prompts per generation / training batch."""
    max_new_tokens: int
    """Token budget of a sampled completion."""
    temperature: float
    """Sampling temperature (0.7 in the PPO reproductions, Huang et al. 2024)."""
    n_eval_prompts: int
    """Held-out prompts used when a notebook reports a mean gold score."""
    train_steps: int
    """Optimizer steps for the short in-notebook training demonstrations."""
    smoke: bool = False
    """Smoke sizes (``RLHF_LAB_SMOKE=1``): every size tiny, for CI runs of the whole course."""

    def __post_init__(self):
        validate_config(self, {"name": "name", "model_name": "name", "base_model": "name", "labels": "name",
                               "reward_model": "name", "n_label_prompts": ">=1", "batch_size": ">=1",
                               "max_new_tokens": ">=1", "temperature": ">0", "n_eval_prompts": ">=1",
                               "train_steps": ">=1"})

    @classmethod
    def cpu(cls) -> "Profile":
        """The embedded model on a laptop CPU: every notebook under a minute on 2 cores. Its chain
        is shipped in data/ (`make models` rebuilds it)."""
        return cls(name="cpu", model_name="tiny", base_model="tiny-base",
                   labels=str(data_dir() / "preferences" / "simulated.jsonl"), reward_model="tiny-rm",
                   n_label_prompts=512, batch_size=16, max_new_tokens=48, temperature=0.7, n_eval_prompts=64,
                   train_steps=60)

    @classmethod
    def gpu(cls) -> "Profile":
        """GPT-2 (124M) on one GPU, on its own chain under runs/gpu/ (`rlhf-lab prepare --profile gpu`).
        "gpt2" needs the hub once (or the local cache); offline, RLHF_LAB_BASE names a GPT-2 made by
        `rlhf-lab pretrain --size gpt2`."""
        return cls(name="gpu", model_name=str(runs_dir("gpu", "sft", create=False)), base_model="gpt2",
                   labels=str(runs_dir("gpu", "preferences", "simulated.jsonl", create=False)),
                   reward_model=str(runs_dir("gpu", "reward_model", create=False)), n_label_prompts=2048,
                   batch_size=64, max_new_tokens=48, temperature=0.7, n_eval_prompts=256, train_steps=300)

    def shrunk(self) -> "Profile":
        """The same profile and chain at smoke sizes (seconds per notebook on a CPU)."""
        return replace(self, smoke=True, n_label_prompts=min(self.n_label_prompts, 16),
                       batch_size=min(self.batch_size, 4), max_new_tokens=min(self.max_new_tokens, 8),
                       n_eval_prompts=min(self.n_eval_prompts, 4), train_steps=min(self.train_steps, 2))

    def n(self, full: int, smoke: int = 4) -> int:
        """A notebook's own size: ``full``, or ``min(full, smoke)`` at smoke sizes."""
        return min(full, smoke) if self.smoke else full

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


PROFILES = {"cpu": Profile.cpu, "gpu": Profile.gpu}
BASE_ENV = "RLHF_LAB_BASE"
SMOKE_ENV = "RLHF_LAB_SMOKE"


def get_profile(device: torch.device | str | None = None, verbose: bool = True) -> Profile:
    """The profile for this machine: "gpu" on CUDA, else "cpu"; ``RLHF_LAB_PROFILE`` overrides.

    ``RLHF_LAB_BASE`` replaces the base model the chain is fine-tuned from (offline, a GPT-2 you
    pretrained: ``runs/models/gpt2-upt``); ``RLHF_LAB_MODEL`` replaces the policy (the chain's
    labels and reward model stay); ``RLHF_LAB_SMOKE=1`` shrinks every size (CI).
    """
    forced = os.environ.get(PROFILE_ENV, "").strip().lower()
    if forced:
        if forced not in PROFILES:
            raise ValueError(f"{PROFILE_ENV}={forced!r} is not a profile; choose one of {sorted(PROFILES)}")
        profile, why = PROFILES[forced](), f"from {PROFILE_ENV}"
    else:
        dev = torch.device(device) if device is not None else get_device(verbose=False)
        profile = Profile.gpu() if dev.type == "cuda" else Profile.cpu()
        why = f"chosen for device {dev.type}"
    base = os.environ.get(BASE_ENV, "").strip()
    if base:
        profile = replace(profile, base_model=setting_path(base))
        why += f", base from {BASE_ENV}"
    model = os.environ.get(MODEL_ENV, "").strip()
    if model:
        profile = replace(profile, model_name=setting_path(model))
        why += f", model from {MODEL_ENV}"
    smoke = os.environ.get(SMOKE_ENV, "").strip().lower()
    if smoke not in ("", "0", "1", "true", "false"):
        raise ValueError(f"{SMOKE_ENV}={smoke!r}: use 1 (smoke sizes) or 0")
    if smoke in ("1", "true"):
        profile = profile.shrunk()
        why += f", smoke sizes from {SMOKE_ENV}"
    if verbose:
        model_name = profile.model_name if profile.name == "cpu" else short_path(profile.model_name)
        print(f"rlhf-lab profile: {profile.name} ({why}); model {model_name!r}")
    return profile


def short_path(path) -> str:
    """A name as given ("tiny", "gpt2"), a path under the default runs folder as runs/..., one under
    the repository as data/... (or wherever it is there): what notebooks and commands print, so that
    their outputs show no home folder and read the same on every machine. Where ``$RLHF_LAB_RUNS``
    moved the runs folder, its paths are printed whole: a message names the file where it went."""
    text = str(path)
    root = repo_root()
    if Path(text).is_absolute() and runs_dir(create=False).resolve() != (root / "runs").resolve():
        try:
            Path(text).resolve().relative_to(runs_dir(create=False).resolve())
            return str(Path(text).resolve())
        except ValueError:
            pass
    try:
        return str(Path(text).relative_to(root)) if Path(text).is_absolute() else text
    except ValueError:
        return text


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def setting_path(value: str, always: bool = False) -> str:
    """A folder named in a setting (``RLHF_LAB_BASE``, ``RLHF_LAB_MODEL``, ``RLHF_LAB_RUNS``), made absolute
    so that it means the same folder from the CLI, a notebook kernel (which runs in notebooks/) and a
    benchmark: a relative path is relative to the repository root, wherever the process runs. A
    model name stays a name ("tiny", "gpt2", "openai-community/gpt2"): a value is a path when
    ``always``, when it starts with ".", "/" or "~", when the root holds it, or when it starts with
    runs/ or data/ (so that a missing one is reported where it was looked for)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    first = path.parts[0] if path.parts else ""
    if always or value.startswith((".", "~")) or (repo_root() / path).exists() or first in ("runs", "data"):
        return str((repo_root() / path).resolve())
    return value


def data_dir() -> Path:
    """The shipped, read-only data folder (embedded models, simulated labels)."""
    return repo_root() / "data"


def runs_dir(*parts: str, create: bool = True) -> Path:
    """Where the course writes: ``$RLHF_LAB_RUNS`` or ``<repo>/runs`` (git-ignored)."""
    base = Path(setting_path(os.environ.get(RUNS_ENV, "").strip() or "runs", always=True))
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path

