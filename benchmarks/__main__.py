"""The benchmark suite: one command, one table, one JSON file.

    python -m benchmarks --profile cpu            # the embedded model on this machine
    python -m benchmarks --profile gpu            # GPT-2 (124M) on a GPU ("gpt2" from the hub, or --model)
    python -m benchmarks --profile cpu --quick    # a few steps of each, as CI runs it

Measures, as medians over repeated runs in one process:
* generation: new tokens per second at batch 1, 64 and 512 (KV cache, temperature 0.7), and
  with a static cache and a compiled decode step (`sample(compile=True)`; on the cpu profile
  at batch 64 only, where it does not pay off; the compile time is reported, not counted);
* reward-model training: tokens and comparisons per second (grouped and shuffled batching);
* PPO: episodes per second with 64-token prompts and 48-token responses (4 PPO epochs), and the
  course setting of issue 6 (64 episodes x 24 new tokens), each split into generate / score / learn,
  minibatches grouped by length; on a GPU the peak memory allocated, and once more with a
  separate critic (policy + reference + reward model + value model);
* DPO: pairs per second with the reference log-probs cached;
* side by side with TRL (when the optional extra is installed): reward-model training and DPO on
  the same work, with the ratio rlhf-lab / TRL (`benchmarks.trl_compare`).
Writes everything to ``--json`` (default runs/benchmarks/<profile>.json) with the device name,
versions and date.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import get_device, runs_dir, set_seed
from rlhf_lab.lm.generation import sample
from rlhf_lab.lm.models import load_model
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.world.reviews import ReviewWorld

from . import device_name, sync
from . import dpo as dpo_bench
from . import group as group_bench
from . import reward_model as rm_bench
from . import trl_compare
from . import trl_group

PROFILES = {"cpu": {"model": "tiny", "batches": (1, 64, 512)}, "gpu": {"model": "gpt2", "batches": (1, 64, 512)}}



def long_prompts(tokenizer, n: int, n_tokens: int = 64) -> list[str]:
    """n prompts of exactly ``n_tokens`` tokens, cut from reviews of the world's corpus."""
    docs = ReviewWorld(0).corpus(4 * n + 50)
    out, i = [], 0
    while len(out) < n:
        ids = tokenizer(" ".join(docs[i:i + 4]), add_special_tokens=False)["input_ids"][:n_tokens]
        text = tokenizer.decode(ids)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) == n_tokens:
            out.append(text)
        i += 1
    return out


def bench_generation(model, tok, batches, max_new_tokens: int, repeats: int, device, compile: bool = False) -> dict:
    """New tokens per second (finished rows stop counting) at each batch size; the first call of
    each size warms up (and compiles, with ``compile``) and is timed apart as ``first_call_s``."""
    prompts = [p.text for p in ReviewWorld(0).prompts(max(batches), kind="mixed", split="test")]
    out = {}
    for b in batches:
        rates = []
        for rep in range(repeats + 1):
            set_seed(rep)
            start = time.perf_counter()
            s = sample(model, tok, prompts[:b], max_new_tokens=max_new_tokens, temperature=0.7, device=device,
                       compile=compile)
            sync(device)
            if rep:
                rates.append(s.completion_mask.sum().item() / (time.perf_counter() - start))
            else:
                first = time.perf_counter() - start
        out[str(b)] = {"new_tokens_per_s": statistics.median(rates), "runs": [round(r) for r in rates],
                       "first_call_s": first}
    return out


