"""A class's labels pooled into one data set, and how much the labelers agree.

Students rank one labeling set (`rlhf_lab.labels.label_sets`) and hand in their label files.
`pool_labels` reads them all, checks that they belong together, and keeps the rankings that
count: one per (labeler, prompt), the latest (`store.current_records`). Files from different
sets, prompts that are not in the set, and completions that differ from the set's (or, without
a set, from another file's for the same prompt) are refused with the file, labeler and prompt.

`agreement_report` measures what InstructGPT measured about its labelers (Ouyang et al. 2022,
§3.4): for each labeler, the share of comparisons ordered the same way as each other labeler
who ranked the same prompts, averaged over those labelers (mean ± standard error); the class's
agreement is the mean over labelers ± its standard error (InstructGPT: 72.6 ± 1.5% among its
training labelers). It also gives Kendall's tau between every two labelers, and flags labelers
far from the rest: agreement more than ``max(2 sd, 0.05)`` below the others' own agreement with
each other (computed without the labeler in question, so one outlier does not hide itself by
pulling the others down).

`consensus` is the pooled ranking of each prompt: a Bradley-Terry fit (Bradley & Terry 1952)
to all labelers' C(K, 2) pairs of that prompt, one strength per completion, ordered best first
(`aggregation.bradley_terry_groups`, every prompt in one fit).
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlhf_lab.labels.aggregation import agreement_matrix, bradley_terry_groups, kendall_tau
from rlhf_lab.labels.label_sets import LabelSet, load_label_set
from rlhf_lab.labels.store import (PreferenceFileError, PreferenceRecord, PreferenceStore, current_records,
                                   ranking_to_pairs)
from rlhf_lab.utils.artefacts import write_text


class PoolError(ValueError):
    """Label files that cannot be pooled; the message names the file, labeler and prompt."""


@dataclass
class Pool:
    """The rankings that count across a class's files, and where they came from."""

    records: list[PreferenceRecord]
    files: list[Path]
    set_id: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def labelers(self) -> list[str]:
        return sorted({r.labeler for r in self.records})

    @property
    def prompt_ids(self) -> list[str]:
        return sorted({r.prompt_id for r in self.records})

    def __repr__(self) -> str:
        return (f"Pool({len(self.records)} rankings of {len(self.prompt_ids)} prompts by {len(self.labelers)} "
                f"labelers from {len(self.files)} files, set {self.set_id})")


