"""What the ranker shows: its ipywidgets form, how it is redrawn, and the tables of records.

`RankerView` lays out the form and redraws it from the ranker's state (queue, order, records);
`rlhf_lab.labels.ranker.Ranker` holds that state and the actions behind the buttons. Completions carry
letters A, B, C, ... on screen, and rankings are shown in them ("C > A > D > B") beside the saved
indices ([2, 0, 3, 1]) so that a person can map one to the other.
"""
from __future__ import annotations

import html

import ipywidgets as W

from rlhf_lab.labels.ranker_keys import KeyBridge

_TEXT_STYLE = ("box-sizing: border-box; white-space: pre-wrap; line-height: 1.45; padding: 6px 10px; border-radius: 6px; "
               "border: {width} solid {border}; background: {background}; color: var(--jp-content-font-color1, #222); "
               "width: 100%;")
# JupyterLab's theme variables (light and dark), with a light fallback where they are not defined
_BORDER, _MUTED = "var(--jp-border-color1, #bbb)", "var(--jp-ui-font-color2, #555)"
_PLAIN, _PROMPT = "var(--jp-layout-color1, #fff)", "var(--jp-layout-color2, #f4f4f4)"
SAVED_COLOUR, ERROR_COLOUR = "var(--jp-success-color1, #2e7d32)", "var(--jp-error-color1, #b00020)"
_RANKED = f"color-mix(in srgb, {SAVED_COLOUR} 18%, {_PLAIN})"



class RankerView:
    """The form of `rlhf_lab.labels.ranker.Ranker` (a mixin: the state and actions live there)."""

    # ---- layout ----------------------------------------------------------------------------
    def _build(self, k_max: int) -> None:
        self.title = W.HTML()
        self.progress = W.IntProgress(min=0, max=self.total, layout=W.Layout(width="50%"))
        self.counter = W.Label()
        self.prompt_box = W.HTML()
        self.buttons, self.texts, self.rows = [], [], []
        self.keys = KeyBridge(self.press, hint=self._key_hint(k_max))
        for k in range(k_max):
            button = W.Button(layout=W.Layout(flex="0 0 120px", width="120px", height="auto", min_height="36px"))
            button.add_class(f"rlhf-rank-{k}")
            button.on_click(self._guard(lambda _, k=k: self.pick(k), debounce=True))
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
        self.undo_submit_button = W.Button(description="undo submit", icon="history",
                                           tooltip="take back the last saved ranking and correct it")
        for b, f in ((self.undo_button, self.undo), (self.reset_button, self.reset), (self.skip_button, self.skip),
                     (self.submit_button, self.submit), (self.revisit_button, self.revisit),
                     (self.undo_submit_button, self.undo_submit)):
            b.add_class(f"rlhf-{b.description.replace(' ', '-')}")
            b.layout = W.Layout(width="auto", min_width="fit-content")   # "undo submit" whole at 1024 px
            b.on_click(self._guard(lambda _, f=f: f(), debounce=f != self.revisit))
        self.status = W.HTML()
        self.history = W.HTML()
        self.history_box = W.Accordion(children=[self.history], titles=("labeled so far",))
        controls = [self.skip_button, self.revisit_button, self.undo_submit_button] if self.mode == "ab" else \
            [self.undo_button, self.reset_button, self.skip_button, self.submit_button, self.revisit_button,
             self.undo_submit_button]
        body = W.HBox(self.rows) if self.mode == "ab" else W.VBox(self.rows)
        self.widget = W.VBox([self.title, W.HBox([self.progress, self.counter]), self.prompt_box, body,
                              W.HBox(controls, layout=W.Layout(flex_flow="row wrap")), self.status, self.keys,
                              self.history_box],
                             layout=W.Layout(border=f"1px solid {_BORDER}", padding="10px", max_width="900px"))
        self.widget.add_class("rlhf-ranker")

    def _key_hint(self, k_max: int) -> str:
        last = LETTERS[k_max - 1]
        if self.mode == "ab":
            return "Keys (click the form first): A or 1, B or 2 choose and save · S skip · Z undo submit"
        return (f"Keys (click the form first): A-{last} or 1-{k_max} rank the next · Enter submit · "
                "Backspace undo · R reset · S skip · Z undo submit")

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # what a page shows when it cannot draw the widget (reloaded while the kernel lives on)
        # no count here: this text is saved with the notebook and would go stale as labels are saved
        bundle["text/plain"] = (f"Ranker ({self.labeler}, {self.store.path.name}): run this cell again to continue "
                                "where the saved labels end")
        return bundle


    def _say(self, message: str, color: str = _MUTED) -> None:
        self.status.value = f"<span style='color:{color}'>{message}</span>"


    def _show(self) -> None:
        """Redraw everything from (queue, order, saved)."""
        task = self.current
        self.progress.value = self.labeled
        self.counter.value = f"  {self.labeled} / {self.total} labeled" + \
            (f", {len(self.skipped)} skipped" if self.skipped else "")
        self.revisit_button.layout.display = None if (self.skipped and task is None) else "none"
        self.undo_submit_button.disabled = not self.records
        self._show_history()
        if task is None:
            self.prompt_box.value = ""
            for row in self.rows:
                row.layout.display = "none"
            for b in (self.undo_button, self.reset_button, self.skip_button, self.submit_button):
                b.disabled = True
            n = len(self.skipped)
            left = (f" {n} skipped prompt{'s' if n > 1 else ''} remain{'' if n > 1 else 's'}: revisit "
                    f"{'them' if n > 1 else 'it'} now or next time." if n else "")
            self.title.value = f"<b>No prompts left to rank in this session.</b>{left}"
            return
        how = ("Which review is better? One click saves it." if self.mode == "ab" else
               "Click the <b>best</b> completion, then the best of the rest, until all are ranked; then submit.")
        self.title.value = f"<b>Labeler {html.escape(self.labeler)}</b> &middot; {how}"
        self.prompt_box.value = (f"<div style='margin:6px 0'><span style='color:{_MUTED}'>prompt {html.escape(task.prompt_id)}"
                                 f"</span><div class='rlhf-prompt' style='{_TEXT_STYLE.format(width='1px', border=_BORDER, background=_PROMPT)}'>"
                                 f"{html.escape(task.prompt.text)}</div></div>")
        for k, (row, button, text) in enumerate(zip(self.rows, self.buttons, self.texts)):
            row.layout.display = None if k < task.k else "none"
            if k >= task.k:
                continue
            ranked = k in self.order
            if self.mode == "ab":
                button.description = f"{LETTERS[k]} is better"
            else:
                button.description = f"#{self.order.index(k) + 1}" if ranked else f"pick as #{len(self.order) + 1}"
            button.button_style = "success" if ranked else ""
            button.disabled = ranked
            style = _TEXT_STYLE.format(width="2px" if ranked else "1px", border=SAVED_COLOUR if ranked else _BORDER,
                                       background=_RANKED if ranked else _PLAIN)
            text.value = f"<div class='rlhf-text' style='{style}'><b>{LETTERS[k]}</b> {html.escape(task.completions[k].strip())}</div>"
        complete = len(self.order) == task.k
        self.submit_button.disabled = not complete
        self.undo_button.disabled = self.reset_button.disabled = not self.order
        self.skip_button.disabled = False


    def _show_history(self) -> None:
        done = list(self.records.values())[::-1]
        self.history_box.set_title(0, f"labeled so far: {len(done)} (latest first)")
        self.history.value = records_html(done, max_rows=10, columns=("prompt id", "ranking", "best", "worst"))



