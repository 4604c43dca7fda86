"""rlhf-lab against TRL on the same work: reward-model training and DPO.

    pip install -e ".[trl]"          # the optional extra: trl and what it needs
    python -m benchmarks.trl_compare [--steps 30] [--batch-size 16] [--repeats 3]

Both sides train the same model (the embedded SFT transformer as rlhf-lab's loader gives it,
fused GELU included, with the same initial reward head) on the same (prompt, chosen, rejected)
pairs of the shipped sim-gold labels, in the same order (no shuffling on either side: step t
sees the same pairs), with the same batch of pairs, the same number of optimizer steps, the
same optimizer (fused AdamW, constant learning rate, no warm-up, gradient clipping at 1), in
float32, with no evaluation inside the timed loop. For DPO both sides precompute the reference
log-probs once (TRL's precompute_ref_log_probs), timed apart. The timed region is the training
loop (TRL's ``trainer.train()`` from the first step's start to the last step's end; rlhf-lab's
optimizer loop); model loading is excluded on both sides, TRL's tokenisation too (it tokenises
the data set beforehand) while rlhf-lab tokenises each text on first sight inside its loop.

Since both sides start from the same weights and see the same batches, their losses agree step
for step up to float rounding: the check compares the whole loss curves (the largest gap over
all steps and repeats must stay under LOSS_TOLERANCE), which guards against either side doing
less or different work. Where the speed comes from: rlhf-lab packs each pair into one row, the
prompt forwarded once for both completions (rlhf_lab.lm.packing), with less padding; TRL forwards
the prompt with each completion. Both run the unembedding on completion tokens only.

The reward-model comparison is pair for pair: rlhf-lab's "shuffled" batching forwards both
completions of every pair, as TRL's RewardTrainer does. rlhf-lab's grouped batching
(InstructGPT) does less work per pair by design and is reported beside it, not as the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import set_seed
from rlhf_lab.lm.models import load_model, load_tokenizer
from rlhf_lab.labels.preferences import load_preferences, to_pairs


def trl_available() -> bool:
    try:
        import trl  # noqa: F401
        return True
    except ImportError:
        return False


def _pairs(n: int) -> list[dict]:
    pairs = to_pairs(load_preferences(labeler="sim-gold"))
    return pairs[:n]


def _as_records(pairs: list[dict]):
    """Each (prompt, chosen, rejected) pair as a ranking of K = 2, the form rlhf-lab's trainers read."""
    from rlhf_lab.labels.store import PreferenceRecord

    return [PreferenceRecord(prompt_id=f"p{i}", prompt=p["prompt"], completions=[p["chosen"], p["rejected"]],
                             ranking=[0, 1], labeler="bench", source="simulated", model="tiny")
            for i, p in enumerate(pairs)]


def _trl_args(cls, steps: int, batch_size: int, lr: float, out: str, **extra):
    return cls(output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
               lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
               logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
               train_sampling_strategy="sequential",   # the pairs in the given order, as rlhf-lab's shuffle=False
               dataloader_num_workers=0, seed=0, bf16=False, fp16=False, **extra)


