"""Preference data: K completions per prompt, rankings, an append-only store, and the pairs.

InstructGPT (Ouyang et al. 2022, §3.4-3.5) shows labelers K = 4 to 9 completions of one
prompt x and asks for a *ranking*, best to worst. A ranking of K completions holds all
C(K, 2) comparisons (y_w, y_l) at once, which is what the reward model of notebook 03
learns from through the Bradley-Terry model

    p(y_w > y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))            (InstructGPT eq. 1)

This module is the data half of notebook 02:

* `sample_for_labeling`: K distinct completions per prompt from one batched call;
* `PreferenceRecord` and `PreferenceStore` (in `rlhf_lab.labels.store`): one submitted
  ranking, validated on write and on read, in an append-only JSONL file: one line per
  submission, written in one ``os.write``, fsynced before it is reported saved, under a lock;
* `ranking_to_pairs`, `to_pairs`, `export_trl`, `split_by_prompt`: the derived data set
  in TRL's ``prompt``/``chosen``/``rejected`` columns, split by prompt, never by pair;
* `to_dataset`, `export_pairs`: the same pairs as a ``datasets.Dataset`` (and JSONL or Parquet)
  with ``prompt_id``, ``group_id`` and ``labeler``, optionally in TRL's conversational form.

Rankings are strict: ties are not allowed (a tie would give no pair and is better
expressed by skipping). The store is a log: a corrected ranking is a new line, an "undo
submit" a retraction line. `load_preferences` returns the labels that count
(`current_records`: the latest record per (labeler, prompt), retracted ones left out).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from rlhf_lab.labels.store import MIN_K, PreferenceRecord, PreferenceStore, current_records, ranking_to_pairs
from rlhf_lab.utils.artefacts import LOADS, write_bytes, write_text
from rlhf_lab.world.reviews import Prompt, judge_completion

SHIPPED = "preferences/simulated.jsonl"
"""The simulated data set under data/, made by ``rlhf-lab label --simulated``."""


def load_preferences(path: str | os.PathLike | None = None, labeler: str | None = None) -> list[PreferenceRecord]:
    """The rankings that count in a preference file (default: the shipped simulated data set),
    optionally one labeler's: the latest per (labeler, prompt), none where it was retracted
    (`current_records`). ``PreferenceStore(path).read()`` gives the whole log."""
    # here, not at the top: config imports torch, and this module stays torch-free so that the
    # ranker and the label commands start fast (tests/test_layout.py checks it)
    from rlhf_lab.config import data_dir

    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"preference file {path} not found (the shipped labels are {data_dir() / SHIPPED}; "
                                f"a student's are in runs/labels/<name>.jsonl)")
    path = path or data_dir() / SHIPPED
    records = current_records(PreferenceStore(path).read())
    LOADS.record(("labels", str(path)))
    return [r for r in records if labeler is None or r.labeler == labeler]


# ---- sampling K completions per prompt ----------------------------------------------------

@dataclass(frozen=True)
class LabelTask:
    """One prompt and its K distinct completions, waiting for a ranking."""

    prompt: Prompt
    completions: tuple[str, ...]
    gold: tuple[float, ...]
    """Gold r*(x, y_k) from the world's judges (hidden from a human labeler)."""
    model: str
    set_id: str | None = None
    """The labeling set this task belongs to (`rlhf_lab.labels.label_sets`), None when freshly sampled."""

    @property
    def prompt_id(self) -> str:
        return self.prompt.id

    @property
    def k(self) -> int:
        return len(self.completions)


def make_record(task: LabelTask, ranking: list[int], labeler: str, source: str = "human",
                seconds: float | None = None) -> PreferenceRecord:
    """The record of ``labeler``'s ranking of ``task`` (validated)."""
    return PreferenceRecord(prompt_id=task.prompt_id, prompt=task.prompt.text, completions=list(task.completions),
                            ranking=list(ranking), labeler=labeler, source=source, model=task.model,
                            gold=list(task.gold), seconds=seconds, set_id=task.set_id)


