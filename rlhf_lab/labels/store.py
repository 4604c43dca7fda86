"""Preference records and the append-only JSONL store that never loses one.

A record is one submitted ranking of the K completions of one prompt (InstructGPT, Ouyang
et al. 2022, §3.5: labelers rank K = 4 to 9 outputs). It is validated with pydantic v2 when
written and again when read. The store follows three rules:

1. **one line per submission, one write**: the whole line is encoded first and handed to a
   single ``os.write`` on a file opened with O_APPEND, so a line is never split in two;
2. **fsync before "saved"**: `PreferenceStore.append` returns only after ``os.fsync``;
3. **a file lock** (``filelock.FileLock`` on ``<file>.lock``) around every append, so two
   notebooks (or eight processes) writing to one file never interleave.

Reading is strict: a torn last line (a crash mid-write: no newline, or garbage at the end)
is reported with a warning and skipped, and any other malformed line is an error naming the
file, the line number and the problem. Nothing already written is rewritten, except that the
next append moves such a torn last line to ``<file>.torn`` first (a valid last record that
only lacks its newline, say after an editor stripped it, is kept and completed). A UTF-8 byte
order mark at the start (some editors add one) is accepted.

The file is a log: a labeler who corrects a ranking appends a new record, and "undo submit"
appends a retraction (``retracted=True``). `current_records` reads the log as the labels that
count, the latest record per (labeler, prompt), and every reader of labels goes through it.
"""
from __future__ import annotations

import os
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

SCHEMA_VERSION = 1
MIN_K, MAX_K = 2, 9   # InstructGPT §3.5 shows labelers 4 to 9 completions; A/B is K = 2


class PreferenceFileError(ValueError):
    """A line of a preference file is not a valid record; the message names file and line."""


# ---- records -----------------------------------------------------------------------------

class PreferenceRecord(BaseModel):
    """One submitted ranking of the K completions of one prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)
    prompt_id: str = Field(min_length=1)
    prompt: str
    completions: list[str] = Field(min_length=MIN_K, max_length=MAX_K)
    ranking: list[StrictInt]
    """Indices into `completions`, best first: a permutation of 0..K-1."""
    labeler: str = Field(min_length=1)
    source: Literal["human", "simulated"]
    model: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    gold: list[float] | None = None
    """The world's gold r*(x, y_k) of each completion, kept so later notebooks can compare."""
    seconds: float | None = None
    """Time the labeler spent on this prompt (humans), None for simulated labelers."""
    set_id: str | None = None
    """The labeling set the completions came from (`rlhf_lab.labels.label_sets`), None for freshly sampled ones."""
    retracted: bool = False
    """True for an "undo submit": this labeler's earlier ranking of this prompt no longer counts."""

    @model_validator(mode="after")
    def _check_ranking(self) -> "PreferenceRecord":
        k = len(self.completions)
        problem = ranking_problem(self.ranking, k)
        if problem:
            raise ValueError(problem)
        seen: dict[str, int] = {}
        for i, text in enumerate(self.completions):
            if text.strip() in seen:
                raise ValueError(f"completions {seen[text.strip()]} and {i} are identical; "
                                 "a pair of equal texts carries no preference")
            seen[text.strip()] = i
        if self.gold is not None and len(self.gold) != k:
            raise ValueError(f"gold has {len(self.gold)} scores but there are K={k} completions")
        return self

    @property
    def k(self) -> int:
        return len(self.completions)


def ranking_problem(ranking: list[int], k: int) -> str | None:
    """What is wrong with ``ranking`` as a best-to-worst order of K items, or None."""
    if len(ranking) != k:
        return (f"ranking {list(ranking)} has {len(ranking)} entries but there are K={k} completions: "
                f"rank every completion once, best first")
    bad = [i for i in ranking if not 0 <= i < k]
    if bad:
        return f"ranking {list(ranking)}: index {bad[0]} is out of range for K={k} (valid: 0..{k - 1})"
    twice = sorted({i for i in ranking if list(ranking).count(i) > 1})
    if twice:
        missing = sorted(set(range(k)) - set(ranking))
        return (f"ranking {list(ranking)} is not a permutation of 0..{k - 1}: {twice} appear more than "
                f"once and {missing} are missing (ties are not allowed)")
    return None


def _describe(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in err.errors())


# ---- the store ---------------------------------------------------------------------------