LETTERS = "ABCDEFGHI"   # K <= 9


def letters(ranking) -> str:
    """A ranking [2, 0, 3, 1] as the person saw it: "C > A > D > B"."""
    return " > ".join(LETTERS[i] for i in ranking)


def records_html(records, max_rows: int = 8, width: int = 60,
                 columns=("prompt id", "prompt", "labeler", "ranking", "best", "worst", "s")) -> str:
    """An HTML table of records: prompt, labeler, ranking (letters and indices), best and worst
    completion, seconds; ``columns`` picks which."""
    def cut(text: str) -> str:
        text = " ".join(text.split())
        return html.escape(text if len(text) <= width else text[:width - 1] + "\u2026")

    records = list(records)
    head = "".join(f"<th style='text-align:left; white-space:nowrap'>{h}</th>" for h in columns)
    rows = []
    for r in records[:max_rows]:
        cells = {"prompt id": html.escape(r.prompt_id), "prompt": cut(r.prompt), "labeler": html.escape(r.labeler),
                 "ranking": html.escape(f"{letters(r.ranking)} {r.ranking}"), "best": cut(r.completions[r.ranking[0]]),
                 "worst": cut(r.completions[r.ranking[-1]]), "s": "" if r.seconds is None else f"{r.seconds:.1f}"}
        rows.append("<tr>" + "".join(f"<td style='text-align:left'>{cells[c]}</td>" for c in columns) + "</tr>")
    more = f"<p>... and {len(records) - max_rows} more</p>" if len(records) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
