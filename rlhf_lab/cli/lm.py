"""The language-model commands of ``rlhf-lab`` (notebook 00): make the policy, and sample from it.

    rlhf-lab pretrain            # UPT on the review world   -> runs/models/tiny-upt
    rlhf-lab sft                 # SFT on demonstrations     -> runs/models/tiny-sft
    rlhf-lab sample --n 8        # eight reviews with their gold scores

``pretrain`` and ``sft`` are InstructGPT's step 0 and step 1 (Ouyang et al. 2022, §3.5): a size's
preset (`rlhf_lab.lm.pretrain.PretrainConfig` / `SFTConfig`), the options given, then the stage's
own trainer, which writes the folder and its metadata (`rlhf_lab.lm.pretrain`): the command adds no
writer of its own.
"""
from __future__ import annotations

import time
from dataclasses import replace

from rlhf_lab.cli.options import add_common, add_sampling, check_sampling_options, command_line
from rlhf_lab.config import get_device, get_profile, runs_dir, set_seed
from rlhf_lab.lm.generation import sample
from rlhf_lab.lm.models import load_model
from rlhf_lab.lm.pretrain import PretrainConfig, SFTConfig, pretrain, sft, with_steps
from rlhf_lab.utils.artefacts import check_writable
from rlhf_lab.world.reviews import Prompt, ReviewWorld, judge_completion

SIZES = ("tiny", "demo", "gpt2")
"""tiny: the shipped embedded model; demo: seconds; gpt2: the 124M architecture (the configs' gpu())."""


def add_parsers(sub) -> None:
    p = sub.add_parser("pretrain", help="UPT: train a tokenizer and a GPT-2-architecture model on the review world")
    p.add_argument("--size", choices=SIZES, default="tiny",
                   help="tiny: the shipped embedded model (default); demo: seconds; gpt2: the 124M architecture")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the size's preset)")
    p.add_argument("--out", help="output folder (default: runs/models/<size>-upt)")
    add_common(p)
    p.set_defaults(run=run_lm)

    p = sub.add_parser("sft", help="SFT: fine-tune a pretrained model on instruction demonstrations")
    p.add_argument("--base", default=None, help="model to start from: a shipped name, a folder or a hub id "
                   "(default: the size's preset, tiny-base for tiny and demo, gpt2 for gpt2)")
    p.add_argument("--size", choices=SIZES, default="tiny", help="preset of steps and batch")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the size's preset)")
    p.add_argument("--out", help="output folder (default: runs/models/<size>-sft)")
    add_common(p)
    p.set_defaults(run=run_lm)

    p = sub.add_parser("sample", help="sample reviews from a model and score them with the gold judges")
    p.add_argument("--model", default=None, help="tiny (default on CPU), tiny-base, gpt2, or a folder")
    p.add_argument("--n", type=int, default=8, help="number of completions (default 8)")
    p.add_argument("--kind", choices=["instruction", "opening", "mixed"], default="mixed",
                   help="which world prompts to use (default mixed)")
    p.add_argument("--prompt", action="append", help="your own prompt (repeatable); replaces world prompts")
    add_sampling(p)
    add_common(p)
    p.set_defaults(run=run_sample)


def run_lm(args) -> None:
    """``pretrain`` and ``sft``: the size's preset with the options given, trained and saved to --out."""
    if args.command == "pretrain":
        cfg_cls, train, suffix = PretrainConfig, pretrain, "upt"
    else:
        cfg_cls, train, suffix = SFTConfig, sft, "sft"
    cfg = {"tiny": cfg_cls.tiny, "demo": cfg_cls.demo, "gpt2": cfg_cls.gpu}[args.size]()
    cfg = replace(cfg, seed=args.seed, device=args.device,
                  **({"base": args.base} if getattr(args, "base", None) else {}))   # pretrain has no --base
    if args.steps is not None:   # the warm-up (and pre-training's documents) scaled to the steps asked for
        cfg = with_steps(cfg, args.steps)
    out = check_writable(args.out or runs_dir("models", f"{args.size}-{suffix}", create=False))
    _, _, hist = train(cfg, out_dir=out, command=command_line(args))
    size = f"{hist.n_parameters / 1e6:.2f}M parameters, " if args.command == "pretrain" else ""
    print(f"saved to {out}: {size}val loss {hist.val_loss[-1]:.3f}, {hist.wall_time_s:.0f} s")


def run_sample(args) -> None:
    """Sample ``--n`` completions and print each with the gold judges' scores (`rlhf_lab.world.reviews`)."""
    check_sampling_options(args)
    start = time.perf_counter()
    device = get_device(args.device)
    name = args.model or get_profile(device).model_name
    model, tok = load_model(name, role="reference", device=device)
    if args.prompt:   # the user's prompts, repeated in turn up to --n
        prompts = [Prompt(id=f"user-{i}", text=t, kind="opening", aspect=None, title="")
                   for i, t in enumerate(args.prompt)]
        prompts = [prompts[i % len(prompts)] for i in range(args.n)]
    else:
        prompts = ReviewWorld(args.seed).prompts(args.n, kind=args.kind, split="test")
    set_seed(args.seed)
    out = sample(model, tok, [p.text for p in prompts], max_new_tokens=args.max_new_tokens,
                 temperature=args.temperature, device=device)
    golds = []
    for i, (p, text, done) in enumerate(zip(prompts, out.completions, out.finished.tolist()), 1):
        s = judge_completion(p, text)
        golds.append(s.gold)
        print(f"[{i}] {p.text!r}")
        print(f"    -> {text.strip()}" + ("" if done else "  [no EOS within budget]"))
        print(f"    gold {s.gold:+.2f} | sentiment {s.sentiment:+.2f} | well-formed {s.well_formed:.2f} "
              f"| on-topic {s.on_topic:.2f}")
    print(f"model {name!r}, T={args.temperature}: mean gold {sum(golds) / len(golds):+.3f} "
          f"over {len(golds)} samples ({time.perf_counter() - start:.1f} s)")