class PreferenceStore:
    """An append-only JSONL file of `PreferenceRecord`s, safe for several writers.

    Each submission is one line written by one ``os.write`` while holding
    ``FileLock(<file>.lock)``, then fsynced: when `append` returns, the record is on disk,
    and two notebooks appending to one file never interleave. Nothing written is ever
    rewritten. A crash mid-write can leave a torn last line (no newline); `read` warns and
    skips it, and the next `append` moves its bytes to ``<file>.torn`` before writing.
    """

    def __init__(self, path: str | os.PathLike, lock_timeout: float = 30.0):
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"PreferenceStore({str(self.path)!r})"

    def _lock(self) -> FileLock:
        return FileLock(str(self.lock_path), timeout=self.lock_timeout)

    def append(self, record: PreferenceRecord | dict, once_per_prompt: bool = False) -> PreferenceRecord | None:
        """Validate, write and fsync one record; returns it as stored. With ``once_per_prompt``,
        a ranking whose (labeler, prompt id) already counts in the file is not written and None is
        returned (a retraction always is): the check and the write happen under one lock, so two processes of one labeler
        submitting the same prompt at once save it exactly once."""
        out = self.extend([record], once_per_prompt=once_per_prompt)
        return out[0] if out else None

    def extend(self, records: Iterable[PreferenceRecord | dict],
               once_per_prompt: bool = False) -> list[PreferenceRecord]:
        """Append records in one write and one fsync (each still one line). Returns those written
        (with ``once_per_prompt``, records of an already labeled (labeler, prompt) are left out)."""
        lines, out = [], []
        for r in records:
            data = r.model_dump() if isinstance(r, BaseModel) else r
            rec = PreferenceRecord.model_validate(data)   # validated on write
            line = rec.model_dump_json() + "\n"
            PreferenceRecord.model_validate_json(line)    # and it reads back
            lines.append(line)
            out.append(rec)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    self._repair_tail(fd)
                    if once_per_prompt:   # checked under the same lock as the write
                        done = {(r.labeler, r.prompt_id) for r in current_records(parse_records(_read_fd(fd), self.path))}
                        keep = []
                        for i, r in enumerate(out):
                            if r.retracted or (r.labeler, r.prompt_id) not in done:
                                done.add((r.labeler, r.prompt_id))
                                keep.append(i)
                        lines, out = [lines[i] for i in keep], [out[i] for i in keep]
                    payload = "".join(lines).encode("utf-8")   # encoded before the one write
                    view = memoryview(payload)
                    while view:                           # one write; loop only on a short write
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except Timeout:
            raise TimeoutError(f"{self.lock_path} stayed locked for {self.lock_timeout} s: another "
                               "process is writing to this file (or died holding the lock file open)") from None
        return out

    def _repair_tail(self, fd: int) -> None:
        """Make the file end in a complete, valid line before appending, so that what `read`
        tolerates at the end (a torn write) never becomes a bad line in the middle:

        * a last line without a newline that is a valid record (an editor stripped the newline)
          is kept and gets its newline;
        * a last line that is not valid JSON (a writer died mid-line: no newline, or NUL bytes
          and a newline after a crash) is moved to ``<file>.torn`` and cut off.
        """
        size = os.fstat(fd).st_size
        if size == 0:
            return
        complete = os.pread(fd, 1, size - 1) == b"\n"
        end = size - 1 if complete else size              # the last line is [start, end)
        start = end
        while start > 0:                                  # find the newline before it, 64 KiB at a time
            lo = max(0, start - 65536)
            nl = os.pread(fd, start - lo, lo).rfind(b"\n")
            if nl >= 0:
                start = lo + nl + 1
                break
            start = lo
        line = os.pread(fd, end - start, start)
        state = _line_state(line[len(BOM):] if start == 0 and line.startswith(BOM) else line)
        if state == "valid" and not complete:
            os.write(fd, b"\n")
            return
        if state != "torn":
            return                                        # a valid line, or an invalid record `read` reports
        with open(f"{self.path}.torn", "ab") as torn:
            torn.write(line + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        os.ftruncate(fd, start)
        warnings.warn(f"{self.path}: an interrupted write had left {len(line)} bytes of a broken last line; "
                      f"they were moved to {self.path}.torn", stacklevel=5)

    def read(self) -> list[PreferenceRecord]:
        """All records in file order. A torn last line warns and is skipped; any other bad line
        raises `PreferenceFileError` naming the file and line number."""
        if not self.path.exists():
            return []
        if self.path.is_dir():
            raise PreferenceFileError(f"{self.path} is a folder, not a preference file (a .jsonl file such as "
                                      f"runs/labels/<name>.jsonl)")
        if self.lock_path.exists():       # someone writes here: read between two appends
            with self._lock():
                data = self.path.read_bytes()
        else:                             # a shipped, read-only file: no lock file created in data/
            data = self.path.read_bytes()
        return parse_records(data, self.path)

    def __iter__(self):
        return iter(self.read())

    def __len__(self) -> int:
        return len(self.read())

    def labeled_prompt_ids(self, labeler: str) -> set[str]:
        """Prompt ids this labeler's ranking currently counts for in this file (what a resumed ranker
        skips): the latest record per prompt wins, and a retracted one leaves the prompt unlabeled."""
        return {r.prompt_id for r in current_records(self.read()) if r.labeler == labeler}


BOM = b"\xef\xbb\xbf"


def _read_fd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _line_state(raw: bytes) -> str:
    """"valid" (a record), "torn" (not JSON: a broken write) or "invalid" (JSON, not a record)."""
    if not raw.strip():
        return "valid"
    try:
        PreferenceRecord.model_validate_json(raw)
        return "valid"
    except ValidationError as err:
        return "torn" if any(e["type"] == "json_invalid" for e in err.errors()) else "invalid"


def parse_records(data: bytes, path: str | os.PathLike = "<bytes>") -> list[PreferenceRecord]:
    """Parse JSONL bytes into records (see `PreferenceStore.read` for the rules)."""
    if data.startswith(BOM):              # a byte order mark some editors write: not part of the record
        data = data[len(BOM):]
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        lines.pop()                       # the empty string after the final newline
    records = []
    for n, raw in enumerate(lines, 1):
        last = n == len(lines)
        if not raw.strip():
            continue
        if last and not complete:         # a write that was interrupted, or a newline an editor removed
            if _line_state(raw) == "valid":
                records.append(PreferenceRecord.model_validate_json(raw))
                continue
            warnings.warn(f"{path}: line {n} is incomplete (no newline at the end of the file: a write "
                          "was interrupted); skipped. Every earlier record is intact.", stacklevel=3)
            continue
        try:
            records.append(PreferenceRecord.model_validate_json(raw))
        except ValidationError as err:
            if any(e["type"] == "json_invalid" for e in err.errors()):
                if last:                  # garbage after a crash (e.g. NUL bytes): same as torn
                    warnings.warn(f"{path}: line {n}, the last line, is not valid JSON; skipped as a torn "
                                  "write. Every earlier record is intact.", stacklevel=3)
                    continue
                raise PreferenceFileError(f"{path}, line {n}: not valid JSON ({err.errors()[0]['msg']}); "
                                          "the file was edited or damaged: fix or delete that line") from None
            raise PreferenceFileError(f"{path}, line {n}: invalid record: {_describe(err)}") from None
    return records


def ranking_to_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """The C(K, 2) (winner, loser) index pairs of a best-to-worst ranking.

    [2, 0, 1] -> [(2, 0), (2, 1), (0, 1)]: every completion beats all that come after it.
    """
    return [(ranking[i], ranking[j]) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]


def as_utc(t: datetime) -> datetime:
    """A timestamp as an aware UTC time; a naive one (a hand-edited line without a zone) is read as UTC."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def current_records(records: Iterable[PreferenceRecord]) -> list[PreferenceRecord]:
    """The rankings that count: one per (labeler, prompt id), the latest submission, and none where
    the latest is a retraction ("undo submit").

    "Latest" is by ``created_at``, with naive timestamps read as UTC so that hand-edited lines with
    and without a time zone compare; equal times go to the record read later (file order, and the
    order of the files for records read from several). The result keeps the winners' reading order.
    """
    records = list(records)
    latest: dict[tuple[str, str], tuple[datetime, int]] = {}
    for i, r in enumerate(records):
        key, stamp = (r.labeler, r.prompt_id), (as_utc(r.created_at), i)
        if key not in latest or stamp >= latest[key]:
            latest[key] = stamp
    keep = sorted(i for _, i in latest.values())
    return [records[i] for i in keep if not records[i].retracted]
