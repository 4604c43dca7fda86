"""The steps of the device run (`benchmarks.device`), one function each: ``step(out, state, smoke) -> dict``.

Each runs in its own process, with the environment `benchmarks.device` set: the gpu profile, the
runs folder and the offline base under ``state`` (absolute paths), ``RLHF_LAB_SMOKE=1`` with
``smoke``. On a GPU every size is the gpu profile's; ``smoke`` shrinks them for a CPU run in CI.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from rlhf_lab import course
from rlhf_lab.config import get_device, get_profile, set_seed
from rlhf_lab.labels.preferences import load_preferences, to_pairs
from rlhf_lab.lm.models import load_model
from rlhf_lab.lm.pretrain import PretrainConfig, pretrain, with_steps
from rlhf_lab.reward.train import RewardConfig
from rlhf_lab.rl.group_trainer import GroupConfig
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.world.reviews import ReviewWorld

from . import device_name, sync
from . import attention as attention_bench
from . import dpo as dpo_bench
from . import group as group_bench
from . import reward_model as rm_bench
from . import sampler as sampler_bench
from .__main__ import bench_generation

PRETRAIN_STEPS = int(os.environ.get("DEVICE_PRETRAIN_STEPS", "600"))
"""Steps of the offline base (the preset's 3,000 are for a base worth learning from; 600 make a
GPT-2-shaped model whose SFT, labels and reward model cost what real GPT-2's would)."""


def _device():
    return get_device(verbose=False)


def _chain():
    profile = get_profile(verbose=False)
    return profile, str(course.link_path(profile, "sft")), str(course.link_path(profile, "reward_model"))


def _ppo_config(smoke: bool, **kw) -> PPOConfig:
    profile, sft, rm = _chain()
    cfg = replace(PPOConfig.gpu(), model=sft, reward_model=rm, device=str(_device()), **kw)
    if smoke:
        cfg = replace(cfg, batch_size=4, mini_batch_size=2, max_new_tokens=8)
    return cfg


def env(out: Path, state: Path, smoke: bool) -> dict:
    import transformers
    cuda = torch.cuda.is_available()
    info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda, "gpu": device_name(_device()), "cpus": os.cpu_count()}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(capability=f"{props.major}.{props.minor}", memory_gb=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
    return info


def base(out: Path, state: Path, smoke: bool) -> dict:
    """GPT-2's shape (124M, GPT-2's BPE) pre-trained offline on the review world for PRETRAIN_STEPS."""
    cfg = replace(PretrainConfig.gpu(), device=str(_device()))
    if smoke:
        cfg = replace(cfg, n_layer=2, n_head=2, n_embd=64, n_positions=128, batch_size=4)
    cfg = with_steps(cfg, 2 if smoke else PRETRAIN_STEPS)
    path = Path(os.environ["RLHF_LAB_BASE"])
    _, _, hist = pretrain(cfg, out_dir=path, progress=False, command="benchmarks.device base")
    return {"steps": cfg.steps, "warmup": cfg.warmup, "batch_size": cfg.batch_size, "documents": cfg.n_docs,
            "parameters_m": round(hist.n_parameters / 1e6, 2), "train_s": round(hist.wall_time_s, 1),
            "s_per_step": hist.wall_time_s / cfg.steps, "val_loss": hist.val_loss[-1]}


def chain(out: Path, state: Path, smoke: bool) -> dict:
    """SFT, simulated labels and the reward model at the gpu profile's sizes, each link timed."""
    profile = get_profile(verbose=False)
    seconds = course.prepare(profile, device=_device(), progress=False)
    return {"seconds": {k: round(v, 1) for k, v in seconds.items()}, "total_s": round(sum(seconds.values()), 1),
            "smoke": profile.smoke}


def generation(out: Path, state: Path, smoke: bool) -> dict:
    _, sft, _ = _chain()
    device = _device()
    batches, repeats, tokens = ((1, 4), 1, 8) if smoke else ((1, 64, 512), 3, 48)
    return sampler_bench.run(sft, batches, repeats, tokens, device, ppo=_ppo_config(smoke))


def attention(out: Path, state: Path, smoke: bool) -> dict:
    """The sampler with cuDNN attention allowed and forbidden (the kit forbids it on CUDA), new prompts each
    round as in RL, on the SFT model (`benchmarks.attention`)."""
    _, sft, _ = _chain()
    sizes = dict(batches=(2,), repeats=1, new_tokens=4) if smoke else dict(batches=(128, 512), repeats=3)
    return attention_bench.run(sft, device=_device(), **sizes)


def compiled(out: Path, state: Path, smoke: bool) -> dict:
    """The static cache with a ``torch.compile``d decode step (CUDA graphs on a GPU) at batch 64 and 512,
    the first call (the compile) timed apart; after the other steps, since compiling can take minutes."""
    _, sft, _ = _chain()
    device = _device()
    model, tok = load_model(sft, role="reference", device=device)
    batches, repeats, tokens = ((2,), 1, 8) if smoke else ((64, 512), 3, 48)
    try:
        return bench_generation(model, tok, batches, tokens, repeats, device, compile=device.type == "cuda")
    except Exception as e:   # torch.compile needs a toolchain there: report what failed
        return {"failed": f"{type(e).__name__}: {str(e)[:800]}"}


def reward_model(out: Path, state: Path, smoke: bool) -> dict:
    profile, sft, _ = _chain()
    rows = rm_bench.run(sft, 4 if smoke else 512, 1 if smoke else 2, _device(), labels=profile.labels,
                        preset=RewardConfig.gpu())
    return {r["batching"]: r for r in rows}


def _time_ppo(cfg: PPOConfig, iterations: int) -> dict:
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = PPOTrainer(cfg, ReviewWorld(0).prompts(1024, kind="mixed", split="train"))
    rows = []
    for i in range(iterations + 1):   # the first warms up
        row = trainer.iteration()
        sync(device)
        rows.append(row) if i else None
    med = {k: statistics.median(r[f"time/{k}"] for r in rows) for k in ("generate", "score", "learn", "iteration")}
    res = {"batch": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens, "value_model": cfg.value_model,
           "median_s": med, "episodes_per_s": cfg.batch_size / med["iteration"],
           "mean_response_tokens": statistics.mean(r["response/length"] for r in rows)}
    if device.type == "cuda":
        res["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return res


def ppo(out: Path, state: Path, smoke: bool) -> dict:
    """The gpu preset, shared critic (the default) then a separate one (the memory of all four models)."""
    n = 1 if smoke else 4
    return {"shared": _time_ppo(_ppo_config(smoke), n), "separate": _time_ppo(_ppo_config(smoke, value_model="separate"), n)}


def group(out: Path, state: Path, smoke: bool) -> dict:
    _, sft, rm = _chain()
    cfg = GroupConfig.gpu("grpo")
    sizes = (8, 4, 8, 1) if smoke else (cfg.batch_size, cfg.mini_batch_size, cfg.max_new_tokens, 3)
    return group_bench.bench_group(sft, rm, *sizes, _device())


def dpo(out: Path, state: Path, smoke: bool) -> dict:
    profile, sft, _ = _chain()
    pairs = to_pairs(load_preferences(profile.labels, labeler="sim-gold"))
    batch, steps = (4, 2) if smoke else (64, 10)
    t = dpo_bench.step_times(sft, pairs, batch, steps, True, _device())
    return {"batch_pairs": batch, "median_step_s": statistics.median(t), "pairs_per_s": batch / statistics.median(t)}


def profile(out: Path, state: Path, smoke: bool) -> dict:
    """One PPO iteration of the gpu preset under torch.profiler (after a warm-up): profile.txt."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    set_seed(0)
    cfg = _ppo_config(smoke)
    trainer = PPOTrainer(cfg, ReviewWorld(0).prompts(1024, kind="mixed", split="train"))
    trainer.iteration()
    cuda = torch.device(cfg.device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        row = trainer.iteration()
        sync(cfg.device)
    key = "cuda_time_total" if cuda else "cpu_time_total"
    (out / "profile.txt").write_text(prof.key_averages().table(sort_by=key, row_limit=40))
    return {"iteration_s": row["time/iteration"], "sorted_by": key}


def course_ppo(out: Path, state: Path, smoke: bool) -> dict:
    """Notebook 05's heaviest cell as a script: PPO at the gpu preset on the chain, as many of its
    iterations as the time left allows (it stops two iterations' time before the deadline), the
    figures merged into results.json every 10 iterations (a step killed keeps what it had measured)."""
    from .device import merge

    set_seed(0)
    cfg = _ppo_config(smoke)
    trainer = PPOTrainer(cfg, ReviewWorld(0).prompts(2048, kind="mixed", split="train"))
    done, deadline = {}, float(os.environ.get("DEVICE_STEP_DEADLINE", "inf"))
    for i in range(2 if smoke else cfg.iterations):
        rows = trainer.history.rows
        if rows and time.time() + 2 * statistics.median(r["time/iteration"] for r in rows) > deadline:
            break   # stop cleanly before the run's deadline, with what was measured
        trainer.iteration()
        if (i + 1) % 10 == 0 or smoke:
            rows = trainer.history.rows
            done = {"iterations": len(rows), "of": cfg.iterations, "batch": cfg.batch_size,
                    "median_iteration_s": statistics.median(r["time/iteration"] for r in rows),
                    "first": {k: rows[0][k] for k in ("objective/scores", "objective/gold", "objective/kl")},
                    "last": {k: rows[-1][k] for k in ("objective/scores", "objective/gold", "objective/kl")}}
            merge(out, "course_ppo", {**done, "partial": True})
    rows = trainer.history.rows
    return {**done, "iterations": len(rows), "median_iteration_s": statistics.median(r["time/iteration"] for r in rows),
            "partial": len(rows) < cfg.iterations}
