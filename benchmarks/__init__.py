"""Benchmarks of rlhf-lab: printed tables of medians, run with ``python -m benchmarks.<name>``."""
