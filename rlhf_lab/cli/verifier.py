"""The checkable task's commands of ``rlhf-lab`` (notebook 09): teach the spec form, then learn from a verifier.

    rlhf-lab spec-sft                 # the SFT model fine-tuned on spec demonstrations -> runs/spec_sft
    rlhf-lab grpo --model runs/spec_sft --reward-model verifier --beta 0 --loss-type dapo --num-generations 8 \\
                  --unfinished-score none                   # GRPO on the verifier's 0/1 reward -> runs/grpo
    rlhf-lab rft --model runs/spec_sft                      # rejection-sampling fine-tuning  -> runs/rft
    rlhf-lab rft --model runs/spec_sft --select random --match runs/rft --out runs/rft-random
                                                            # its control: as many per round, at random

A specification ('Write a 2-star review of the ending of "The Paper Monsoon".') is checked exactly by
`rlhf_lab.world.specs.verify`; ``--reward-model verifier`` makes it the reward of ``ppo``, ``rloo`` and ``grpo``
(their prompts are then the training specifications). Every option is checked before any model loads.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from rlhf_lab.cli.options import add_config_options, command_line, config_overrides
from rlhf_lab.config import get_device, runs_dir, set_seed
from rlhf_lab.lm.finetune import FineTuneConfig, fine_tune
from rlhf_lab.lm.models import load_model, save_policy
from rlhf_lab.rl.rejection_sampling import RFTConfig, rejection_sampling_finetune, sample_verdicts
from rlhf_lab.utils.artefacts import check_writable, read_json, recover
from rlhf_lab.world.specs import demonstrations, specs

HELD_OUT = 64
"""Held-out (val) specifications each command reads the pass rate on, 4 samples each."""


def add_parsers(sub) -> None:
    p = sub.add_parser("spec-sft", help="teach the SFT model the spec form: a short fine-tuning on spec demonstrations "
                       "the grammar writes (notebook 09)")
    p.add_argument("--model", default="tiny", help="the SFT model to fine-tune (default tiny; gpt2's: runs/gpu/sft)")
    p.add_argument("--n-demos", type=int, default=2000, help="spec demonstrations (default 2000)")
    p.add_argument("--out", help="output folder (default runs/spec_sft)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    add_config_options(p, FineTuneConfig, FineTuneConfig.tiny())
    p.set_defaults(run=run_spec_sft)

    p = sub.add_parser("rft", help="rejection-sampling fine-tuning (expert iteration) on the verifier, or its "
                       "random control (--select random)")
    p.add_argument("--n-prompts", type=int, default=512, help="training specifications (default 512)")
    p.add_argument("--match", help="with --select random: a selected run's folder (from `rlhf-lab rft`); keep as many "
                   "completions per round as it kept, so that only the selection differs")
    p.add_argument("--out", help="output folder (default runs/rft)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    add_config_options(p, RFTConfig, RFTConfig.tiny())
    p.set_defaults(run=run_rft)


def _held_out_pass_rate(model, tok, seed: int) -> float:
    return sample_verdicts(model, tok, specs(HELD_OUT, "val"), 4, seed=seed)["passed"].float().mean().item()


def run_spec_sft(args) -> None:
    """Fine-tune --model on --n-demos spec demonstrations; print the held-out pass rate before and after."""
    if args.n_demos < 1:
        raise ValueError(f"--n-demos must be at least 1, got {args.n_demos}")
    cfg = dataclasses.replace(FineTuneConfig.tiny(), **config_overrides(args, FineTuneConfig))
    out = check_writable(recover(args.out or runs_dir("spec_sft", create=False)))
    model, tok = load_model(args.model, role="policy", device=get_device(args.device))
    before = _held_out_pass_rate(model, tok, cfg.seed)
    hist = fine_tune(model, tok, demonstrations(args.n_demos), cfg, desc="spec-form fine-tuning")
    after = _held_out_pass_rate(model, tok, cfg.seed)
    save_policy(model, tok, out, metadata={"command": command_line(args), "config": dataclasses.asdict(cfg),
                                           "base": args.model, "n_demos": args.n_demos,
                                           "held_out_pass_rate": {"before": before, "after": after}})
    print(f"pass rate on {HELD_OUT} held-out specifications: {before:.3f} before, {after:.3f} after "
          f"({hist.wall_time_s:.0f} s of fine-tuning); saved to {out}")


def run_rft(args) -> None:
    """Rejection sampling on --n-prompts training specifications, from --model; the policy and its rounds to --out."""
    if args.n_prompts < 1:
        raise ValueError(f"--n-prompts must be at least 1, got {args.n_prompts}")
    cfg = RFTConfig(**{**dataclasses.asdict(RFTConfig.tiny()), **config_overrides(args, RFTConfig)})
    if cfg.prompts_per_round > args.n_prompts:
        raise ValueError(f"--prompts-per-round ({cfg.prompts_per_round}) is more than --n-prompts ({args.n_prompts})")
    match = _matched_counts(args.match, cfg) if args.match else None
    out = check_writable(recover(args.out or runs_dir("rft", create=False)))
    set_seed(cfg.seed)
    policy, tok = load_model(cfg.model, role="policy", device=get_device(args.device))
    before = _held_out_pass_rate(policy, tok, cfg.seed)
    rows = rejection_sampling_finetune(specs(args.n_prompts, "train"), cfg, policy, tok, match=match)
    after = _held_out_pass_rate(policy, tok, cfg.seed)
    save_policy(policy, tok, out, metadata={"command": command_line(args), "config": dataclasses.asdict(cfg),
                                            "rounds": rows, "matched_to": args.match,
                                            "held_out_pass_rate": {"before": before, "after": after}})
    for r in rows:
        print(f"round {r['round']}: pass rate {r['pass_rate']:.3f} of {cfg.prompts_per_round * cfg.num_generations} "
              f"samples, kept {r['kept']}, {r['steps']} fine-tuning steps")
    print(f"pass rate on {HELD_OUT} held-out specifications: {before:.3f} before, {after:.3f} after; saved to {out}")


def _matched_counts(folder: str, cfg: RFTConfig) -> list[int]:
    """The kept counts, round by round, of the selected run saved in ``folder``, checked against ``cfg``."""
    meta = read_json(recover(Path(folder)) / "metadata.json", "rejection-sampling run",
                     "Give the folder of a run made by `rlhf-lab rft` (select passing).")
    rounds = meta.get("rounds") if isinstance(meta, dict) else None
    if not rounds or meta.get("config", {}).get("select") != "passing":
        raise ValueError(f"--match {folder}: not a selected (--select passing) rejection-sampling run")
    if cfg.select != "random" or len(rounds) != cfg.rounds:
        raise ValueError(f"--match needs --select random and as many rounds as the matched run ({len(rounds)}); "
                         f"got --select {cfg.select} and --rounds {cfg.rounds}")
    return [int(r["kept"]) for r in rounds]
