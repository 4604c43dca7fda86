"""Live training dashboards for notebooks: one figure, redrawn in place after every iteration.

    dash = LiveDashboard(PPO_PANELS, title="PPO, beta = 0.05")
    history = trainer.train(on_iteration=dash)
    dash.close()

The figure is shown once through a display handle and updated with ``handle.update(fig)``
(no ``clear_output``, which flickers and leaves an empty output behind), so the notebook keeps the final picture as its output.
Any history with ``history[key] -> list[float]`` works (`rlhf_lab.rl.rollout.PPOHistory`).
"""
from __future__ import annotations

import math
import time

import matplotlib.pyplot as plt
from IPython.display import display

PPO_PANELS: dict[str, tuple[str, ...]] = {
    "reward-model score": ("objective/scores", "objective/rm_score"),
    "gold score (PPO never sees it)": ("objective/gold",),
    "KL to pi_ref (nats per response)": ("objective/kl",),
    "entropy (nats per token)": ("objective/entropy",),
    "clip fraction": ("policy/clipfrac_avg", "val/clipfrac_avg"),
    "approx KL of the update": ("policy/approxkl_avg",),
    "value loss": ("loss/value_avg",),
    "explained variance": ("val/explained_variance",),
    "ratio pi / pi_old (mean)": ("policy/ratio_avg",),
    "response length (tokens)": ("response/length",),
    "seconds per iteration": ("time/generate", "time/score", "time/learn"),
}
"""Every diagnostic of a PPO iteration, grouped into panels (title -> history keys). beta is constant
unless ``adaptive_kl``: `ADAPTIVE_PANELS` adds its panel."""
ADAPTIVE_PANELS: dict[str, tuple[str, ...]] = {**PPO_PANELS, "beta (adaptive)": ("objective/kl_coef",)}

LABELS = {"objective/scores": "score used (penalty applied)", "objective/rm_score": "r_phi",
          "policy/clipfrac_avg": "policy", "val/clipfrac_avg": "value",
          "time/generate": "generate", "time/score": "score", "time/learn": "learn"}


class LiveDashboard:
    """A grid of small line plots of a history, one panel per entry of ``panels``."""

    def __init__(self, panels: dict[str, tuple[str, ...]] = PPO_PANELS, ncols: int = 4, title: str = "",
                 x_key: str = "iteration", max_x: int | None = None, panel_size=(3.6, 2.7),
                 min_interval: float = 3.0):
        """``min_interval``: seconds between redraws. Rendering the 12-panel grid cost about as much as a
        PPO iteration of the embedded model on 2 CPU threads (notebook 05's bar: 2.25 s per iteration,
        0.97 s of them training), so the dashboard redraws at most that often, and always at the last
        iteration (``max_x``) and on `close`."""
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.panels, self.x_key, self.max_x = dict(panels), x_key, max_x
        self.min_interval, self._drawn_at, self._pending = min_interval, -math.inf, None
        nrows = math.ceil(len(self.panels) / ncols)
        self.fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                                      squeeze=False)
        self.axes = axes.ravel()
        for ax in self.axes[len(self.panels):]:
            ax.axis("off")
        if title:
            self.fig.suptitle(title, fontsize=12)
        self.ncols = ncols
        self.handle = display(self.fig, display_id=True)

    def __call__(self, history) -> None:
        x = history[self.x_key]
        last = self.max_x is not None and len(x) > 0 and x[-1] >= self.max_x
        if last or time.perf_counter() - self._drawn_at >= self.min_interval:
            self._draw(history)
        else:
            self._pending = history   # drawn by the next call that is due, or by close()

    def _draw(self, history) -> None:
        x = history[self.x_key]
        for ax, (name, keys) in zip(self.axes, self.panels.items()):
            ax.clear()
            for key in keys:
                ax.plot(x, history[key], ".-", ms=3, lw=1, label=LABELS.get(key, key))
            ax.set_title(name, fontsize=10)
            ax.tick_params(labelsize=8)
            if self.max_x:
                ax.set_xlim(0.5, self.max_x + 0.5)
            if len(keys) > 1:
                ax.legend(fontsize=7, loc="best")
        n = len(self.panels)
        for i, ax in enumerate(self.axes[:n]):   # an x label under every panel with none below it
            if i + self.ncols >= n:
                ax.set_xlabel(self.x_key, fontsize=9)
        self.fig.tight_layout()
        if self.handle is not None:   # None outside IPython, where there is nothing to update
            self.handle.update(self.fig)
        self._drawn_at, self._pending = time.perf_counter(), None

    def close(self) -> None:
        """Draw what a skipped call left, then stop drawing: the last picture stays as the cell's
        output, without a second copy."""
        if self._pending is not None:
            self._draw(self._pending)
        plt.close(self.fig)
