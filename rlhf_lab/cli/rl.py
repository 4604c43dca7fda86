"""The RL commands of ``rlhf-lab`` (notebooks 05 and 08): PPO with a KL penalty, RLOO and GRPO.

    rlhf-lab ppo                 # PPO with a KL penalty                    -> runs/ppo (--resume continues)
    rlhf-lab rloo / grpo         # critic-free RL from K samples per prompt -> runs/rloo, runs/grpo
    rlhf-lab grpo --no-scale-rewards --loss-type dr_grpo    # Dr. GRPO
    rlhf-lab grpo --reward-model verifier --model runs/spec_sft   # on notebook 09's checkable task

PPO maximises r_phi(x, y) - beta KL(pi || pi_ref) per token (Ziegler et al. 2019, eq. 2; InstructGPT
eq. 2); RLOO (Ahmadian et al. 2024) and GRPO (Shao et al. 2024) drop the critic for a baseline from
the other samples of the same prompt. Every field of the trainer's config is an option
(`rlhf_lab.cli.options.add_config_options`), checked when the config is made, before any model loads.
"""
from __future__ import annotations

import dataclasses

from rlhf_lab.cli.options import add_config_options, config_overrides
from rlhf_lab.config import runs_dir
from rlhf_lab.rl.checkpoints import CHECKPOINT_STATE
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.utils.artefacts import check_writable, read_json, recover
from rlhf_lab.world.reviews import ReviewWorld
from rlhf_lab.world.specs import parse_spec, specs

HELP = {"ppo": "PPO with a per-token KL penalty against the frozen SFT model (notebook 05)",
        "rloo": "RLOO: the leave-one-out mean of the other K-1 samples as baseline, no critic",
        "grpo": "GRPO: group mean and std as baseline, KL in the loss, no critic "
                "(Dr. GRPO: --no-scale-rewards --loss-type dr_grpo)"}


def _trainer(name: str):
    """The trainer of command ``name`` and the preset its options start from (their defaults)."""
    if name == "ppo":
        return PPOTrainer, PPOConfig.tiny()
    return GroupTrainer, GroupConfig.tiny(name)


def add_parsers(sub) -> None:
    for name, what in HELP.items():
        _, base = _trainer(name)
        p = sub.add_parser(name, help=what)
        p.add_argument("--out", help=f"checkpoint folder (default runs/{name})")
        p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out; options given "
                       "here override its config (e.g. --iterations 40 to go further)")
        p.add_argument("--n-prompts", type=int, default=512, help="train prompts of the review world (default 512)")
        p.add_argument("--prompt", action="append", help="your own prompt (repeatable); replaces world prompts")
        add_config_options(p, type(base), base, skip=("algo",))   # the algorithm is the command's name
        p.set_defaults(run=run_rl)


def run_rl(args) -> None:
    """PPO, RLOO and GRPO from the shell: options and --out checked first, then train and summarise."""
    trainer_cls, base = _trainer(args.command)
    out = check_writable(recover(args.out or runs_dir(args.command, create=False)), what="checkpoint folder")
    overrides = config_overrides(args, type(base))
    if args.resume:
        saved = read_json(out / "config.json") if (out / "config.json").exists() else {}
        # PPO's config has no algo; a file that is no dict is reported by resume, with the others
        algo = saved.get("algo", "ppo") if isinstance(saved, dict) else args.command
        if algo != args.command:
            raise ValueError(f"{out} holds a {algo} run; resume it with `rlhf-lab {algo} --resume --out {out}`")
        trainer = trainer_cls.resume(out, **overrides)   # checks every file and option before it loads a model
        print(f"resuming {out} after iteration {len(trainer.history)} of {trainer.cfg.iterations}")
    else:
        if (out / CHECKPOINT_STATE).exists():
            raise ValueError(f"{out} already holds a run; continue it with --resume or choose another --out")
        if args.n_prompts < 1:
            raise ValueError(f"--n-prompts must be at least 1, got {args.n_prompts}")
        cfg = type(base)(**{**dataclasses.asdict(base), **overrides})
        if cfg.reward_model == "verifier":   # notebook 09's checkable task: the prompts are specifications
            for text in args.prompt or []:
                parse_spec(text)            # a prompt the verifier cannot read fails here, before any model loads
            prompts = args.prompt or [s.prompt for s in specs(args.n_prompts, "train")]
        else:
            prompts = args.prompt or ReviewWorld(cfg.seed).prompts(args.n_prompts, kind="mixed", split="train")
        trainer = trainer_cls(cfg, prompts)
    hist = trainer.train(out_dir=out)
    if not len(hist):
        print("nothing to do: the run has already done its iterations (raise --iterations)")
        return
    first, last = hist.rows[0], hist.rows[-1]
    for key in ("objective/scores", "objective/gold", "objective/kl", "objective/entropy", "response/length"):
        print(f"{key:22s} {first[key]:+8.3f} -> {last[key]:+8.3f}")
    t = {k: sum(r[f"time/{k}"] for r in hist.rows) / len(hist) for k in ("generate", "score", "learn", "iteration")}
    print(f"per iteration: generate {t['generate']:.2f} s, score {t['score']:.2f} s, learn {t['learn']:.2f} s, "
          f"total {t['iteration']:.2f} s; checkpoint in {out}")
