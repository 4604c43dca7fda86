"""Benchmarks of rlhf-lab: printed tables of medians, run with ``python -m benchmarks.<name>``."""
from __future__ import annotations

import platform

import torch


def sync(device) -> None:
    """Wait for queued GPU work, so that a timer read after it measures the work itself."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def device_name(device) -> str:
    """The GPU's name, or the CPU and the number of torch threads, for the table's header."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
