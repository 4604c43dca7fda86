"""A training loop's support: its progress bar and the per-step numbers it reads from the device.

Every loop of the kit (pre-training and SFT, the reward model, DPO, REINFORCE, PPO and the
critic-free methods) shows a `progress_bar` and keeps its losses in `DeviceScalars`.
"""
from __future__ import annotations

import os
import sys

import torch
from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm


def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar: a widget in a notebook (``tqdm.auto``), text in a terminal.

    With ``RLHF_LAB_PROGRESS=text`` it is always text, on stdout: what `make execute` uses to commit
    notebooks, since a widget's saved output shows its first frame (0%) on GitHub and in any viewer
    without the live kernel, while text shows the bar's final state (``.ci/nbclean.py`` keeps only
    the last frame of each line)."""
    if os.environ.get("RLHF_LAB_PROGRESS") == "text":
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("ascii", False)
        return text_tqdm(iterable, **kwargs)
    return auto_tqdm(iterable, **kwargs)


class DeviceScalars:
    """A training loop's per-step numbers (0-d tensors), kept on the device and read in one wait
    every ``every`` steps: ``.item()`` at every step would make the host wait for the device each
    time. On a CPU every step is read (it costs nothing there, and a NaN stops the run at once)."""

    def __init__(self, device, every: int = 25):
        self.every = 1 if torch.device(device).type == "cpu" else every
        self.pending: list[dict[str, torch.Tensor]] = []

    def add(self, **values: torch.Tensor) -> list[dict[str, float]]:
        """Keep one step's values; returns the steps read now, oldest first (none between reads)."""
        self.pending.append({k: v.detach() for k, v in values.items()})
        return self.read() if len(self.pending) >= self.every else []

    def read(self) -> list[dict[str, float]]:
        """Every kept step's values as floats, in one transfer."""
        if not self.pending:
            return []
        keys = list(self.pending[0])
        table = torch.stack([torch.stack([row[k].float() for k in keys]) for row in self.pending]).cpu().tolist()
        self.pending.clear()
        return [dict(zip(keys, row)) for row in table]
