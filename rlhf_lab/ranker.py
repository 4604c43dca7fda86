"""The ranker: an ipywidgets 8 form for ranking K completions, that never loses a label.

InstructGPT's labelers (Ouyang et al. 2022, §3.5 and Appendix B) saw one prompt and its K
outputs and ranked them best to worst. `Ranker` does the same in a notebook:

* click the best completion, then the best of the rest, ... until all K carry a rank;
* **undo** the last click, **reset** the prompt, **skip** it (it is offered again at the
  end, or the next time the cell runs), **submit** when all are ranked;
* each submission is appended to a `PreferenceStore` and fsynced *before* the form says
  "saved"; if saving fails the ranking stays on screen and submit can be clicked again;
* re-running the cell (say after a kernel restart) resumes: prompts this labeler has
  already ranked in that file are not shown again;
* for K = 2 an A/B mode shows the two side by side: one click chooses and saves.

All the logic is in plain methods behind the buttons, so tests drive it with
``button.click()``, and `Ranker.rank_with(labeler)` lets a simulated labeler click through
the very same code path (how notebook 02 runs under CI).
"""
from __future__ import annotations

import html
import time
from pathlib import Path

import ipywidgets as W

from .preferences import LabelTask, PreferenceStore, make_record

class NotSaved(RuntimeError):
    """Submitting failed (the store could not be written); the ranking is still on screen."""


_TEXT_STYLE = ("box-sizing: border-box; white-space: pre-wrap; line-height: 1.45; padding: 6px 10px; border-radius: 6px; "
               "border: 1px solid {border}; background: {background}; width: 100%;")