def bench_ppo(model: str, reward_model: str | None, prompts, batch: int, new_tokens: int, iterations: int,
              device, value_model: str = "shared") -> dict:
    cfg = PPOConfig(model=model, batch_size=batch, mini_batch_size=min(32, batch), max_new_tokens=new_tokens,
                    device=str(device), group_by_length=True, value_model=value_model,
                    **({"reward_model": reward_model} if reward_model else {}))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    kwargs = {}
    if reward_model is None:   # throughput only: an untrained scalar head on the same backbone
        from rlhf_lab.reward.model import RewardModel
        rm = RewardModel.from_backbone(model, device=device).eval()
        kwargs = {"reward_fn": lambda p, c: rm.score(p, c, batch_size=len(p)), "reward_model": rm}
    trainer = PPOTrainer(cfg, prompts, **kwargs)
    rows = []
    for i in range(iterations + 1):
        row = trainer.iteration()
        sync(device)
        if i:
            rows.append(row)
    med = {k: statistics.median(r[f"time/{k}"] for r in rows) for k in ("generate", "score", "learn", "iteration")}
    out = {"episodes": batch, "new_tokens": new_tokens, "median_s": med, "value_model": value_model,
           "episodes_per_s": batch / med["iteration"],
           "mean_response_tokens": statistics.mean(r["response/length"] for r in rows)}
    if device.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--model", help="override the profile's model (a hub id, a folder or 'tiny')")
    p.add_argument("--quick", action="store_true", help="a few steps of each (CI); the numbers are not benchmarks")
    p.add_argument("--no-trl", action="store_true", help="skip the comparison with TRL even if it is installed")
    p.add_argument("--json", help="output file (default runs/benchmarks/<profile>.json)")
    args = p.parse_args(argv)
    try:
        device = get_device("cuda" if args.profile == "gpu" else "cpu")
    except RuntimeError as err:   # the gpu profile on a machine without CUDA
        p.error(f"the gpu profile needs a CUDA GPU and this machine has none ({err}); run --profile cpu")
    model_name = args.model or PROFILES[args.profile]["model"]
    q = args.quick
    batches = (1, 8) if q else PROFILES[args.profile]["batches"]
    started = time.perf_counter()
    model, tok = load_model(model_name, role="reference", device=device)

    result = {"profile": args.profile, "model": model_name, "quick": q,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "device": device_name(device),
              "versions": {"torch": torch.__version__, "python": platform.python_version(),
                           "transformers": __import__("transformers").__version__}}
    result["generation"] = bench_generation(model, tok, batches, 8 if q else 48, 1 if q else 3, device)
    if not q:   # on a CPU one size shows it (each size compiles anew: about 20 s each)
        compiled = batches if device.type == "cuda" else (64,)
        result["generation_compiled"] = bench_generation(model, tok, compiled, 48, 3, device, compile=True)
    rows = rm_bench.run(model_name, 8 if q else 64, 1 if q else 3, device)
    result["reward_model"] = {r["batching"]: {k: r[k] for k in ("pairs_per_s", "tokens_per_s", "forwarded_tokens_per_s",
                                                                  "forwards_per_prompt", "median_s")} for r in rows}
    rm_name = "tiny-rm" if model_name == "tiny" else None
    world_prompts = ReviewWorld(0).prompts(512, kind="mixed", split="train")
    result["ppo_course"] = bench_ppo(model_name, rm_name, world_prompts, 16 if q else 64, 8 if q else 24,
                                     1 if q else 5, device)
    result["ppo_long"] = bench_ppo(model_name, rm_name, long_prompts(tok, 16 if q else 64), 16 if q else 64,
                                   8 if q else 48, 1 if q else 5, device)
    if device.type == "cuda":   # the memory of all four models: policy, reference, reward and a separate critic
        result["ppo_long_separate_critic"] = bench_ppo(model_name, rm_name, long_prompts(tok, 64), 64, 48, 3, device,
                                                       value_model="separate")
    sizes = (16, 8, 8, 1) if q else (64, 32, 24 if model_name == "tiny" else 48, 5)
    result["group"] = group_bench.bench_group(model_name, rm_name, *sizes[:3], sizes[3], device)
    result["learn_padding_free"] = group_bench.bench_learn(model_name, rm_name, *sizes, device)
    from rlhf_lab.labels.preferences import load_preferences, to_pairs
    import random
    pairs = to_pairs(load_preferences(labeler="sim-gold"))
    random.Random(0).shuffle(pairs)
    t = dpo_bench.step_times(model_name, pairs, 16 if not q else 4, 3 if q else 20, True, device)
    result["dpo"] = {"batch_pairs": 16 if not q else 4, "median_step_s": statistics.median(t),
                     "pairs_per_s": (16 if not q else 4) / statistics.median(t)}
    if args.no_trl:
        result["trl"] = result["trl_group"] = {"skipped": "--no-trl"}
    elif args.profile == "gpu":
        result["trl"] = result["trl_group"] = {
            "skipped": "the TRL comparison runs on the cpu profile (python -m benchmarks.trl_compare, .trl_group)"}
    else:
        result["trl"] = trl_compare.run(steps=3 if q else 30, batch_size=4 if q else 16, repeats=1 if q else 3)
        result["trl_group"] = trl_group.run(iterations=1 if q else 3, repeats=1 if q else 3)
    if "trl_version" in result["trl"]:
        result["versions"]["trl"] = result["trl"]["trl_version"]
    result["wall_s"] = time.perf_counter() - started

    print_table(result)
    out = args.json or runs_dir("benchmarks") / f"{args.profile}{'-quick' if q else ''}.json"
    write_text(out, json.dumps(result, indent=2))
    print(f"\nwritten to {out}")
    return result


