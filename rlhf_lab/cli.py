"""The ``rlhf-lab`` command: pretrain and fine-tune the embedded model, and sample from any model.

    rlhf-lab pretrain            # UPT on the review world   -> runs/models/tiny-upt
    rlhf-lab sft                 # SFT on demonstrations     -> runs/models/tiny-sft
    rlhf-lab sample --n 8        # eight reviews with their gold scores

Outputs go under ``runs/`` (``$RLHF_LAB_RUNS``), never over the shipped ``data/``, unless
``--out`` names another folder.
"""
from __future__ import annotations

import argparse
import sys
import time


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("pretrain", help="UPT: train a tokenizer and a GPT-2-architecture model on the review world")
    p.add_argument("--size", choices=["tiny", "demo", "gpt2"], default="tiny",
                   help="tiny: the shipped embedded model (default); demo: seconds; gpt2: the 124M architecture")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the size's preset)")
    p.add_argument("--out", help="output folder (default: runs/models/<size>-upt)")
    _add_common(p)

    p = sub.add_parser("sft", help="SFT: fine-tune a pretrained model on instruction demonstrations")
    p.add_argument("--base", default="tiny-base", help="model to start from: tiny-base (default), a folder or a hub id")
    p.add_argument("--size", choices=["tiny", "demo", "gpt2"], default="tiny", help="preset of steps and batch")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the size's preset)")
    p.add_argument("--out", help="output folder (default: runs/models/<size>-sft)")
    _add_common(p)

    p = sub.add_parser("sample", help="sample reviews from a model and score them with the gold judges")
    p.add_argument("--model", default=None, help="tiny (default on CPU), tiny-base, gpt2, or a folder")
    p.add_argument("--n", type=int, default=8, help="number of completions (default 8)")
    p.add_argument("--kind", choices=["instruction", "opening", "mixed"], default="mixed",
                   help="which world prompts to use (default mixed)")
    p.add_argument("--prompt", action="append", help="your own prompt (repeatable); replaces world prompts")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="token budget per completion (default 48)")
    _add_common(p)
    return parser


def _run_pretrain(args) -> None:
    from dataclasses import replace

    from .config import runs_dir
    from .pretrain import PretrainConfig, pretrain

    cfg = {"tiny": PretrainConfig.tiny, "demo": PretrainConfig.demo, "gpt2": PretrainConfig.gpu}[args.size]()
    cfg = replace(cfg, seed=args.seed, device=args.device, **({"steps": args.steps} if args.steps else {}))
    out = args.out or runs_dir("models", f"{args.size}-upt")
    _, _, hist = pretrain(cfg, out_dir=out, command="rlhf-lab " + " ".join(args.argv))
    print(f"saved to {out}: {hist.n_parameters / 1e6:.2f}M parameters, val loss {hist.val_loss[-1]:.3f}, "
          f"{hist.wall_time_s:.0f} s")


def _run_sft(args) -> None:
    from dataclasses import replace

    from .config import runs_dir
    from .pretrain import SFTConfig, sft

    cfg = {"tiny": SFTConfig.tiny, "demo": SFTConfig.demo, "gpt2": SFTConfig.gpu}[args.size]()
    cfg = replace(cfg, base=args.base, seed=args.seed, device=args.device,
                  **({"steps": args.steps} if args.steps else {}))
    out = args.out or runs_dir("models", f"{args.size}-sft")
    _, _, hist = sft(cfg, out_dir=out, command="rlhf-lab " + " ".join(args.argv))
    print(f"saved to {out}: val loss {hist.val_loss[-1]:.3f}, {hist.wall_time_s:.0f} s")


def _run_sample(args) -> None:
    from .config import get_device, get_profile, set_seed
    from .generation import sample
    from .models import load_model
    from .world import Prompt, ReviewWorld, judge_completion

    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    start = time.perf_counter()
    device = get_device(args.device)
    name = args.model or get_profile(device).model_name
    model, tok = load_model(name, role="reference", device=device)
    if args.prompt:
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # recorded in the checkpoint's metadata
    from .models import ModelLoadError

    try:
        {"pretrain": _run_pretrain, "sft": _run_sft, "sample": _run_sample}[args.command](args)
    except (ModelLoadError, ValueError, FloatingPointError, RuntimeError) as err:
        print(f"rlhf-lab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlhf-lab {args.command}: interrupted; nothing was saved", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