class Ranker:
    """Rank the completions of each task; records go to ``store`` under ``labeler``.

    ``mode``: "rank" (click order), "ab" (K = 2 side by side, a click saves), or "auto"
    ("ab" when every task has K = 2, else "rank").
    """

    def __init__(self, tasks: list[LabelTask], store: PreferenceStore | str | Path, labeler: str,
                 source: str = "human", mode: str = "auto"):
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
        self.store = store if isinstance(store, PreferenceStore) else PreferenceStore(store)
        self.labeler, self.source, self.mode = labeler.strip(), source, mode
        done = self.store.labeled_prompt_ids(self.labeler)        # resume: skip what is saved
        self.total = len(tasks)
        self.already = sum(t.prompt_id in done for t in tasks)
        self.queue = [t for t in tasks if t.prompt_id not in done]
        self.skipped: list[LabelTask] = []
        self.saved: list = []
        self.order: list[int] = []
        self.last_error: Exception | None = None   # the last error a button showed
        self._shown_at = time.perf_counter()
        self._build(max(t.k for t in tasks))
        self._show()

    # ---- layout ----------------------------------------------------------------------------
    def _build(self, k_max: int) -> None:
        self.title = W.HTML()
        self.progress = W.IntProgress(min=0, max=self.total, layout=W.Layout(width="50%"))
        self.counter = W.Label()
        self.prompt_box = W.HTML()
        self.buttons, self.texts, self.rows = [], [], []
        for k in range(k_max):
            button = W.Button(layout=W.Layout(flex="0 0 120px", width="120px", height="auto", min_height="36px"))
            button.add_class(f"rlhf-rank-{k}")
            button.on_click(self._guard(lambda _, k=k: self.pick(k)))
            text = W.HTML(layout=W.Layout(flex="1 1 auto", width="auto", min_width="0"))
            self.buttons.append(button)
            self.texts.append(text)
            if self.mode == "ab":
                self.rows.append(W.VBox([text, button], layout=W.Layout(width="50%", padding="0 6px")))
            else:
                self.rows.append(W.HBox([button, text], layout=W.Layout(align_items="center", margin="3px 0")))
        self.undo_button = W.Button(description="undo", icon="undo", tooltip="take back the last click")
        self.reset_button = W.Button(description="reset", icon="refresh", tooltip="clear this prompt's ranking")
        self.skip_button = W.Button(description="skip", icon="forward", tooltip="come back to this prompt later")
        self.submit_button = W.Button(description="submit", icon="check", button_style="primary",
                                      tooltip="save this ranking")
        self.revisit_button = W.Button(description="revisit skipped", icon="backward")
        for b, f in ((self.undo_button, self.undo), (self.reset_button, self.reset), (self.skip_button, self.skip),
                     (self.submit_button, self.submit), (self.revisit_button, self.revisit)):
            b.add_class(f"rlhf-{b.description.split()[0]}")
            b.on_click(self._guard(lambda _, f=f: f()))
        self.status = W.HTML()
        controls = [self.skip_button, self.revisit_button] if self.mode == "ab" else \
            [self.undo_button, self.reset_button, self.skip_button, self.submit_button, self.revisit_button]
        body = W.HBox(self.rows) if self.mode == "ab" else W.VBox(self.rows)
        self.widget = W.VBox([self.title, W.HBox([self.progress, self.counter]), self.prompt_box, body,
                              W.HBox(controls), self.status],
                             layout=W.Layout(border="1px solid #ddd", padding="10px", max_width="900px"))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _guard(self, f):
        """Button callbacks print nowhere visible in JupyterLab: show any error in the form."""
        def run(*args):
            try:
                f(*args)
            except Exception as err:  # noqa: BLE001 - shown to the person, and kept on the object
                self.last_error = err
                if not isinstance(err, NotSaved):   # submit has already said what went wrong
                    self._say(f"error: {html.escape(str(err))}", "#b00020")
        return run

    def _say(self, message: str, color: str = "#555") -> None:
        self.status.value = f"<span style='color:{color}'>{message}</span>"

    # ---- state -----------------------------------------------------------------------------
    @property
    def current(self) -> LabelTask | None:
        return self.queue[0] if self.queue else None

    @property
    def labeled(self) -> int:
        return self.already + len(self.saved)

    @property
    def done(self) -> bool:
        return not self.queue

    def _show(self) -> None:
        """Redraw everything from (queue, order, saved)."""
        task = self.current
        self.progress.value = self.labeled
        self.counter.value = f"  {self.labeled} / {self.total} labeled" + \
            (f", {len(self.skipped)} skipped" if self.skipped else "")
        self.revisit_button.layout.display = None if (self.skipped and task is None) else "none"
        if task is None:
            self.prompt_box.value = ""
            for row in self.rows:
                row.layout.display = "none"
            for b in (self.undo_button, self.reset_button, self.skip_button, self.submit_button):
                b.disabled = True
            left = f" {len(self.skipped)} skipped prompts remain: revisit them now or next time." if self.skipped else ""
            self.title.value = f"<b>No prompts left to rank in this session.</b>{left}"
            return
        how = ("Which review is better? One click saves it." if self.mode == "ab" else
               "Click the <b>best</b> completion, then the best of the rest, until all are ranked; then submit.")
        self.title.value = f"<b>Labeler {html.escape(self.labeler)}</b> &middot; {how}"
        self.prompt_box.value = (f"<div style='margin:6px 0'><span style='color:#777'>prompt {html.escape(task.prompt_id)}"
                                 f"</span><div style='{_TEXT_STYLE.format(border='#bbb', background='#f4f4f4')}'>"
                                 f"{html.escape(task.prompt.text)}</div></div>")
        for k, (row, button, text) in enumerate(zip(self.rows, self.buttons, self.texts)):
            row.layout.display = None if k < task.k else "none"
            if k >= task.k:
                continue
            ranked = k in self.order
            if self.mode == "ab":
                button.description = f"{'AB'[k]} is better"
            else:
                button.description = f"#{self.order.index(k) + 1}" if ranked else f"pick as #{len(self.order) + 1}"
            button.button_style = "success" if ranked else ""
            button.disabled = ranked
            style = _TEXT_STYLE.format(border="#2e7d32" if ranked else "#ddd", background="#eef7ee" if ranked else "#fff")
            label = f"<b>{'AB'[k]}</b> " if self.mode == "ab" else ""
            text.value = f"<div style='{style}'>{label}{html.escape(task.completions[k].strip())}</div>"
        complete = len(self.order) == task.k
        self.submit_button.disabled = not complete
        self.undo_button.disabled = self.reset_button.disabled = not self.order
        self.skip_button.disabled = False

    # ---- actions (what the buttons call) ---------------------------------------------------
    def pick(self, k: int) -> None:
        """Give completion k the next rank (in A/B mode: choose it and save)."""
        task = self.current
        if task is None or not 0 <= k < task.k:
            raise ValueError(f"no completion {k} to rank here")
        if k in self.order:
            raise ValueError(f"completion {k} is already ranked #{self.order.index(k) + 1}; undo first")
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
        self._shown_at = time.perf_counter()
        self._say("skipped: it comes back at the end (or next time you run the cell)")
        self._show()

    def revisit(self) -> None:
        self.queue += self.skipped
        self.skipped = []
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
                self.order, self.already = [], self.already + 1
                self._say(f"{html.escape(task.prompt_id)} was already saved by another session: not saved twice")
                self._show()
                return None
            record = saved
        except Exception as err:
            if self.mode == "ab":
                self.order = []
            self._say(f"NOT saved ({html.escape(type(err).__name__)}: {html.escape(str(err))}); "
                      "your ranking is kept, click again to retry", "#b00020")
            self._show()
            raise NotSaved(f"not saved: {type(err).__name__}: {err}") from err
        self.saved.append(record)
        self.queue.pop(0)
        self.order = []
        self._shown_at = time.perf_counter()
        self._say(f"&#10003; saved ({self.labeled} / {self.total}) to {html.escape(str(self.store.path))}", "#2e7d32")
        self._show()
        return record

    # ---- driving it from Python ------------------------------------------------------------
    def rank_with(self, labeler, limit: int | None = None) -> list:
        """Let a simulated labeler (anything with ``rank(task) -> ranking``) click through the
        remaining prompts, through the same buttons a person uses. Returns the saved records."""
        saved_before = len(self.saved)
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
        return self.saved[saved_before:]


def records_html(records, max_rows: int = 8, width: int = 60) -> str:
    """An HTML table of records (prompt, labeler, ranking, best and worst completion, seconds)."""
    def cut(text: str) -> str:
        text = " ".join(text.split())
        return html.escape(text if len(text) <= width else text[:width - 1] + "\u2026")

    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                   ("prompt id", "prompt", "labeler", "ranking", "best", "worst", "s"))
    rows = []
    for r in list(records)[:max_rows]:
        cells = (html.escape(r.prompt_id), cut(r.prompt), html.escape(r.labeler), str(r.ranking),
                 cut(r.completions[r.ranking[0]]), cut(r.completions[r.ranking[-1]]),
                 "" if r.seconds is None else f"{r.seconds:.1f}")
        rows.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
    more = f"<p>... and {len(records) - max_rows} more</p>" if len(records) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
