"""Which attention kernel the sampler's bf16 decode steps should use on a GPU, side by side in one run.

    python -m benchmarks.attention [--model PATH] [--batches 64 512] [--repeats 3] [--same-prompts]

Under bf16 autocast on a Hopper GPU, torch's scaled-dot-product attention prefers cuDNN's kernel,
which builds (and caches) an execution plan per input shape. A decode loop feeds a new key length at
every step, and the sampler's batch shrinks as rows finish, so RL, whose prompts change every
iteration, keeps meeting shapes it has not planned. The device run's profile of one PPO iteration (H200,
torch 2.11) showed ``aten::_cudnn_attention_forward`` at 2.5 ms of CPU per call, half the iteration's
CPU time, while the GPU was busy for 0.19 s of its 3.4 s; `rlhf_lab.config.get_device` therefore
forbids cuDNN attention on CUDA. This script measures the sampler with cuDNN attention allowed and
forbidden, in float32, and transformers' generate (float32). Each round draws new prompts (new shapes,
as in RL; all sides get the same ones), unless ``--same-prompts``, which repeats the first round's
prompts so that cuDNN's plans are cached after the warm-up. ``--model``: a saved policy (rows finish
and the sampler drops them); by default a GPT-2-shaped model with random weights (every row runs the
whole budget). New tokens/s, medians over the rounds after the first, sides alternating.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_lab.config import get_device, set_seed
from rlhf_lab.lm.generation import sample
from rlhf_lab.lm.gpt2_bpe import gpt2_tokenizer
from rlhf_lab.lm.models import load_model
from rlhf_lab.lm.tokens import ensure_pad_token
from rlhf_lab.world.reviews import ReviewWorld

from . import device_name, sync
from .sampler import generate_baseline


def _sampler(cudnn: bool, bf16: bool):
    def run(model, tok, prompts, new_tokens, device):
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        try:
            return sample(model, tok, prompts, max_new_tokens=new_tokens, temperature=0.7, device=device,
                          bf16=bf16).completion_mask.sum()
        finally:
            torch.backends.cuda.enable_cudnn_sdp(False)
    return run


SIDES = {"sampler bf16, cuDNN attention": _sampler(True, True),
         "sampler bf16 (the kit's)": _sampler(False, True),
         "sampler float32": _sampler(False, False),
         "generate float32": lambda m, t, p, n, d: generate_baseline(m, t, p, n, 0.7, d)[1].sum()}


def _model(name: str | None, device):
    if name:
        return load_model(name, role="reference", device=device)
    tok = gpt2_tokenizer()
    model = GPT2LMHeadModel(GPT2Config())
    ensure_pad_token(model, tok)
    return model.to(device).eval(), tok


def run(model_name: str | None = None, batches=(64, 512), repeats: int = 3, new_tokens: int = 48, device=None,
        same_prompts: bool = False) -> dict:
    device = device or get_device(verbose=False)
    model, tok = _model(model_name, device)
    res = {"device": device_name(device), "torch": torch.__version__, "model": model_name or "gpt2-shaped, random",
           "repeats": repeats, "same_prompts": same_prompts, "batches": {}}
    for b in batches:
        pool = [p.text for p in ReviewWorld(0).prompts(b * (repeats + 1), kind="mixed", split="train")]
        times = {name: [] for name in SIDES}
        for r in range(repeats + 1):   # the first round warms up
            prompts = pool[:b] if same_prompts else pool[r * b:(r + 1) * b]
            for name, fn in SIDES.items():
                set_seed(r)
                sync(device)
                t = time.perf_counter()
                with torch.no_grad():
                    n = int(fn(model, tok, prompts, new_tokens, device))
                sync(device)
                if r:
                    times[name].append(n / (time.perf_counter() - t))
        res["batches"][str(b)] = {name: {"new_tokens_per_s": statistics.median(v), "runs": [round(x) for x in v]}
                                  for name, v in times.items()}
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.attention", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a saved policy (default: a GPT-2-shaped model with random weights)")
    p.add_argument("--same-prompts", action="store_true", help="repeat the first round's prompts (cached plans)")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    res = run(args.model, tuple(args.batches), args.repeats, args.new_tokens, same_prompts=args.same_prompts)
    print(f"sampler attention kernels on {res['device']} (torch {res['torch']}), {res['model']}, "
          f"{'the same prompts' if args.same_prompts else 'new prompts'} each round: new tokens/s, medians of {args.repeats}")
    for b, sides in res["batches"].items():
        for name, v in sides.items():
            print(f"  batch {b:>4s}  {name:32s} {v['new_tokens_per_s']:9.0f}  {v['runs']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
