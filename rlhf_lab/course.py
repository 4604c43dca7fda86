"""One chain of artefacts per profile: SFT model -> labels -> reward model.

Every notebook after 00 stands on what the earlier ones made (the course's pipeline, InstructGPT's
three steps):

    base model --SFT on demonstrations--> SFT model          (notebook 00, section 3; policy and reference)
    SFT model  --K samples per prompt, ranked--> labels      (notebook 02)
    labels     --Bradley-Terry on the SFT backbone--> r_phi  (notebook 03; what notebooks 05-07 optimise)

The profile (`rlhf_lab.config.Profile`) names each link, and this module makes them:

* cpu: the chain is shipped in ``data/``: ``tiny-upt`` -> ``tiny`` -> ``data/preferences/simulated.jsonl``
  -> ``tiny-rm``. Nothing is built.
* gpu: GPT-2 (``gpt2`` from the hub, or offline ``RLHF_LAB_BASE=runs/models/gpt2-upt`` made by
  ``rlhf-lab pretrain --size gpt2``) -> ``runs/gpu/sft`` -> ``runs/gpu/preferences/simulated.jsonl``
  -> ``runs/gpu/reward_model``, each made from the one before with the gpu presets
  (``SFTConfig.gpu()``, ``RewardConfig.gpu()``): never the tiny model's labels or reward model.

``rlhf-lab prepare --profile gpu`` builds the whole chain (with progress bars); a notebook calls
`ensure` for the links it needs, which builds a missing link of the gpu chain (saying so) or, with
``build=False``, stops with an error naming the notebook and the command that make it.
``RLHF_LAB_SMOKE=1`` shrinks every size (`preset`) so that CI runs the gpu course on the CPU.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from rlhf_lab.config import Profile, runs_dir, short_path
from rlhf_lab.labels.label_sets import SetHeader
from rlhf_lab.labels.labelers import build_simulated_dataset
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.labels.store import PreferenceStore, current_records
from rlhf_lab.lm.models import SHIPPED, SHIPPED_REWARD_MODELS, ModelLoadError, resolve
from rlhf_lab.lm.pretrain import SFTConfig, sft
from rlhf_lab.reward.save import train_and_save_reward_model
from rlhf_lab.reward.train import RewardConfig
from rlhf_lab.utils.artefacts import LOADS

LINKS = ("sft", "labels", "reward_model")
"""The chain's artefacts, in the order they are made."""

MADE_BY = {"sft": "notebook 00 (section 3)", "labels": "notebook 02", "reward_model": "notebook 03"}
LABELER = "sim-gold"
"""The simulated labeler whose rankings train the chain's reward model (as the shipped tiny-rm)."""

# Smoke sizes (RLHF_LAB_SMOKE=1): every preset field of these names is capped at these values,
# so the gpu course runs top to bottom in CI on a small hub-shaped GPT-2, on the CPU. The caps go by
# field name: tests/test_course.py checks that each names a field of a config `preset` is used on.
SMOKE_CAPS = {"iterations": 2, "steps": 2, "epochs": 1, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1,
              "max_new_tokens": 8, "max_pairs": 24, "n_demos": 64, "prompts_per_batch": 4, "pairs_per_batch": 8,
              "samples_per_prompt": 2, "eval_every": 2, "warmup": 1, "checkpoint_every": 1, "num_generations": 2,
              "num_iterations": 1, "rounds": 1, "prompts_per_round": 4}


class ChainError(RuntimeError):
    """A link of the profile's chain is missing; the message names what makes it."""


def link_path(profile: Profile, link: str) -> str:
    """Where the profile keeps ``link`` ("sft", "labels", "reward_model"): a name or a path."""
    if link not in LINKS:
        raise ValueError(f"unknown link {link!r}; the chain is {', '.join(LINKS)}")
    return {"sft": profile.model_name, "labels": profile.labels, "reward_model": profile.reward_model}[link]


def is_built(profile: Profile, link: str) -> bool:
    """Whether ``link`` exists: shipped names always do; a folder or file must be complete."""
    where = link_path(profile, link)
    if link == "labels":
        return Path(where).is_file() and Path(where).stat().st_size > 0
    if where in SHIPPED or where in SHIPPED_REWARD_MODELS:
        return True
    folder = Path(where)
    markers = ("reward_config.json", "config.json") if link == "reward_model" else ("config.json",)
    return all((folder / m).is_file() for m in markers)


def command(profile: Profile) -> str:
    """The shell command that builds ``profile``'s chain."""
    return f"rlhf-lab prepare --profile {profile.name}"