def sample_for_labeling(model, tokenizer, prompts: list[Prompt], k: int = 4, max_new_tokens: int = 48,
                        temperature: float = 0.7, model_name: str = "tiny", device=None,
                        max_tries: int = 3) -> list[LabelTask]:
    """K distinct completions y_1..y_K ~ pi(. | x) for each prompt, from one batched call.

    Completions equal after stripping whitespace count once. A prompt left with fewer than
    K distinct ones is resampled (K more samples for each such prompt, in one batched call)
    up to ``max_tries`` times; if it still has fewer, it keeps what it has (K_n < K, still a
    valid ranking task) when that is at least 2, and is dropped with a warning otherwise.
    """
    from rlhf_lab.lm.generation import sample   # here: torch, which this module's readers need not load

    if k < MIN_K:
        raise ValueError(f"k must be at least {MIN_K} (a ranking needs two completions), got {k}")
    texts = [p.text for p in prompts]
    distinct: list[dict[str, str]] = [{} for _ in prompts]

    def add(rows: list[int], completions: list[str]) -> None:
        for j, row in enumerate(rows):
            for c in completions[j * k:(j + 1) * k]:
                if len(distinct[row]) < k:
                    distinct[row].setdefault(c.strip(), c)

    out = sample(model, tokenizer, texts, max_new_tokens=max_new_tokens, temperature=temperature,
                 num_samples=k, device=device)
    add(list(range(len(prompts))), out.completions)
    for _ in range(max_tries):
        short = [i for i, d in enumerate(distinct) if len(d) < k]
        if not short:
            break
        out = sample(model, tokenizer, [texts[i] for i in short], max_new_tokens=max_new_tokens,
                     temperature=temperature, num_samples=k, device=device)
        add(short, out.completions)
    tasks, short, dropped = [], 0, []
    for p, d in zip(prompts, distinct):
        if len(d) < MIN_K:
            dropped.append(p.id)
            continue
        short += len(d) < k
        completions = tuple(d.values())
        gold = tuple(round(judge_completion(p, c).gold, 6) for c in completions)
        tasks.append(LabelTask(p, completions, gold, model_name))
    if short or dropped:
        warnings.warn(f"{short} prompts have fewer than K={k} distinct completions after {max_tries} resamplings "
                      f"(kept with fewer); {len(dropped)} had fewer than 2 and were dropped: {dropped[:5]}",
                      stacklevel=2)
    return tasks


# ---- derived data: pairs, TRL columns, split by prompt ------------------------------------

def to_pairs(records: Iterable[PreferenceRecord]) -> list[dict]:
    """One row (prompt, chosen, rejected) per comparison, C(K, 2) per record, with ids kept."""
    rows = []
    for r in records:
        for w, l in ranking_to_pairs(r.ranking):
            rows.append({"prompt": r.prompt, "chosen": r.completions[w], "rejected": r.completions[l],
                         "prompt_id": r.prompt_id, "labeler": r.labeler, "record_id": r.record_id})
    return rows


def export_trl(records: Iterable[PreferenceRecord], path: str | os.PathLike) -> int:
    """Write the pairs as JSONL with TRL's ``prompt``/``chosen``/``rejected`` columns (the format
    its RewardTrainer and DPOTrainer read; ``datasets.load_dataset("json", data_files=path)``).
    Returns the number of rows."""
    rows = to_pairs(records)
    write_text(path, "".join(json.dumps({k: row[k] for k in ("prompt", "chosen", "rejected", "prompt_id")}) + "\n"
                             for row in rows))
    return len(rows)


PAIR_COLUMNS = ("prompt", "chosen", "rejected", "prompt_id", "group_id", "labeler")
"""The columns of `to_dataset`: TRL's three, then where each pair came from (``group_id``: the ranking,
shared by its C(K, 2) pairs, for grouped reward-model training)."""


