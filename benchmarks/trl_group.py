"""rlhf-lab's GRPO and RLOO against TRL's GRPOTrainer and RLOOTrainer on the same work.

    pip install -e ".[trl]"          # the optional extra: trl and what it needs
    python -m benchmarks.trl_group [--iterations 3] [--repeats 3]

Both sides train the embedded SFT model (as rlhf-lab's loader gives it, fused GELU included; TRL's
reference model is replaced by the same load) on the same 16 prompts per iteration, sampled K = 4
times each (64 episodes), at temperature 0.7 with no top-k or top-p, up to 24 new tokens, scored by
one shared reward function (the shipped reward model `tiny-rm`), with the KL to the frozen reference
at beta = 0.05, then 4 passes (TRL's num_iterations) over the batch in minibatches of 32 completions:
8 optimizer steps per iteration, AdamW (eps 1e-5, constant learning rate 1e-4, gradient clipping at
1), float32, no dropout, no gradient checkpointing (TRL's default is on: it would recompute every
forward in the backward, work rlhf-lab does not do). Both compute the old log-probs, the reference's and the entropies with a forward each.

GRPO is configured alike on both sides (group std scaling, loss_type "grpo", k3 KL in the loss).
TRL's RLOO clips one sequence-level ratio with the KL in the reward; rlhf-lab's RLOO clips per
token (loss_type "dapo") with the KL in the reward: the same forwards and backwards, a different
surrogate on top of them.

The sampled completions differ between the sides (their random streams differ), so the losses
cannot be compared step for step as in `benchmarks.trl_compare`. What proves the same work: the
shared reward function counts the completions each side scored (64 per iteration), each side's
optimizer steps are counted, and the mean completion lengths are printed side by side (tokens
forwarded). The timed region is the training loop: TRL's ``trainer.train()`` from the first step's
start to the last step's end (generation happens inside the steps); rlhf-lab's ``train()``
(its iterations also run the gold judges, which TRL does not have). Model loading is outside on both sides.
Runs alternate (rlhf-lab, TRL, rlhf-lab, ...) and the ratio is the median of per-repeat ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from rlhf_lab.utils.artefacts import write_text
from rlhf_lab.config import set_seed
from rlhf_lab.lm.models import load_model
from rlhf_lab.world.reviews import ReviewWorld

from .trl_compare import _quiet, trl_available

K, PROMPTS_PER_ITERATION, NEW_TOKENS, TEMPERATURE, BETA, LR, MINI_BATCH, PASSES = 4, 16, 24, 0.7, 0.05, 1e-4, 32, 4
STEPS_PER_ITERATION = PASSES * PROMPTS_PER_ITERATION * K // MINI_BATCH


class CountingReward:
    """The reward function both sides call: the shipped reward model's scores, and a count of the
    completions scored and their mean length in tokens (the work each side did)."""

    __name__ = "tiny_rm"   # TRL names its reward metrics after the function

    def __init__(self):
        from rlhf_lab.reward.model import load_reward_model

        self.rm = load_reward_model("tiny-rm").eval().requires_grad_(False)
        self.calls, self.completions, self.tokens = 0, 0, 0

    def scores(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        self.calls += 1
        self.completions += len(completions)
        self.tokens += sum(len(self.rm.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
        with torch.no_grad():
            return self.rm.score(prompts, completions, batch_size=len(prompts)).float()

    def __call__(self, prompts, completions, **kwargs) -> list[float]:   # TRL's reward_funcs signature
        return self.scores(list(prompts), list(completions)).tolist()


def _prompts(iterations: int) -> list[str]:
    return [p.text for p in ReviewWorld(0).prompts(PROMPTS_PER_ITERATION * iterations, kind="mixed", split="train")]


def ours(algo: str, iterations: int) -> dict:
    from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer

    texts = _prompts(iterations)
    reward = CountingReward()
    cfg = replace(GroupConfig.tiny(algo), iterations=iterations, batch_size=PROMPTS_PER_ITERATION * K,
                  num_generations=K, mini_batch_size=MINI_BATCH, num_iterations=PASSES, lr=LR, beta=BETA,
                  max_new_tokens=NEW_TOKENS, temperature=TEMPERATURE, device="cpu", seed=0)
    trainer = GroupTrainer(cfg, texts, reward_fn=reward.scores)
    steps, step = [0], trainer.optimizer.step

    def counted(*a, **kw):
        steps[0] += 1
        return step(*a, **kw)

    trainer.optimizer.step = counted
    start = time.perf_counter()
    trainer.train(progress=False)      # iterations of 16 prompts drawn from the same prompts as TRL's
    seconds = time.perf_counter() - start
    return _result(seconds, reward, steps[0])


def theirs(algo: str, iterations: int) -> dict:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
    from trl.trainer.utils import add_fused_lm_head

    from .trl_compare import _Timer

    texts = _prompts(iterations)
    reward = CountingReward()
    set_seed(0)
    policy, tok = load_model("tiny", role="policy")
    config_cls, trainer_cls = (GRPOConfig, GRPOTrainer) if algo == "grpo" else (RLOOConfig, RLOOTrainer)
    extra = {"loss_type": "grpo", "scale_rewards": "group"} if algo == "grpo" else {}
    timer = _Timer()
    with tempfile.TemporaryDirectory() as out:
        args = config_cls(
            output_dir=out, per_device_train_batch_size=MINI_BATCH, steps_per_generation=PROMPTS_PER_ITERATION * K
            // MINI_BATCH, num_generations=K, num_iterations=PASSES, max_steps=iterations * STEPS_PER_ITERATION,
            learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
            adam_epsilon=1e-5, optim="adamw_torch_fused", beta=BETA, epsilon=0.2, temperature=TEMPERATURE, top_k=0,
            top_p=1.0, max_completion_length=NEW_TOKENS, shuffle_dataset=False, logging_steps=1, save_strategy="no",
            report_to=[], disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, seed=0, bf16=False, fp16=False,
            log_completions=False, gradient_checkpointing=False, disable_dropout=True, **extra)
        trainer = trainer_cls(model=policy, reward_funcs=[reward], args=args,
                              train_dataset=Dataset.from_dict({"prompt": texts}), processing_class=tok,
                              callbacks=[timer.callback])
        # the same reference as rlhf-lab's (TRL would load the folder again without the fused GELU)
        reference = load_model("tiny", role="reference")[0]
        add_fused_lm_head(reference, temperature=TEMPERATURE)   # as TRL patches its own reference
        trainer.ref_model = reference
        _quiet(trainer)
        trainer.train()
        steps = trainer.state.global_step
    return _result(timer.end - timer.start, reward, steps)


def _result(seconds: float, reward: CountingReward, steps: int) -> dict:
    return {"seconds": seconds, "episodes": reward.completions, "episodes_per_s": reward.completions / seconds,
            "optimizer_steps": steps, "mean_completion_tokens": reward.tokens / max(reward.completions, 1)}


def run(iterations: int = 3, repeats: int = 3) -> dict:
    """GRPO and RLOO, ``repeats`` times with the sides alternating: medians, ratios and the work check."""
    if not trl_available():
        return {"skipped": "TRL is not installed (pip install -e '.[trl]')"}
    import trl

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = {"trl_version": trl.__version__, "iterations": iterations, "repeats": repeats,
           "episodes_per_iteration": PROMPTS_PER_ITERATION * K, "optimizer_steps_per_iteration": STEPS_PER_ITERATION}
    for algo in ("grpo", "rloo"):
        a, b = [], []
        for _ in range(repeats):
            a.append(ours(algo, iterations))
            b.append(theirs(algo, iterations))
        ratios = [x["episodes_per_s"] / y["episodes_per_s"] for x, y in zip(a, b)]
        same = all(x["episodes"] == y["episodes"] == iterations * PROMPTS_PER_ITERATION * K
                   and x["optimizer_steps"] == y["optimizer_steps"] == iterations * STEPS_PER_ITERATION
                   for x, y in zip(a, b))
        out[algo] = {"rlhf_lab": _median(a), "trl": _median(b), "ratio": statistics.median(ratios),
                     "ratios": [round(r, 3) for r in ratios], "same_work": same}
    return out


def _median(runs: list[dict]) -> dict:
    return {**{k: statistics.median(r[k] for r in runs) for k in runs[0]},
            "runs_episodes_per_s": [round(r["episodes_per_s"], 1) for r in runs]}


def print_table(res: dict) -> None:
    if "skipped" in res:
        print(f"TRL comparison skipped: {res['skipped']}")
        return
    print(f"\nrlhf-lab against TRL {res['trl_version']}: {res['iterations']} iterations of "
          f"{res['episodes_per_iteration']} episodes (16 prompts x K = 4, <= {NEW_TOKENS} new tokens) and "
          f"{res['optimizer_steps_per_iteration']} optimizer steps each; medians of {res['repeats']} runs, "
          f"sides alternating")
    print(f"{'method':6s} {'rlhf-lab ep/s':>14s} {'TRL ep/s':>9s} {'ratio':>7s} {'per run':>22s} {'tokens/completion':>18s}"
          f" {'same work':>10s}")
    for algo in ("grpo", "rloo"):
        v = res[algo]
        print(f"{algo.upper():6s} {v['rlhf_lab']['episodes_per_s']:14.1f} {v['trl']['episodes_per_s']:9.1f} "
              f"{v['ratio']:6.2f}x {str(v['ratios']):>22s} "
              f"{v['rlhf_lab']['mean_completion_tokens']:8.1f} vs {v['trl']['mean_completion_tokens']:<6.1f}"
              f" {'yes' if v['same_work'] else 'NO':>10s}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args(argv)
    res = run(args.iterations, args.repeats)
    print_table(res)
    if args.json:
        write_text(args.json, json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
