"""The ranker: an ipywidgets 8 form for ranking K completions, that never loses a label.

InstructGPT's labelers (Ouyang et al. 2022, §3.5 and Appendix B) saw one prompt and its K
outputs and ranked them best to worst. `Ranker` does the same in a notebook:

* the completions carry letters A, B, C, ...; click the best, then the best of the rest,
  ... until all K carry a rank; or, with the form focused, press their letters (or 1..K), and
  Enter to submit (`rlhf_lab.labels.ranker_keys`: the keys never reach JupyterLab's shortcuts);
* **undo** the last click, **reset** the prompt, **skip** it (once the other prompts are done,
  **revisit skipped** brings it back; so does running the cell again), **submit** when all are ranked;
* each submission is appended to a `PreferenceStore` and fsynced *before* the form says
  "saved C > A > D > B"; if saving fails the ranking stays on screen and submit can be
  clicked again;
* **undo submit** takes back the last saved ranking: it appends a retraction (the file stays
  append-only; the latest record per prompt counts, `store.current_records`) and brings the
  prompt back with that ranking on screen, to be corrected and submitted again;
* "labeled so far" lists this labeler's rankings with the best and the worst completion;
* a click that arrives within ``min_seconds`` of a new prompt appearing is ignored: the second
  half of a double click must not rank or save a prompt the person has not seen;
* re-running the cell (say after a kernel restart) resumes: prompts this labeler has
  already ranked in that file are not shown again; where the widget cannot be drawn (a page
  reloaded while the kernel lives on) the cell shows "run this cell again to continue"; a form
  whose kernel is gone (restarted, killed) says so when it is clicked;
* for K = 2 an A/B mode shows the two side by side: one click chooses and saves;
* with a labeling set (`Ranker.from_set`), every student ranks the same completions into
  ``runs/labels/<set id>/<labeler>.jsonl``, and the records carry the set's id for pooling.

All the logic is in plain methods behind the buttons, so tests drive it with
``button.click()``, and `Ranker.rank_with(labeler)` lets a simulated labeler click through
the very same code path (how notebook 02 runs under CI).
"""
from __future__ import annotations

import html
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from rlhf_lab.labels.label_sets import LabelSet, load_label_set
from rlhf_lab.labels.preferences import LabelTask, make_record
from rlhf_lab.labels.ranker_view import SAVED_COLOUR, ERROR_COLOUR, LETTERS, RankerView, letters
from rlhf_lab.labels.store import PreferenceRecord, PreferenceStore, as_utc, current_records


class NotSaved(RuntimeError):
    """Submitting failed (the store could not be written); the ranking is still on screen."""