def to_dataset(records: Iterable[PreferenceRecord], conversational: bool = False):
    """The pairs as a ``datasets.Dataset``: one row per C(K, 2) comparison, columns `PAIR_COLUMNS`.
    TRL's RewardTrainer and DPOTrainer take it as it is. ``conversational``: TRL's conversational
    form (``prompt`` a list with one user message, ``chosen``/``rejected`` one assistant message)."""
    from datasets import Dataset   # here, as each datasets import below: it takes about a second

    cols = {k: [] for k in PAIR_COLUMNS}
    for row in to_pairs(records):
        for k in PAIR_COLUMNS:
            cols[k].append(row["record_id"] if k == "group_id" else row[k])
    if conversational:
        cols["prompt"] = [[{"role": "user", "content": p}] for p in cols["prompt"]]
        for k in ("chosen", "rejected"):
            cols[k] = [[{"role": "assistant", "content": c}] for c in cols[k]]
    return Dataset.from_dict(cols)


def export_pairs(records: Iterable[PreferenceRecord], path: str | os.PathLike, conversational: bool = False) -> int:
    """Write `to_dataset`'s rows to ``path``, by its suffix: ``.jsonl`` (one JSON object per line) or
    ``.parquet``, atomically (`rlhf_lab.utils.artefacts`). ``datasets.load_dataset("json" or "parquet",
    data_files=path)`` reads it back. Returns the number of rows."""
    _suffix(path)
    return _write_dataset(to_dataset(records, conversational), path)


def _suffix(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"{path}: export to a .jsonl or .parquet file (got {suffix or 'no suffix'!r})")
    return suffix


def _write_dataset(ds, path) -> int:
    """Write a ``datasets.Dataset`` to ``path`` (.jsonl or .parquet) atomically; returns its rows."""
    import datasets   # here: see to_dataset


    suffix = _suffix(path)
    buf = io.BytesIO()
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()     # a bar for writing to memory in a millisecond is noise
    try:
        if suffix == ".jsonl":
            ds.to_json(buf, lines=True, force_ascii=False)
        else:
            ds.to_parquet(buf)
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    write_bytes(path, buf.getvalue())
    return len(ds)


def export_prompts(records: Iterable[PreferenceRecord], path: str | os.PathLike) -> int:
    """Write each distinct prompt once (columns ``prompt``, ``prompt_id``) as ``.jsonl`` or ``.parquet``,
    atomically: the prompt data set TRL's GRPOTrainer and RLOOTrainer sample from. Returns the rows."""
    from datasets import Dataset   # here: see to_dataset

    _suffix(path)
    seen: dict[str, str] = {}
    for r in records:
        seen.setdefault(r.prompt_id, r.prompt)
    return _write_dataset(Dataset.from_dict({"prompt": list(seen.values()), "prompt_id": list(seen)}), path)


def _prompt_hash(prompt_id: str, salt: str = "") -> float:
    """A number in [0, 1) from the prompt id, the same on every machine."""
    return int.from_bytes(hashlib.sha256(f"{salt}{prompt_id}".encode()).digest()[:8], "big") / 2**64


def prompt_split(prompt_id: str, val_fraction: float = 0.1, salt: str = "") -> str:
    """"train" or "val" from a hash of the prompt id: stable across runs and machines."""
    return "val" if _prompt_hash(prompt_id, salt) < val_fraction else "train"


def split_by_prompt(records: Iterable[PreferenceRecord], val_fraction: float = 0.1,
                    salt: str = "") -> tuple[list[PreferenceRecord], list[PreferenceRecord]]:
    """(train, val) records; all records (and so all pairs) of one prompt land on the same side,
    so no completion seen in training is scored in validation.

    With ``val_fraction > 0`` and at least two prompts, validation is never empty: when the hash
    leaves no prompt out (a small label file), the prompt with the smallest hash is held out."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    records = list(records)
    train, val = [], []
    for r in records:
        (val if prompt_split(r.prompt_id, val_fraction, salt) == "val" else train).append(r)
    ids = {r.prompt_id for r in records}
    if val_fraction > 0 and not val and len(ids) >= 2:
        held = min(ids, key=lambda i: _prompt_hash(i, salt))
        val = [r for r in records if r.prompt_id == held]
        train = [r for r in records if r.prompt_id != held]
    return train, val
