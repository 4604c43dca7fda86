"""Labeling sets: one fixed set of prompts and K completions that a whole class ranks.

InstructGPT measured how much its labelers agree (Ouyang et al. 2022, §3.4: 72.6 ± 1.5% of
comparisons between training labelers, 77.3 ± 1.3% with held-out ones). That needs several
people ranking *the same* completions, so an instructor samples a set once and hands out
the file; every student's ranker shows exactly its completions, and every record they save
carries the set's id, so that `rlhf_lab.labels.pooling` can check that a class's files belong together.

The file is JSONL, written atomically (`rlhf_lab.utils.artefacts`):

* line 1, the header: ``format`` ("rlhf-lab/label-set"), ``schema_version``, ``set_id``,
  ``content_hash``, ``n``, ``k`` and how it was made (model, sampling, seed, command, time);
* then one line per prompt: ``prompt_id``, the prompt (``prompt``, ``kind``, ``aspect``,
  ``title``), its ``completions`` and their gold scores ``gold`` (hidden from labelers).

``content_hash`` is the SHA-256 of the prompt lines as written, and ``set_id`` is
"<name>-<first 8 hex digits of the hash>". Loading checks every line (errors name the file and
line) and the hash, so a set changed after students started ranking it is refused.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlhf_lab.labels.preferences import LabelTask, sample_for_labeling
from rlhf_lab.labels.store import MAX_K, MIN_K
from rlhf_lab.utils.artefacts import LOADS, write_text
from rlhf_lab.world.reviews import Prompt

FORMAT = "rlhf-lab/label-set"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class LabelSetError(ValueError):
    """A labeling-set file is missing, damaged or changed; the message names the file and line."""


class SetHeader(BaseModel):
    """Line 1 of a labeling-set file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["rlhf-lab/label-set"] = FORMAT
    schema_version: Literal[1] = 1
    set_id: str = Field(min_length=1)
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    n: int = Field(ge=1)
    k: int = Field(ge=MIN_K, le=MAX_K)
    model: str
    temperature: float
    max_new_tokens: int
    seed: int
    command: str = ""
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class SetTask(BaseModel):
    """One prompt of a labeling set and its K fixed completions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_id: str = Field(min_length=1)
    prompt: str
    kind: str
    aspect: str | None
    title: str
    completions: list[str] = Field(min_length=MIN_K, max_length=MAX_K)
    gold: list[float]

    @model_validator(mode="after")
    def _check(self) -> "SetTask":
        if len(self.gold) != len(self.completions):
            raise ValueError(f"gold has {len(self.gold)} scores for {len(self.completions)} completions")
        if len({c.strip() for c in self.completions}) != len(self.completions):
            raise ValueError("two completions are identical (a pair of equal texts carries no preference)")
        return self


@dataclass(frozen=True)
class LabelSet:
    """A labeling set: its header and its tasks (each `LabelTask` carries the set's id)."""

    header: SetHeader
    tasks: tuple

    @property
    def set_id(self) -> str:
        return self.header.set_id

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return (f"LabelSet({self.set_id!r}: {len(self)} prompts, K={self.header.k}, "
                f"completions from {self.header.model!r})")


def _task_lines(tasks) -> str:
    """The prompt lines of a set, exactly as written (and hashed)."""
    return "".join(SetTask(prompt_id=t.prompt_id, prompt=t.prompt.text, kind=t.prompt.kind, aspect=t.prompt.aspect,
                           title=t.prompt.title, completions=list(t.completions),
                           gold=list(t.gold)).model_dump_json() + "\n" for t in tasks)


def as_label_set(tasks, name: str, k: int, temperature: float, max_new_tokens: int, seed: int,
                 command: str = "") -> LabelSet:
    """Freeze sampled `LabelTask`s into a set named ``name`` (its id adds the content hash)."""
    if not NAME.match(name):
        raise ValueError(f"set name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-' (it goes into file names)")
    if not tasks:
        raise ValueError("a labeling set needs at least one prompt")
    ids = [t.prompt_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("two tasks share a prompt id; a set needs them unique")
    digest = hashlib.sha256(_task_lines(tasks).encode()).hexdigest()
    header = SetHeader(set_id=f"{name}-{digest[:8]}", content_hash=digest, n=len(tasks), k=k,
                       model=tasks[0].model, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                       command=command)
    return LabelSet(header, tuple(LabelTask(t.prompt, tuple(t.completions), tuple(t.gold), t.model, header.set_id)
                                  for t in tasks))


def make_label_set(model, tokenizer, prompts, name: str = "class-set", k: int = 4, max_new_tokens: int = 48,
                   temperature: float = 0.7, model_name: str = "tiny", seed: int = 0, device=None,
                   command: str = "") -> LabelSet:
    """Sample K distinct completions per prompt (`preferences.sample_for_labeling`, seeded) and
    freeze them into a set. Write it with `write_label_set` and hand the file out."""
    from rlhf_lab.config import set_seed   # here: config imports torch, and reading a set needs none

    if not MIN_K <= k <= MAX_K:
        raise ValueError(f"k must be between {MIN_K} and {MAX_K}, got {k}")
    if not prompts:
        raise ValueError("no prompts: a labeling set needs at least one")
    set_seed(seed)
    tasks = sample_for_labeling(model, tokenizer, prompts, k=k, max_new_tokens=max_new_tokens,
                                temperature=temperature, model_name=model_name, device=device)
    return as_label_set(tasks, name, k, temperature, max_new_tokens, seed, command)


def write_label_set(label_set: LabelSet, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the set atomically. An existing file is replaced only with ``overwrite`` (students may
    already be ranking it: their records name its id, and a new set has another)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: a labeling set is a .jsonl file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (a set students may be ranking); choose another file or overwrite=True")
    return write_text(path, label_set.header.model_dump_json() + "\n" + _task_lines(label_set.tasks))


def load_label_set(path: str | os.PathLike) -> LabelSet:
    """Read and check a set file: the header, every prompt line, unique ids, the count and the hash."""
    path = Path(path)
    if not path.is_file():
        raise LabelSetError(f"labeling set {path} not found (an instructor makes one with "
                            "`rlhf-lab label-set make --n 20 --k 4 --out class-set.jsonl`)")
    lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace").splitlines(keepends=True)
    if not lines:
        raise LabelSetError(f"{path} is empty: not a labeling set")
    try:
        header = SetHeader.model_validate_json(lines[0])
    except ValidationError as err:
        raise LabelSetError(f"{path}, line 1: not a labeling-set header ({err.errors()[0]['msg']}); "
                            "is this a label file rather than a set?") from None
    tasks, seen = [], set()
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            t = SetTask.model_validate_json(line)
        except ValidationError as err:
            where = ".".join(map(str, err.errors()[0]["loc"])) or "line"
            raise LabelSetError(f"{path}, line {n}: {where}: {err.errors()[0]['msg']}") from None
        if t.prompt_id in seen:
            raise LabelSetError(f"{path}, line {n}: prompt id {t.prompt_id!r} appears twice")
        seen.add(t.prompt_id)
        tasks.append(LabelTask(Prompt(t.prompt_id, t.prompt, t.kind, t.aspect, t.title), tuple(t.completions),
                               tuple(t.gold), header.model, header.set_id))
    if len(tasks) != header.n:
        raise LabelSetError(f"{path}: the header says {header.n} prompts, the file holds {len(tasks)} "
                            "(cut short or edited)")
    digest = hashlib.sha256("".join(line if line.endswith("\n") else line + "\n" for line in lines[1:]
                                    if line.strip()).encode()).hexdigest()
    if digest != header.content_hash:
        raise LabelSetError(f"{path}: the prompts and completions do not match the set's content hash "
                            f"({header.content_hash[:8]}...): the file was changed after it was made. Labels "
                            "ranked on it would not pool; ask for the original file")
    LOADS.record(("label-set", str(path)))
    return LabelSet(header, tuple(tasks))


def summary(label_set: LabelSet) -> str:
    """One paragraph: the id, the size, where the completions came from."""
    h = label_set.header
    short = sum(t.k < h.k for t in label_set.tasks)
    return (f"labeling set {h.set_id}: {h.n} prompts x K={h.k} completions from {h.model!r} "
            f"(T={h.temperature:g}, {h.max_new_tokens} new tokens, seed {h.seed})"
            + (f"; {short} prompts have fewer than K distinct completions" if short else "")
            + f"; made {h.created_at:%Y-%m-%d %H:%M} UTC" + (f" by {h.command!r}" if h.command else ""))
