"""rlhf-lab against TRL on the same work: reward-model training and DPO.

    pip install -e ".[trl]"          # the optional extra: trl and what it needs
    python -m benchmarks.trl_compare [--steps 30] [--batch-size 16]

Both sides train the same model (the embedded SFT transformer), on the same (prompt, chosen,
rejected) pairs from the shipped sim-gold labels, in the same order, with the same batch of
pairs, the same number of optimizer steps, the same optimizer (AdamW, constant learning rate, no
warm-up, gradient clipping at 1), float32 and no logging or evaluation inside the timed loop.
For DPO both sides precompute the reference log-probs once (TRL's precompute_ref_log_probs)
and that pass is timed apart. The timed region is the training loop only (TRL's
``trainer.train()``; rlhf-lab's train loop); tokenisation and model loading are excluded on both
sides. A check that both reach a similar final loss (mean of the last steps) guards against
one side doing less work.

The reward-model comparison is pair for pair: rlhf-lab's "shuffled" batching forwards both
completions of every pair, as TRL's RewardTrainer does. rlhf-lab's grouped batching
(InstructGPT) does less work per pair by design and is reported beside it, not as the ratio.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time

import torch

from rlhf_lab.config import set_seed
from rlhf_lab.models import load_model, load_tokenizer
from rlhf_lab.preferences import load_preferences, to_pairs


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
    from rlhf_lab.store import PreferenceRecord

    return [PreferenceRecord(prompt_id=f"p{i}", prompt=p["prompt"], completions=[p["chosen"], p["rejected"]],
                             ranking=[0, 1], labeler="bench", source="simulated", model="tiny")
            for i, p in enumerate(pairs)]


def _trl_args(cls, steps: int, batch_size: int, lr: float, out: str, **extra):
    return cls(output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
               lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
               logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
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


def reward_trl(pairs, steps: int, batch_size: int, lr: float) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rlhf_lab.models import resolve

    tok = load_tokenizer("tiny")
    set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(resolve("tiny")[1], num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    # TRL adds EOS to each completion, as rlhf-lab's RewardModel.encode does
    data = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                              for p in pairs[:steps * batch_size]])
    timer = _Timer()
    with tempfile.TemporaryDirectory() as out:
        args = _trl_args(RewardConfig, steps, batch_size, lr, out, max_length=128, center_rewards_coefficient=None)
        trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                callbacks=[timer.callback])
        trainer.train()
    seconds = timer.end - timer.start
    return {"seconds": seconds, "pairs_per_s": steps * batch_size / seconds, "final_loss": statistics.mean(timer.losses[-5:])}


def reward_ours(pairs, steps: int, batch_size: int, lr: float, batching: str) -> dict:
    from rlhf_lab.reward import RewardConfig, RewardModel, train_reward_model

    # one record per pair (K = 2), so "shuffled" and TRL see exactly the same pairs and steps
    records = _as_records(pairs[:steps * batch_size])
    set_seed(0)
    rm = RewardModel.from_backbone("tiny", device="cpu")
    cfg = RewardConfig(batching=batching, epochs=1, prompts_per_batch=batch_size, pairs_per_batch=batch_size,
                       lr=lr, eval_every=10**9)
    _, hist = train_reward_model(cfg, records, val_records=[], rm=rm, progress=False)
    seconds = hist.train_s   # the optimizer loop, as TRL's timer (not the final centring pass TRL does not do)
    return {"seconds": seconds, "pairs_per_s": hist.pairs_seen / seconds, "final_loss": statistics.mean(hist.loss[-5:])}


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
        trainer.train()
        total = time.perf_counter() - t0
    seconds = timer.end - timer.start
    return {"seconds": seconds, "pairs_per_s": steps * batch_size / seconds, "final_loss": statistics.mean(timer.losses[-5:]),
            "reference_and_setup_s": total - seconds}   # tokenising, the reference pass and Trainer set-up


def dpo_ours(pairs, steps: int, batch_size: int, lr: float, beta: float) -> dict:
    from rlhf_lab.dpo import DPOConfig, train_dpo

    records = _as_records(pairs[:steps * batch_size])
    cfg = DPOConfig(beta=beta, lr=lr, batch_size=batch_size, eval_every=10**9, device="cpu")
    _, hist = train_dpo(cfg, records, val_records=[], progress=False)
    seconds = hist.wall_time_s - hist.val_s
    return {"seconds": seconds, "pairs_per_s": hist.pairs_per_s, "final_loss": statistics.mean(hist.loss[-5:]),
            "reference_and_setup_s": hist.reference_s}   # the reference pass (tokenising happens inside each step)


def run(steps: int = 30, batch_size: int = 16, lr: float = 1e-4, beta: float = 0.1) -> dict:
    """Both comparisons; each side's pairs/s, the ratio rlhf-lab / TRL, and the loss check."""
    if not trl_available():
        return {"skipped": "TRL is not installed (pip install -e '.[trl]')"}
    import trl

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pairs = _pairs(steps * batch_size)
    out = {"trl_version": trl.__version__, "steps": steps, "batch_size": batch_size}
    ours_rm, ours_grouped, theirs_rm = (reward_ours(pairs, steps, batch_size, lr, "shuffled"),
                                        reward_ours(pairs, steps, batch_size, lr, "grouped"),
                                        reward_trl(pairs, steps, batch_size, lr))
    out["reward"] = {"rlhf_lab": ours_rm, "trl": theirs_rm, "rlhf_lab_grouped_k2": ours_grouped,
                     "ratio": ours_rm["pairs_per_s"] / theirs_rm["pairs_per_s"],
                     "losses_close": math.isclose(ours_rm["final_loss"], theirs_rm["final_loss"], abs_tol=0.15)}
    ours_dpo, theirs_dpo = dpo_ours(pairs, steps, batch_size, lr, beta), dpo_trl(pairs, steps, batch_size, lr, beta)
    out["dpo"] = {"rlhf_lab": ours_dpo, "trl": theirs_dpo, "ratio": ours_dpo["pairs_per_s"] / theirs_dpo["pairs_per_s"],
                  "losses_close": math.isclose(ours_dpo["final_loss"], theirs_dpo["final_loss"], abs_tol=0.15)}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json")
    args = p.parse_args(argv)
    res = run(args.steps, args.batch_size)
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