class _Timer:
    """A TRL callback: wall time from the first step's start to the last step's end, and the losses."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if timer.start is None:
                    timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.end = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    timer.losses.append(logs["loss"])

        self.start, self.end, self.losses, self.callback = None, None, [], CB()


def _initial_head() -> torch.Tensor:
    """The reward head rlhf-lab initialises under seed 0 (TRL's score layer gets the same weights)."""
    from rlhf_lab.reward.model import RewardModel

    set_seed(0)
    return RewardModel.from_backbone("tiny", device="cpu").head.weight.detach().clone()


def _quiet(trainer) -> None:
    """No per-step log lines on stdout (the losses still reach the timer's on_log)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)


def reward_trl(pairs, steps: int, batch_size: int, lr: float) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rlhf_lab.lm.models import fused_gelu, resolve

    tok = load_tokenizer("tiny")
    set_seed(0)
    # the same model as rlhf-lab's loader gives (fused tanh GELU, rlhf_lab.lm.models.fused_gelu)
    model = fused_gelu(AutoModelForSequenceClassification.from_pretrained(resolve("tiny")[1], num_labels=1))
    model.config.pad_token_id = tok.pad_token_id
    with torch.no_grad():   # the same starting head as rlhf-lab's (its bias, absent in TRL, cancels in the loss)
        model.score.weight.copy_(_initial_head())
    # TRL adds EOS to each completion, as rlhf-lab's RewardModel.encode does
    data = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                              for p in pairs[:steps * batch_size]])
    timer = _Timer()
    with tempfile.TemporaryDirectory() as out:
        args = _trl_args(RewardConfig, steps, batch_size, lr, out, max_length=128, center_rewards_coefficient=None)
        trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                callbacks=[timer.callback])
        _quiet(trainer)
        trainer.train()
    seconds = timer.end - timer.start
    return _result(seconds, steps * batch_size, timer.losses)


def _result(seconds: float, pairs: int, losses: list[float], **extra) -> dict:
    return {"seconds": seconds, "pairs_per_s": pairs / seconds, "final_loss": statistics.mean(losses[-5:]),
            "losses": [round(x, 5) for x in losses], **extra}


def reward_ours(pairs, steps: int, batch_size: int, lr: float, batching: str) -> dict:
    from rlhf_lab.reward.train import RewardConfig, train_reward_model
    from rlhf_lab.reward.model import RewardModel

    # one record per pair (K = 2), so "shuffled" and TRL see exactly the same pairs and steps
    records = _as_records(pairs[:steps * batch_size])
    set_seed(0)
    rm = RewardModel.from_backbone("tiny", device="cpu")
    cfg = RewardConfig(batching=batching, epochs=1, prompts_per_batch=batch_size, pairs_per_batch=batch_size,
                       lr=lr, eval_every=10**9, shuffle=False)
    _, hist = train_reward_model(cfg, records, val_records=[], rm=rm, progress=False)
    # the optimizer loop, as TRL's timer (not the final centring pass TRL does not do)
    return _result(hist.train_s, hist.pairs_seen, hist.loss)


def dpo_trl(pairs, steps: int, batch_size: int, lr: float, beta: float) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tok = load_tokenizer("tiny")
    set_seed(0)
    policy, _ = load_model("tiny", role="policy")
    reference, _ = load_model("tiny", role="reference")
    data = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                              for p in pairs[:steps * batch_size]])
    timer = _Timer()
    with tempfile.TemporaryDirectory() as out:
        args = _trl_args(DPOConfig, steps, batch_size, lr, out, beta=beta, max_length=128,
                         precompute_ref_log_probs=True)
        t0 = time.perf_counter()
        trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data, processing_class=tok,
                             callbacks=[timer.callback])
        _quiet(trainer)
        trainer.train()
        total = time.perf_counter() - t0
    seconds = timer.end - timer.start
    # tokenising, the reference pass and the Trainer's set-up, outside the timed loop
    return _result(seconds, steps * batch_size, timer.losses, reference_and_setup_s=total - seconds)


def dpo_ours(pairs, steps: int, batch_size: int, lr: float, beta: float) -> dict:
    from rlhf_lab.rl.dpo import DPOConfig, train_dpo

    records = _as_records(pairs[:steps * batch_size])
    cfg = DPOConfig(beta=beta, lr=lr, batch_size=batch_size, eval_every=10**9, device="cpu", shuffle=False)
    _, hist = train_dpo(cfg, records, val_records=[], progress=False)
    return _result(hist.wall_time_s - hist.val_s, hist.n_train_pairs, hist.loss, reference_and_setup_s=hist.reference_s)


LOSS_TOLERANCE = 1e-3
"""Largest allowed difference between the two loss curves at any step: same weights and batches
leave only float rounding (different kernels, summation orders) to tell them apart."""


def _side_by_side(ours: list[dict], theirs: list[dict], **extra) -> dict:
    """Medians over repeats of each side, the median of the per-repeat ratios, and the loss check."""
    ratios = [a["pairs_per_s"] / b["pairs_per_s"] for a, b in zip(ours, theirs)]
    gap = max(abs(x - y) for a, b in zip(ours, theirs) for x, y in zip(a["losses"], b["losses"], strict=True))
    return {"rlhf_lab": _median_run(ours), "trl": _median_run(theirs), **extra, "ratio": statistics.median(ratios),
            "ratios": [round(r, 3) for r in ratios], "max_loss_gap": gap, "losses_close": gap < LOSS_TOLERANCE}


def _median_run(runs: list[dict]) -> dict:
    """The median of each number over repeats (losses: the first run's; they repeat exactly)."""
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "losses"}
    return {**out, "losses": runs[0]["losses"], "runs_pairs_per_s": [round(r["pairs_per_s"], 1) for r in runs]}


def run(steps: int = 30, batch_size: int = 16, lr: float = 1e-4, beta: float = 0.1, repeats: int = 3) -> dict:
    """Both comparisons, ``repeats`` times with the sides alternating; each side's median pairs/s,
    the median ratio rlhf-lab / TRL, and the loss-curve check."""
    if not trl_available():
        return {"skipped": "TRL is not installed (pip install -e '.[trl]')"}
    import trl

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pairs = _pairs(steps * batch_size)
    runs = {k: [] for k in ("rm_ours", "rm_grouped", "rm_trl", "dpo_ours", "dpo_trl")}
    for _ in range(repeats):
        runs["rm_ours"].append(reward_ours(pairs, steps, batch_size, lr, "shuffled"))
        runs["rm_grouped"].append(reward_ours(pairs, steps, batch_size, lr, "grouped"))
        runs["rm_trl"].append(reward_trl(pairs, steps, batch_size, lr))
        runs["dpo_ours"].append(dpo_ours(pairs, steps, batch_size, lr, beta))
        runs["dpo_trl"].append(dpo_trl(pairs, steps, batch_size, lr, beta))
    return {"trl_version": trl.__version__, "steps": steps, "batch_size": batch_size, "repeats": repeats,
            "reward": _side_by_side(runs["rm_ours"], runs["rm_trl"],
                                    rlhf_lab_grouped_k2=_median_run(runs["rm_grouped"])),
            "dpo": _side_by_side(runs["dpo_ours"], runs["dpo_trl"])}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args(argv)
    res = run(args.steps, args.batch_size, repeats=args.repeats)
    print(json.dumps(res, indent=2))
    if args.json:
        write_text(args.json, json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
