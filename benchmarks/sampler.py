"""The RL sampler against transformers' ``generate``, side by side in one process.

    python -m benchmarks.sampler [--batches 1 64 512] [--repeats 5] [--model tiny]

Both sides sample the same prompts at temperature 0.7 (no top-k, no top-p) up to 48 new tokens and
return the same things: the tokens and each token's log-prob at that temperature. The baseline is
the kit's sampler before `rlhf_lab.lm.sampler`: ``generate(do_sample=True, output_logits=True)``,
then the log-softmax of every step's stacked logits. The kit's sampler keeps one log-prob per
row and step, drops finished rows and draws by the inverse CDF (`rlhf_lab.lm.sampler`). New
tokens/s counts the tokens up to and including EOS (each side's own samples; the mean lengths are
printed beside them). The last row is the PPO course's generate phase (the `PPOConfig.tiny()`
batch, prompts and budget). Repeats alternate the sides; medians and the median of per-repeat ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rlhf_lab.config import get_device, set_seed
from rlhf_lab.lm.generation import encode_prompts, logprobs_from_logits, sample
from rlhf_lab.lm.models import context_length, load_model
from rlhf_lab.lm.sampler import sample_from_logits
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.world.reviews import ReviewWorld

from . import device_name, sync


def generate_baseline(model, tokenizer, prompts, max_new_tokens, temperature, device):
    """The previous sampler: transformers' generate keeping every step's logits. Returns (tokens, mask)."""
    ids, mask = encode_prompts(tokenizer, prompts, device, max_length=context_length(model.config) - max_new_tokens)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_k=0,
                         top_p=1.0, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, output_logits=True, return_dict_in_generate=True)
    tokens = out.sequences[:, ids.shape[1]:]
    logprobs_from_logits(torch.stack(out.logits, dim=1), tokens, temperature)
    is_eos = tokens == tokenizer.eos_token_id
    return tokens, ~((is_eos.long().cumsum(-1) - is_eos.long()) > 0)


def kit_sampler(model, tokenizer, prompts, max_new_tokens, temperature, device):
    s = sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature, device=device)
    return s.completion_ids, s.completion_mask.bool()


SIDES = {"sampler": kit_sampler, "generate": generate_baseline}


def measure(model, tokenizer, prompts, max_new_tokens, temperature, repeats, device) -> dict:
    """Each side ``repeats`` times, alternating, after one warm-up each: medians and per-repeat ratios."""
    runs = {name: [] for name in SIDES}
    for r in range(repeats + 1):
        for name, fn in SIDES.items():
            set_seed(r)
            sync(device)
            t = time.perf_counter()
            with torch.no_grad():
                _, mask = fn(model, tokenizer, prompts, max_new_tokens, temperature, device)
            sync(device)
            if r:   # the first round warms up
                runs[name].append((int(mask.sum()) / (time.perf_counter() - t), mask.sum(-1).float().mean().item()))
    out = {name: {"new_tokens_per_s": statistics.median(x for x, _ in v), "mean_length": statistics.mean(y for _, y in v),
                  "runs": [round(x) for x, _ in v]} for name, v in runs.items()}
    ratios = [a[0] / b[0] for a, b in zip(runs["sampler"], runs["generate"])]
    return {**out, "ratio": statistics.median(ratios), "ratios": [round(x, 2) for x in ratios]}


def bench_draw(shapes=((64, 50257), (512, 50257)), repeats: int = 5, device="cpu") -> dict:
    """Milliseconds to draw one token per row from (rows, vocabulary) logits: torch.multinomial (what
    generate does; an exponential draw per entry) against the sampler's inverse CDF (float64 sums)."""
    out = {}
    for rows, vocab in shapes:
        logits = torch.randn(rows, vocab, device=device)
        draws = {"multinomial": lambda: torch.multinomial(torch.softmax(logits / 0.7, -1), 1),
                 "inverse_cdf": lambda: sample_from_logits(logits, 0.7, torch.rand(rows, device=device))}
        times = {name: [] for name in draws}
        for r in range(repeats + 1):
            for name, fn in draws.items():
                sync(device)
                t = time.perf_counter()
                fn()
                sync(device)
                if r:
                    times[name].append(1e3 * (time.perf_counter() - t))
        out[f"{rows}x{vocab}"] = {name: statistics.median(v) for name, v in times.items()}
    return out


def run(model_name: str = "tiny", batches=(1, 64, 512), repeats: int = 5, max_new_tokens: int = 48,
        device=None, ppo: PPOConfig | None = None) -> dict:
    """Each batch size, then the generate phase of ``ppo`` (default `PPOConfig.tiny()`, the course's)."""
    device = device or get_device(verbose=False)
    model, tok = load_model(model_name, role="reference", device=device)
    world = ReviewWorld(0)
    out = {"model": model_name, "device": device_name(device), "max_new_tokens": max_new_tokens, "repeats": repeats,
           "batches": {}}
    for b in batches:
        prompts = [p.text for p in world.prompts(b)]
        out["batches"][str(b)] = measure(model, tok, prompts, max_new_tokens, 0.7, repeats, device)
    cfg = ppo or PPOConfig.tiny()
    prompts = [p.text for p in world.prompts(cfg.batch_size)]
    out["draw_ms"] = bench_draw(device=device)
    out["ppo_generate"] = {"batch": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens,
                           **measure(model, tok, prompts, cfg.max_new_tokens, cfg.temperature, repeats, device)}
    return out


def print_table(res: dict) -> None:
    print(f"\nsampler vs transformers generate, {res['model']} on {res['device']}: new tokens/s, medians of "
          f"{res['repeats']} repeats (sides alternating)")
    print(f"{'batch':>22s} {'sampler':>9s} {'generate':>9s} {'ratio':>7s} {'per repeat':>32s} {'mean length':>14s}")
    rows = [(f"{b} x {res['max_new_tokens']}", v) for b, v in res["batches"].items()]
    ppo = res["ppo_generate"]
    rows.append((f"PPO {ppo['batch']} x {ppo['max_new_tokens']}", ppo))
    for name, v in rows:
        print(f"{name:>22s} {v['sampler']['new_tokens_per_s']:9.0f} {v['generate']['new_tokens_per_s']:9.0f} "
              f"{v['ratio']:6.2f}x {str(v['ratios']):>32s} "
              f"{v['sampler']['mean_length']:6.1f} vs {v['generate']['mean_length']:<5.1f}")
    for shape, v in res["draw_ms"].items():
        print(f"{'draw ' + shape:>22s}  multinomial {v['multinomial']:.1f} ms, inverse CDF {v['inverse_cdf']:.1f} ms a step")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64, 512])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--json")
    args = p.parse_args(argv)
    bad = [b for b in args.batches if b < 1] + ([args.repeats] if args.repeats < 1 else [])
    if bad:
        p.error(f"--batches and --repeats must be at least 1, got {bad}")
    res = run(args.model, tuple(args.batches), args.repeats, args.max_new_tokens)
    print_table(res)
    if args.json:
        write_text(args.json, json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