def label_files(sources) -> list[Path]:
    """The .jsonl files of a folder (sorted), a file, or a list of either."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files = []
    for s in map(Path, sources):
        if s.is_dir():
            found = sorted(p for p in s.glob("*.jsonl") if p.is_file())
            if not found:
                raise PoolError(f"{s} holds no .jsonl label files")
            files += found
        elif s.is_file():
            files.append(s)
        else:
            raise PoolError(f"{s} not found (give a folder of label files or the files themselves)")
    if len(set(files)) != len(files):
        raise PoolError("a label file is listed twice")
    return files


def _read(path: Path) -> list[PreferenceRecord]:
    head = path.open("rb").readline(4096)
    if b'"rlhf-lab/label-set"' in head:
        raise PoolError(f"{path} is a labeling set (the completions to rank), not a label file: pass it as the set")
    try:
        return PreferenceStore(path).read()
    except PreferenceFileError as err:
        raise PoolError(str(err)) from None


def pool_labels(sources, label_set=None) -> Pool:
    """Read, check and pool label files (see the module docstring). ``label_set``: a `LabelSet` or
    the path of its file; every record must then come from it, prompt by prompt."""
    files = label_files(sources)
    if label_set is not None and not isinstance(label_set, LabelSet):
        label_set = load_label_set(label_set)
    logs = [(path, _read(path)) for path in files]
    where = {id(r): path for path, records in logs for r in records}
    every = [r for _, records in logs for r in records]
    if not every:
        raise PoolError(f"no rankings in {', '.join(map(str, files))}")

    sets = defaultdict(list)
    for path, records in logs:
        for s in {r.set_id for r in records}:
            sets[s or "(none: freshly sampled completions)"].append(path.name)
    if label_set is not None and set(sets) != {label_set.set_id}:
        other = {s: f for s, f in sets.items() if s != label_set.set_id}
        raise PoolError(f"records from another labeling set than {label_set.set_id}: "
                        + "; ".join(f"set {s} in {', '.join(f)}" for s, f in other.items()))
    if len(sets) > 1:
        raise PoolError("these files come from different labeling sets, which cannot be pooled: "
                        + "; ".join(f"set {s} in {', '.join(f)}" for s, f in sets.items()))

    expected = {t.prompt_id: list(t.completions) for t in label_set.tasks} if label_set is not None else {}
    first = {}
    for r in every:
        if r.prompt_id not in expected:
            if label_set is not None:
                raise PoolError(f"{where[id(r)]}: labeler {r.labeler!r} ranked prompt {r.prompt_id!r}, "
                                f"which is not in the set {label_set.set_id}")
            expected[r.prompt_id], first[r.prompt_id] = r.completions, where[id(r)]
        elif r.completions != expected[r.prompt_id]:
            other = first.get(r.prompt_id, f"the set {label_set.set_id if label_set is not None else ''}")
            raise PoolError(f"{where[id(r)]}: labeler {r.labeler!r}, prompt {r.prompt_id!r}: the completions differ "
                            f"from those in {other}; only rankings of the same completions can be pooled")

    notes = []
    files_of = defaultdict(set)
    for r in every:
        files_of[r.labeler].add(where[id(r)].name)
    for name, names in sorted(files_of.items()):
        if len(names) > 1:
            notes.append(f"labeler {name!r} appears in {len(names)} files ({', '.join(sorted(names))}): "
                         "one person, or two with the same name? Their latest ranking per prompt counts")
    return Pool(current_records(every), files, every[0].set_id, notes)


def write_pool(records, path: str | os.PathLike, inputs=()) -> Path:
    """Write records as one label file (atomically), never over one of its ``inputs``."""
    path = Path(path)
    if any(path.resolve() == Path(p).resolve() for p in inputs):
        raise ValueError(f"{path} is one of the files being pooled; write the pool to another file")
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: a label file is a .jsonl file")
    return write_text(path, "".join(r.model_dump_json() + "\n" for r in records))


# ---- agreement ----------------------------------------------------------------------------

@dataclass
class AgreementReport:
    """Agreement between labelers who ranked the same prompts (InstructGPT §3.4)."""

    labelers: list[str]
    n_prompts: dict[str, int]
    pairwise: np.ndarray
    """(L, L) share of comparisons two labelers order alike, over the prompts both ranked (NaN: none)."""
    tau: np.ndarray
    """(L, L) mean Kendall tau over the prompts both ranked."""
    agreement: dict[str, tuple[float, float]]
    """Each labeler's agreement with the others: (mean over the other labelers, standard error)."""
    pooled: tuple[float, float]
    """The class: mean of the labelers' agreements, and its standard error over labelers (NaN for two)."""
    outliers: list[str]

    def table(self) -> str:
        """One row per labeler: prompts ranked, mean Kendall tau with the others, agreement (mean ± s.e.)."""
        def pct(mean: float, se: float) -> str:
            return f"{100 * mean:5.1f}%" + ("" if math.isnan(se) else f" ± {100 * se:.1f}%")

        rows = [f"{'labeler':16s} {'prompts':>7s}  {'mean tau':>11s}  agreement with the others"]
        for i, name in enumerate(self.labelers):
            flag = "  <- far from the rest" if name in self.outliers else ""
            tau = np.nanmean([self.tau[i, j] for j in range(len(self.labelers)) if j != i])
            rows.append(f"{name:16s} {self.n_prompts[name]:7d}  {tau:+11.2f}  {pct(*self.agreement[name])}{flag}")
        n = len(self.labelers)
        rows.append(f"{'class':16s} {'':7s}  {'':11s}  {pct(*self.pooled)} over {n} labelers"
                    + (" (one pair: no standard error)" if n == 2 else ""))
        # its own row: one long line would wrap mid-word in a notebook's output
        rows.append(f"{'InstructGPT':16s} {'':7s}  {'':11s}   72.6% ± 1.5% (its training labelers, §3.4)")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