def print_table(r: dict) -> None:
    print(f"\nrlhf-lab benchmarks, profile {r['profile']} ({'quick: not for quoting' if r['quick'] else 'full'}), "
          f"model {r['model']!r}")
    print(f"device {r['device']}; " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()) + f"; {r['date']}")
    print(f"{'measure':44s} {'median':>12s}")
    for b, g in r["generation"].items():
        print(f"{'generation, batch ' + b + ', new tokens/s':44s} {g['new_tokens_per_s']:12.0f}")
    for b, g in r.get("generation_compiled", {}).items():
        print(f"{'  static cache + compile, batch ' + b:44s} {g['new_tokens_per_s']:12.0f}"
              f"   (first call, compiling: {g['first_call_s']:.1f} s)")
    for k, v in r["reward_model"].items():
        print(f"{'reward model (' + k + '), sequence tokens/s':44s} {v['tokens_per_s']:12.0f}"
              f"   ({v['forwarded_tokens_per_s']:.0f} forwarded: prompts once per packed group)")
        print(f"{'reward model (' + k + '), comparisons/s':44s} {v['pairs_per_s']:12.1f}")
    for key, label in (("ppo_course", "PPO course setting"), ("ppo_long", "PPO 64-token prompts"),
                       ("ppo_long_separate_critic", "PPO 64-token prompts, separate critic")):
        if key not in r:
            continue
        v = r[key]
        m = v["median_s"]
        name = f"{label} ({v['episodes']} x {v['new_tokens']}), episodes/s"
        print(f"{name:44s} {v['episodes_per_s']:12.1f}"
              f"   generate {m['generate']:.2f} s, score {m['score']:.2f} s, learn {m['learn']:.2f} s, "
              f"iteration {m['iteration']:.2f} s"
              + (f", peak memory {v['peak_memory_gb']:.1f} GB" if "peak_memory_gb" in v else ""))
    if "group" in r:
        g = r["group"]
        for name, v in g.items():
            m = v["median_s"]
            print(f"{name + ' iteration, episodes/s':44s} {v['episodes_per_s']:12.1f}   generate {m['generate']:.2f} s, "
                  f"score {m['score']:.2f} s, learn {m['learn']:.2f} s ({v['episodes_per_s'] / g['PPO']['episodes_per_s']:.2f}x PPO)")
        for name, v in r["learn_padding_free"].items():
            pos = v["positions_per_pass"]
            print(f"{name + ' learn phase, padding-free vs padded':44s} {v['speedup']:11.2f}x   {v['padded_s']:.2f} s -> "
                  f"{v['padding_free_s']:.2f} s; positions/pass {pos['padded']:.0f} -> {pos['padding_free']:.0f}; "
                  f"loss gap {v['max_loss_gap']:.1e}")
    print(f"{'DPO, pairs/s (reference cached)':44s} {r['dpo']['pairs_per_s']:12.1f}")
    t = r["trl"]
    if "skipped" in t:
        print(f"TRL comparison skipped: {t['skipped']}")
    else:
        for k in ("reward", "dpo"):
            v = t[k]
            name = f"{k} vs TRL {t['trl_version']}, pairs/s"
            print(f"{name:44s} {v['rlhf_lab']['pairs_per_s']:12.1f} vs {v['trl']['pairs_per_s']:.1f}: "
                  f"{v['ratio']:.2f}x; loss curves differ by at most {v['max_loss_gap']:.1e} "
                  f"({'same' if v['losses_close'] else 'NOT the same'} training)")
    g = r.get("trl_group", {})
    for k in ("grpo", "rloo") if "skipped" not in g else ():
        v = g[k]
        name = f"{k.upper()} vs TRL {g['trl_version']}, episodes/s"
        print(f"{name:44s} {v['rlhf_lab']['episodes_per_s']:12.1f} vs {v['trl']['episodes_per_s']:.1f}: "
              f"{v['ratio']:.2f}x (runs {v['ratios']}); {'the same' if v['same_work'] else 'NOT the same'} episodes "
              f"and optimizer steps")


if __name__ == "__main__":
    main()
