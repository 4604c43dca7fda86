"""DPO training throughput: pairs per second, with the reference log-probs cached or recomputed.

    python -m benchmarks.dpo [--steps 20] [--batch-size 16] [--model tiny]

One DPO step forwards the B pairs through the policy (one packed row per pair: the prompt once,
both completions after it; `rlhf_lab.rl.dpo.pair_logps`), takes the loss of DPO eq. 7 and one
Adam step. The reference pi_ref never changes, so `train_dpo` computes its
log-probs once before training; the alternative is one more (gradient-free) forward of the
reference at every step. Both are timed on the same pairs of the shipped labels, side by side,
as medians over ``--steps`` steps after two warm-up steps; then one end-to-end `train_dpo` run
reports its own pairs per second and the one-off cost of the reference pass.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import adamw, get_device, set_seed
from rlhf_lab.rl.dpo import DPOConfig, dpo_loss, pair_logps, train_dpo
from rlhf_lab.lm.models import load_model
from rlhf_lab.labels.preferences import load_preferences, to_pairs

from . import device_name, sync



def step_times(model: str, pairs: list[dict], batch_size: int, steps: int, cached: bool, device) -> list[float]:
    set_seed(0)
    policy, tok = load_model(model, role="policy", device=device)
    reference, _ = load_model(model, role="reference", device=device)
    policy.eval()
    opt = adamw(policy.parameters(), lr=1e-5)
    batches = [pairs[i:i + batch_size] for i in range(0, batch_size * (steps + 2), batch_size)]
    cache = {}
    if cached:   # what train_dpo does before its first step (not timed here; reported by the end-to-end run)
        with torch.no_grad():
            for n, rows in enumerate(batches):
                cache[n] = pair_logps(reference, tok, rows)
    times = []
    for n, rows in enumerate(batches):
        start = time.perf_counter()
        if cached:
            ref = cache[n]
        else:
            with torch.no_grad():
                ref = pair_logps(reference, tok, rows)
        chosen, rejected = pair_logps(policy, tok, rows)
        loss, _ = dpo_loss(chosen, rejected, ref[0], ref[1], beta=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if n >= 2:
            times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--end-to-end-pairs", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    device = get_device(args.device)
    records = load_preferences(labeler="sim-gold")
    pairs = to_pairs(records)
    random.Random(0).shuffle(pairs)   # batches mix prompts and lengths, as in train_dpo
    rows = {}
    for cached in (True, False):
        t = step_times(args.model, pairs, args.batch_size, args.steps, cached, device)
        rows["cached" if cached else "recomputed"] = {"median_step_s": statistics.median(t),
                                                      "pairs_per_s": args.batch_size / statistics.median(t)}
    cfg = DPOConfig(model=args.model, max_pairs=args.end_to_end_pairs, batch_size=args.batch_size,
                    eval_every=10**9, device=str(device))
    _, hist = train_dpo(cfg, records, progress=False)
    name = device_name(device)
    print(f"\nDPO training, model {args.model!r}, {args.batch_size} pairs per step, device {device} ({name}), "
          f"torch {torch.__version__}")
    print(f"{'reference':11s} {'median step s':>13s} {'pairs/s':>8s}   (medians of {args.steps} steps)")
    for k, r in rows.items():
        print(f"{k:11s} {r['median_step_s']:13.3f} {r['pairs_per_s']:8.1f}")
    print(f"cached / recomputed: {rows['cached']['pairs_per_s'] / rows['recomputed']['pairs_per_s']:.2f}x the pairs per second")
    print(f"end to end, train_dpo on {hist.n_train_pairs} pairs: {hist.pairs_per_s:.1f} pairs/s of training, plus "
          f"{hist.reference_s:.1f} s once for the reference log-probs of {hist.n_train_pairs + hist.n_val_pairs} pairs "
          f"(train and held-out); {len(hist.val_steps)} held-out evaluations took {hist.val_s:.1f} s more")
    if args.json:
        write_text(args.json, json.dumps({"steps": rows, "end_to_end": {
            "pairs_per_s": hist.pairs_per_s, "reference_s": hist.reference_s, "pairs": hist.n_train_pairs},
            "device": name, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
