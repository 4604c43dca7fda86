"""Benchmarks of rlhf-lab: printed tables of medians, run with ``python -m benchmarks.<name>``."""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

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


def table_meta(module: str, argv, started: float) -> dict:
    """How a committed table was made: the command (``python -m benchmarks.<module>`` and its arguments), the UTC
    date, the machine and torch, and the seconds since ``started`` (a `time.perf_counter` reading)."""
    args = argv if argv is not None else sys.argv[1:]
    return {"command": f"python -m benchmarks.{module} " + " ".join(args),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
            "seconds": round(time.perf_counter() - started)}


def seeds_parser(description: str, seeds: list[int], out, smoke_help: str) -> argparse.ArgumentParser:
    """The options every seeded table script shares: --seeds, --smoke and --out (read them with `parse_seeds`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    parser.add_argument("--out", type=Path, default=out)
    return parser


def parse_seeds(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse, refuse a negative seed, and run seed 0 alone at smoke size."""
    args = parser.parse_args(argv)
    if min(args.seeds) < 0:
        parser.error(f"--seeds must be at least 0, got {args.seeds}")
    if args.smoke:
        args.seeds = [0]
    return args