def preset(profile: Profile, cls, *variant, **changes):
    """``cls``'s preset for the profile (``cls.gpu(*variant)`` or ``cls.tiny(*variant)``, e.g.
    ``preset(profile, GroupConfig, "rloo")``) on the profile's chain.

    Fields named ``model``, ``backbone``, ``base`` and ``reward_model`` are set to the chain's
    SFT model, SFT model, base model and reward model; ``changes`` then apply; under
    ``profile.smoke`` every field in `SMOKE_CAPS` is capped last, changes included.
    """
    cfg = cls.gpu(*variant) if profile.name == "gpu" else cls.tiny(*variant)
    names = {f.name for f in dataclasses.fields(cls)}
    chain = {"model": profile.model_name, "backbone": profile.model_name, "base": profile.base_model,
             "reward_model": profile.reward_model}
    values = {k: v for k, v in chain.items() if k in names}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
    values.update(changes)
    if profile.smoke:
        for k, cap in SMOKE_CAPS.items():
            current = values.get(k, getattr(cfg, k, None)) if k in names else None
            if isinstance(current, (int, float)) and not isinstance(current, bool) and current > cap:
                values[k] = type(current)(cap)
    return dataclasses.replace(cfg, **values)


def ensure(profile: Profile, *links: str, build: bool = True, device=None, progress: bool = True) -> dict[str, str]:
    """Make sure the chain's ``links`` (default: all, in order) exist; return {link: name or path}.

    A missing link is built, with the links before it, when ``build`` (the gpu chain; the cpu
    chain is shipped and is never rebuilt here); otherwise a `ChainError` names the notebook
    and the command that make it.
    """
    wanted = [x for x in LINKS if x in (links or LINKS)]
    for x in links:
        link_path(profile, x)   # unknown names fail here
    upto = max((LINKS.index(x) for x in wanted), default=-1)
    for link in LINKS[:upto + 1]:
        if is_built(profile, link):
            continue
        if profile.name == "cpu" and link != "labels":
            raise ChainError(f"the shipped {link} {link_path(profile, link)!r} is missing; restore it with "
                             f"`git checkout data/` or rebuild it with `make models`")
        if not build:
            raise ChainError(f"the {profile.name} profile's {link.replace('_', ' ')} ({link_path(profile, link)}) "
                             f"has not been made yet: run {MADE_BY[link]} first, or `{command(profile)}`")
        print(f"building the {profile.name} chain's {link.replace('_', ' ')} (what {MADE_BY[link]} makes) "
              f"-> {link_path(profile, link)}")
        BUILDERS[link](profile, device=device, progress=progress)
    return {x: link_path(profile, x) for x in wanted}


def prepare(profile: Profile, device=None, progress: bool = True, rebuild: bool = False) -> dict[str, float]:
    """Build every missing link of ``profile``'s chain (all of them with ``rebuild``); returns the
    seconds each link took (0 for links that were already there)."""
    seconds = {}
    for link in LINKS:
        start = time.perf_counter()
        if rebuild and profile.name != "cpu":
            BUILDERS[link](profile, device=device, progress=progress)
        else:
            ensure(profile, link, device=device, progress=progress)
        seconds[link] = time.perf_counter() - start
    return seconds


def _build_sft(profile: Profile, device=None, progress: bool = True) -> None:
    cfg = preset(profile, SFTConfig, device=None if device is None else str(device))
    try:
        sft(cfg, out_dir=Path(profile.model_name), progress=progress,
            command=f"rlhf_lab.course.ensure(profile {profile.name!r}, 'sft')")
    except ModelLoadError as err:
        raise ChainError(f"{err}\nThe {profile.name} chain starts from {profile.base_model!r}. Offline, pretrain "
                         f"GPT-2's architecture on the review world with `rlhf-lab pretrain --size gpt2` and set "
                         f"RLHF_LAB_BASE=runs/models/gpt2-upt") from err


def _build_labels(profile: Profile, device=None, progress: bool = True) -> None:
    target = Path(profile.labels)
    if target.name != "simulated.jsonl":
        raise ChainError(f"the profile's labels must be a simulated.jsonl to be built here, got {target}")
    build_simulated_dataset(target.parent, n_prompts=profile.n_label_prompts, k=4, model_name=profile.model_name,
                            temperature=profile.temperature, max_new_tokens=profile.max_new_tokens,
                            seed=0, device=device, overwrite=True,
                            command=f"rlhf_lab.course.ensure(profile {profile.name!r}, 'labels')")


def _build_reward_model(profile: Profile, device=None, progress: bool = True) -> None:
    cfg = preset(profile, RewardConfig, normalise_std=True, device=None if device is None else str(device))
    records = load_preferences(profile.labels, labeler=LABELER)
    if not records:
        raise ChainError(f"{profile.labels} holds no rankings by {LABELER}; rebuild the labels with "
                         f"`{command(profile)} --rebuild`")
    # on cfg.backbone, the chain's SFT model (`preset`), through the writer `rlhf-lab reward` uses too
    train_and_save_reward_model(cfg, records, profile.reward_model, labels=profile.labels, labeler=LABELER,
                                command=f"rlhf_lab.course.ensure(profile {profile.name!r}, 'reward_model')",
                                progress=progress)