def _se(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def agreement_report(records) -> AgreementReport:
    """Per-labeler and pooled agreement, Kendall tau between labelers, and labelers far from the rest."""
    records = current_records(records)
    n_prompts = Counter(r.labeler for r in records)
    if len(n_prompts) < 2:
        raise ValueError(f"agreement needs at least two labelers who ranked the same prompts; found {sorted(n_prompts)}")
    names, pairwise, tau = agreement_matrix(records)
    L = len(names)
    off = ~np.eye(L, dtype=bool)

    def mean_with_others(i: int, without: int | None = None) -> float:
        row = [pairwise[i, j] for j in range(L) if j != i and j != without and not math.isnan(pairwise[i, j])]
        return float(np.mean(row)) if row else float("nan")

    per = {n: (mean_with_others(i), _se(pairwise[i, off[i]])) for i, n in enumerate(names)}
    means = [m for m, _ in per.values()]
    outliers = []
    if L >= 3:
        for i, n in enumerate(names):
            rest = [mean_with_others(j, without=i) for j in range(L) if j != i]
            rest = [x for x in rest if not math.isnan(x)]
            if len(rest) >= 2 and per[n][0] < np.mean(rest) - max(2 * np.std(rest, ddof=1), 0.05):
                outliers.append(n)
    pooled_se = _se(means) if L > 2 else float("nan")   # two labelers share one agreement: no spread to measure
    return AgreementReport(names, {n: n_prompts[n] for n in names}, pairwise, tau, per,
                           (float(np.nanmean(means)), pooled_se), outliers)


# ---- the pooled ranking -------------------------------------------------------------------

def consensus(records, labeler: str = "pooled") -> list[PreferenceRecord]:
    """One pooled ranking per prompt: Bradley-Terry over every labeler's pairs of that prompt
    (equal strengths keep the completions' order). The records name ``labeler`` and keep the
    prompt, completions, gold scores and set id."""
    by_prompt = defaultdict(list)
    for r in current_records(records):
        by_prompt[r.prompt_id].append(r)
    if not by_prompt:
        return []
    ids = list(by_prompt)
    k_max = max(len(by_prompt[p][0].completions) for p in ids)
    wins = torch.zeros(len(ids), k_max, k_max)
    for g, p in enumerate(ids):
        for r in by_prompt[p]:
            for w, l in ranking_to_pairs(r.ranking):
                wins[g, w, l] += 1
    theta = bradley_terry_groups(wins)
    out = []
    for g, p in enumerate(ids):
        first = by_prompt[p][0]
        k = len(first.completions)
        order = sorted(range(k), key=lambda i: (-round(float(theta[g, i]), 9), i))
        source = "human" if all(r.source == "human" for r in by_prompt[p]) else "simulated"
        out.append(PreferenceRecord(prompt_id=p, prompt=first.prompt, completions=first.completions, ranking=order,
                                    labeler=labeler, source=source, model=first.model, gold=first.gold,
                                    set_id=first.set_id))
    return out


def agreement_with(records, reference) -> dict[str, float]:
    """Each labeler's mean Kendall tau with ``reference`` rankings (e.g. the consensus), per prompt."""
    ref = {r.prompt_id: r.ranking for r in reference}
    taus = defaultdict(list)
    for r in current_records(records):
        if r.prompt_id in ref:
            taus[r.labeler].append(kendall_tau(ref[r.prompt_id], r.ranking))
    return {n: float(np.mean(t)) for n, t in sorted(taus.items())}