class Ranker(RankerView):
    """Rank the completions of each task; records go to ``store`` under ``labeler``.

    ``mode``: "rank" (click order), "ab" (K = 2 side by side, a click saves), or "auto"
    ("ab" when every task has K = 2, else "rank"). ``min_seconds``: clicks this soon after a new
    prompt appears are ignored (a double click); `rank_with` clicks with 0.
    """

    def __init__(self, tasks: list[LabelTask], store: PreferenceStore | str | Path, labeler: str,
                 source: str = "human", mode: str = "auto", min_seconds: float = 0.3):
        tasks = list(getattr(tasks, "tasks", tasks))   # a LabelSet, or a list of tasks
        if not tasks:
            raise ValueError("no tasks to rank: sample some with preferences.sample_for_labeling")
        if not labeler or not labeler.strip():
            raise ValueError("give the labeler a name: it is how the store knows what you have ranked")
        ids = [t.prompt_id for t in tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("two tasks share a prompt id; resuming by prompt id needs them unique")
        if source not in ("human", "simulated"):
            raise ValueError(f"source must be 'human' or 'simulated', got {source!r}")
        if mode == "auto":
            mode = "ab" if all(t.k == 2 for t in tasks) else "rank"
        if mode not in ("rank", "ab"):
            raise ValueError(f"mode must be 'rank', 'ab' or 'auto', got {mode!r}")
        if mode == "ab" and any(t.k != 2 for t in tasks):
            raise ValueError("A/B mode needs exactly 2 completions per task")
        set_ids = {t.set_id for t in tasks}
        if len(set_ids) > 1:
            raise ValueError(f"the tasks come from several labeling sets ({sorted(map(str, set_ids))}); rank one at a time")
        self.store = store if isinstance(store, PreferenceStore) else PreferenceStore(store)
        self.labeler, self.source, self.mode, self.min_seconds = labeler.strip(), source, mode, min_seconds
        self.set_id = set_ids.pop()
        log = self.store.read()
        other = {r.set_id for r in log} - {self.set_id}
        if other:
            have = "freshly sampled completions" if other == {None} else f"the labeling set {sorted(map(str, other))[0]}"
            want = f"the set {self.set_id}" if self.set_id else "freshly sampled completions"
            raise ValueError(f"{self.store.path} holds labels of {have}; rank {want} into another file "
                             "(Ranker.from_set puts each set in runs/labels/<set id>/<labeler>.jsonl)")
        self.tasks = {t.prompt_id: t for t in tasks}
        # resume: this labeler's rankings that count, in the order they were made
        self.records = {r.prompt_id: r for r in sorted(current_records(log), key=lambda r: as_utc(r.created_at))
                        if r.labeler == self.labeler and r.prompt_id in self.tasks}
        self.total = len(tasks)
        self.queue = [t for t in tasks if t.prompt_id not in self.records]
        self.skipped: list[LabelTask] = []
        self.saved: list = []
        self.order: list[int] = []
        self.last_error: Exception | None = None   # the last error a button showed
        self.ignored_clicks = 0                     # clicks dropped as the second half of a double click
        self._shown_at = time.perf_counter()
        self._new_prompt_at = float("-inf")         # when a click last brought up a new prompt
        self._build(max(t.k for t in tasks))
        self._show()

    @classmethod
    def from_set(cls, label_set, labeler: str, folder: str | Path | None = None, **kwargs) -> "Ranker":
        """Rank a labeling set (a `LabelSet` or its file) into ``<folder>/<set id>/<labeler>.jsonl``
        (default folder: runs/labels), the file a student hands in for pooling."""
        from rlhf_lab.config import runs_dir   # here: config imports torch; the ranker itself needs none

        if not isinstance(label_set, LabelSet):
            label_set = load_label_set(label_set)
        name = labeler.strip() if labeler else ""
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise ValueError(f"labeler {labeler!r}: give a name without slashes (it becomes the file name)")
        folder = Path(folder) if folder is not None else runs_dir("labels")
        return cls(label_set, folder / label_set.set_id / f"{name}.jsonl", name, **kwargs)

    @property
    def already(self) -> int:
        """Prompts of these tasks that this labeler had ranked before this ranker started."""
        return len(set(self.records) - {r.prompt_id for r in self.saved})

    # ---- layout ----------------------------------------------------------------------------
    def _guard(self, f, debounce: bool = False):
        """Button callbacks print nowhere visible in JupyterLab: show any error in the form. With
        ``debounce``, a click within ``min_seconds`` of a new prompt appearing is dropped."""
        def run(*args):
            if debounce and time.monotonic() - self._new_prompt_at < self.min_seconds:
                self.ignored_clicks += 1
                return
            try:
                f(*args)
            except Exception as err:  # noqa: BLE001 - shown to the person, and kept on the object
                self.last_error = err
                if not isinstance(err, NotSaved):   # submit has already said what went wrong
                    self._say(f"error: {html.escape(str(err))}", ERROR_COLOUR)
        return run

    # ---- state -----------------------------------------------------------------------------
    @property
    def current(self) -> LabelTask | None:
        return self.queue[0] if self.queue else None

    @property
    def labeled(self) -> int:
        return len(self.records)

    @property
    def done(self) -> bool:
        return not self.queue

    # ---- actions (what the buttons and keys call) ------------------------------------------
    def press(self, key: str) -> None:
        """A key pressed in the form: a completion's letter or number ranks it next (in A/B mode
        chooses it), Enter submits, Backspace undoes, R resets, S skips, Z undoes the last submit."""
        task, k = self.current, key.lower()
        n = task.k if task is not None else 0
        if len(k) == 1 and k in LETTERS.lower()[:n]:
            action = lambda: self.pick(LETTERS.lower().index(k))                  # noqa: E731
        elif k.isdigit() and 1 <= int(k) <= n:
            action = lambda: self.pick(int(k) - 1)                                 # noqa: E731
        else:
            action = {"enter": self.submit, "backspace": self.undo, "r": self.reset, "s": self.skip,
                      "z": self.undo_submit}.get(k)
            if self.mode == "ab" and k in ("enter", "backspace", "r"):
                action = None
        if action is None:
            self._say(f"the key {html.escape(key)!r} does nothing here: {html.escape(self.keys.hint.split(': ', 1)[1])}")
            return
        self._guard(action)()


    def pick(self, k: int) -> None:
        """Give completion k the next rank (in A/B mode: choose it and save)."""
        task = self.current
        if task is None or not 0 <= k < task.k:
            raise ValueError(f"no completion {k} to rank here")
        if k in self.order:   # its button is disabled on screen: a late click, not an error
            self._say(f"{LETTERS[k]} is already ranked #{self.order.index(k) + 1} (undo to change it)")
            return
        self.order.append(k)
        if self.mode == "ab":
            self.order.append(1 - k)
            self.submit()
            return
        self._say(f"{len(self.order)} of {task.k} ranked" + (": submit to save" if len(self.order) == task.k else ""))
        self._show()

    def undo(self) -> None:
        if self.order:
            self.order.pop()
        self._say("took back the last click")
        self._show()

    def reset(self) -> None:
        self.order = []
        self._say("cleared")
        self._show()

    def skip(self) -> None:
        if self.current is None:
            return
        self.skipped.append(self.queue.pop(0))
        self.order = []
        self._next_prompt()
        self._say("skipped: once the other prompts are done, 'revisit skipped' brings it back "
                  "(so does running the cell again)")
        self._show()

    def revisit(self) -> None:
        self.queue += self.skipped
        self.skipped = []
        self._next_prompt()
        self._say("the skipped prompts are back in the queue")
        self._show()

    def submit(self):
        """Append the ranking of the current prompt to the store (fsynced), then move on.

        On failure the ranking stays on screen and the error is shown; nothing is lost. A prompt
        this labeler already has in the store (saved by another session since this ranker
        started) is not saved twice. Returns the saved record, or None for such a prompt.
        """
        task = self.current
        if task is None:
            raise ValueError("nothing to submit: every prompt is done")
        if len(self.order) != task.k:
            raise ValueError(f"rank all {task.k} completions first ({len(self.order)} ranked)")
        record = make_record(task, self.order, self.labeler, self.source,
                             seconds=round(time.perf_counter() - self._shown_at, 2))
        try:
            # checked and written under one lock: another ranker (an older cell, a second notebook or
            # process) that saved this prompt meanwhile wins, and it is never saved twice
            saved = self.store.append(record, once_per_prompt=True)
            if saved is None:
                self.queue.pop(0)
                self.order = []
                self._next_prompt()
                self.records[task.prompt_id] = next(r for r in current_records(self.store.read())
                                                    if r.labeler == self.labeler and r.prompt_id == task.prompt_id)
                self._say(f"{html.escape(task.prompt_id)} was already saved by another session: not saved twice")
                self._show()
                return None
            record = saved
        except Exception as err:
            if self.mode == "ab":
                self.order = []
            self._say(f"NOT saved ({html.escape(type(err).__name__)}: {html.escape(str(err))}); "
                      "your ranking is kept, click again to retry", ERROR_COLOUR)
            self._show()
            raise NotSaved(f"not saved: {type(err).__name__}: {err}") from err
        from rlhf_lab.config import short_path   # here: config imports torch; the ranker itself needs none

        self.saved.append(record)
        self.records[task.prompt_id] = record
        self.queue.pop(0)
        self.order = []
        self._next_prompt()
        self._say(f"&#10003; saved {html.escape(letters(record.ranking))} ({self.labeled} / {self.total}) to "
                  f"{html.escape(short_path(self.store.path))}", SAVED_COLOUR)
        self._show()
        return record

    def undo_submit(self) -> PreferenceRecord:
        """Take back this labeler's last saved ranking: append a retraction (nothing is rewritten)
        and bring its prompt back first in the queue, with that ranking on screen to correct."""
        if not self.records:
            raise ValueError("nothing submitted to undo")
        last = list(self.records.values())[-1]
        retraction = PreferenceRecord(**{**last.model_dump(), "record_id": uuid.uuid4().hex, "retracted": True,
                                         "created_at": datetime.now(timezone.utc), "seconds": None})
        try:
            self.store.append(retraction)
        except Exception as err:
            self._say(f"NOT taken back ({html.escape(type(err).__name__)}: {html.escape(str(err))})",
                      ERROR_COLOUR)
            raise NotSaved(f"not taken back: {type(err).__name__}: {err}") from err
        del self.records[last.prompt_id]
        task = self.tasks[last.prompt_id]
        self.skipped = [t for t in self.skipped if t is not task]
        self.queue = [task] + [t for t in self.queue if t is not task]
        self.order = list(last.ranking)
        self._next_prompt()
        self._say(f"took back {html.escape(last.prompt_id)} ({html.escape(letters(last.ranking))}): correct it and submit again")
        self._show()
        return retraction

    def _next_prompt(self) -> None:
        """A new prompt is on screen: time it, and drop clicks that follow too closely."""
        self._shown_at = time.perf_counter()
        self._new_prompt_at = time.monotonic()

    # ---- driving it from Python ------------------------------------------------------------
    def rank_with(self, labeler, limit: int | None = None) -> list:
        """Let a simulated labeler (anything with ``rank(task) -> ranking``) click through the
        remaining prompts, through the same buttons a person uses. Returns the saved records."""
        saved_before, min_seconds = len(self.saved), self.min_seconds
        self.min_seconds = 0.0               # a program clicks at once, on purpose
        try:
            self._rank_with(labeler, limit, saved_before)
        finally:
            self.min_seconds = min_seconds
        return self.saved[saved_before:]

    def _rank_with(self, labeler, limit, saved_before) -> None:
        while self.current is not None and (limit is None or len(self.saved) - saved_before < limit):
            n, head = len(self.saved), self.current
            self.last_error = None
            ranking = labeler.rank(head)
            if self.mode == "ab":
                self.buttons[ranking[0]].click()
            else:
                for k in ranking:
                    self.buttons[k].click()
                self.submit_button.click()
            if self.last_error is not None or (len(self.saved) == n and self.current is head):
                raise RuntimeError(f"the ranker did not save {head.prompt_id}: {self.last_error}")