BUILDERS = {"sft": _build_sft, "labels": _build_labels, "reward_model": _build_reward_model}


def reward_labels(profile: Profile, labels=None, min_own: int = 20) -> tuple[list, str]:
    """The rankings notebook 03 trains its reward model on, and a sentence that says which:

    * ``labels``, a label file (say a class's pooled labels), with every labeler's rankings in it;
    * else the student's own files under runs/labels/ (labeling sets' subfolders included), the
      latest ranking per (labeler, prompt), when they hold at least ``min_own``;
    * else the profile's simulated labels of `LABELER`.
    """
    if labels:
        records = load_preferences(labels)
        if not records:
            raise ValueError(f"{labels} holds no rankings that count (empty, or every one retracted)")
        return records, f"{short(labels)} ({len(records)} rankings by {len({r.labeler for r in records})} labelers)"
    folder = runs_dir("labels", create=False)
    files = sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []
    own = current_records(r for path in files for r in PreferenceStore(path).read())
    if len(own) >= min_own:
        return own, f"your labels ({len(own)} rankings in {', '.join(p.name for p in files)})"
    return (load_preferences(profile.labels, labeler=LABELER),
            f"the {profile.name} chain's simulated labels (labeler {LABELER})")


def short(path) -> str:
    """A name as given, a path under the default runs folder as runs/... (whole where $RLHF_LAB_RUNS moved
    it), one under the repository as data/...: what notebooks print (`rlhf_lab.config.short_path`)."""
    return short_path(path)


def describe(profile: Profile) -> str:
    """One line per link: where it is and whether it is built."""
    lines = [f"{profile.name} chain (base {short(profile.base_model)!r}):"]
    for link in LINKS:
        lines.append(f"  {link:12s} {short(link_path(profile, link))}  [{'ready' if is_built(profile, link) else 'missing'}]")
    return "\n".join(lines)


def fingerprint(path) -> str:
    """A short sha256 of a file or of a folder's files (names and bytes), to show two artefacts are one."""
    path, digest = Path(path), hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def foreign_loads(profile: Profile, loaded=None) -> list[tuple[str, str]]:
    """The loads of ``loaded`` (default `artefacts.LOADS.since()`, everything this process loaded) that are
    not ``profile``'s chain: a model other than its base or SFT model (or a policy trained from it
    under runs/: a PPO checkpoint, a DPO policy), a reward model other than the chain's (or notebook
    03's own in runs/reward_model), labels other than the chain's, unless they (or a labeling set)
    rank completions of the chain's SFT model, as notebook 02 makes them. Empty when a run stood on
    the chain."""
    def where(name):
        try:
            return str(Path(resolve(name)[1]).resolve()) if not Path(name).exists() else str(Path(name).resolve())
        except Exception:
            return str(name)

    runs = runs_dir(create=False).resolve()
    trained = [runs / "ppo", runs / "dpo", runs / "reward_model"]   # made in the notebooks from the chain
    own = {"model": [where(profile.model_name), where(profile.base_model), *trained, where(profile.reward_model)],
           "reward_model": [where(profile.reward_model), runs / "reward_model"],
           "labels": [where(profile.labels)]}
    out = []
    for kind, path in (LOADS.since() if loaded is None else list(loaded)):
        target = Path(path).resolve() if Path(path).exists() else Path(path)
        if any(target == Path(ok) or Path(ok) in target.parents for ok in own.get(kind, [])):
            continue
        if kind in ("labels", "label-set") and _sampled_from(target, kind) == {profile.model_name}:
            continue   # labels or a labeling set made in a notebook from the chain's own SFT model
        out.append((kind, str(path)))
    return out


def _sampled_from(path: Path, kind: str) -> set[str]:
    """The models whose completions a label file or a labeling set holds (empty if it cannot be read)."""
    try:   # read, not loaded: nothing is recorded in LOADS
        if kind == "label-set":
            with open(path, "rb") as f:
                return {SetHeader.model_validate_json(f.readline()).model}
        return {r.model for r in PreferenceStore(path).read()}
    except (OSError, ValueError):
        return set()


def chain_record(profile: Profile) -> str:
    """The chain as JSON (links, paths, fingerprints of built links), for logs and tests."""
    out = {}
    for link in LINKS:
        where = link_path(profile, link)
        out[link] = {"path": where, "fingerprint": fingerprint(where) if Path(where).exists() else None}
    return json.dumps(out)


__all__ = ["LINKS", "MADE_BY", "ChainError", "chain_record", "command", "describe", "ensure", "fingerprint", "foreign_loads",
           "is_built", "link_path", "prepare", "preset", "short"]
