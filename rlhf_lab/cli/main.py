"""The ``rlhf-lab`` command: pretrain and fine-tune the embedded model, and sample from any model.

    rlhf-lab pretrain            # UPT on the review world   -> runs/models/tiny-upt
    rlhf-lab sft                 # SFT on demonstrations     -> runs/models/tiny-sft
    rlhf-lab sample --n 8        # eight reviews with their gold scores
    rlhf-lab label --simulated   # simulated labelers rank K completions -> runs/preferences
    rlhf-lab label-set make --n 20 --k 4 --out class-set.jsonl   # one set a whole class ranks
    rlhf-lab labels pool DIR --set class-set.jsonl --out pooled.jsonl   # a class's labels + agreement
    rlhf-lab reward              # Bradley-Terry reward model on the labels -> runs/reward_model
    rlhf-lab ppo                 # PPO with a KL penalty                    -> runs/ppo (--resume continues)
    rlhf-lab rloo / grpo         # critic-free RL from K samples per prompt     -> runs/rloo, runs/grpo
                                 # (Dr. GRPO: rlhf-lab grpo --no-scale-rewards --loss-type dr_grpo)
    rlhf-lab prepare --profile gpu   # the gpu course's chain: SFT -> labels -> reward model, under runs/gpu

Outputs go under ``runs/`` (``$RLHF_LAB_RUNS``), never over the shipped ``data/``, unless
``--out`` names another folder. Every option is checked before any model is loaded (a bad
value is a one-line error and exit status 2), the output folder is checked for writing first,
and every artefact is written atomically (`rlhf_lab.utils.artefacts`): an interrupted command
leaves the previous artefact or the new one, and says which it saved.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
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
    p.add_argument("--base", default=None, help="model to start from: a shipped name, a folder or a hub id "
                   "(default: the size's preset, tiny-base for tiny and demo, gpt2 for gpt2)")
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

    p = sub.add_parser("label", help="rank K sampled completions per prompt with simulated labelers "
                                     "(people label in notebook 02)")
    p.add_argument("--simulated", action="store_true",
                   help="use the simulated labelers (required: human labeling happens in the notebook's ranker)")
    p.add_argument("--n-prompts", type=int, default=512, help="train prompts of the review world (default 512)")
    p.add_argument("--k", type=int, default=4, help="completions per prompt, 2 to 9 (default 4)")
    p.add_argument("--labelers", default="gold,enthusiast,concise,focused",
                   help="comma-separated personas (default gold,enthusiast,concise,focused)")
    p.add_argument("--model", default="tiny", help="policy to sample from (default tiny, the shipped SFT model)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="token budget per completion (default 48)")
    p.add_argument("--out", help="output folder for simulated.jsonl and metadata.json (default runs/preferences)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing simulated.jsonl in --out")
    _add_common(p)

    from rlhf_lab.cli.labels import add_parsers
    add_parsers(sub)   # label-set make/show, labels pool/export

    p = sub.add_parser("reward", help="train the Bradley-Terry reward model on ranked completions (notebook 03)")
    p.add_argument("--labels", default=None, help="preference file (default: the shipped simulated labels)")
    p.add_argument("--labeler", default="sim-gold",
                   help="keep one labeler's rankings (default sim-gold; 'all' keeps every labeler)")
    p.add_argument("--backbone", default="tiny", help="transformer under the scalar head (default tiny)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the labels (default 2)")
    p.add_argument("--unit-std", action="store_true",
                   help="scale the reward to std 1 over the training completions (the mean is always set to 0)")
    p.add_argument("--out", help="output folder (default runs/reward_model)")
    _add_common(p)

    p = sub.add_parser("reward-convert", help="rewrite a reward-model folder of the kit's older format (backbone + "
                                              "reward_head.safetensors) as a transformers sequence classifier")
    p.add_argument("folder", help="the reward model's folder (rewritten in place, atomically)")

    p = sub.add_parser("prepare", help="build a profile's chain: SFT model -> simulated labels -> reward model "
                                       "(the cpu chain is shipped; the gpu chain goes to runs/gpu)")
    p.add_argument("--profile", choices=["cpu", "gpu"], default="gpu", help="which course (default gpu)")
    p.add_argument("--base", help="model the SFT model is fine-tuned from (default: the profile's, gpt2 for gpu; "
                   "offline: runs/models/gpt2-upt from `rlhf-lab pretrain --size gpt2`)")
    p.add_argument("--smoke", action="store_true", help="smoke sizes (seconds; for CI, not for learning)")
    p.add_argument("--rebuild", action="store_true", help="rebuild every link, even those already made")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")

    from rlhf_lab.rl.ppo import PPOConfig

    p = sub.add_parser("ppo", help="PPO with a per-token KL penalty against the frozen SFT model (notebook 05)")
    p.add_argument("--out", help="checkpoint folder (default runs/ppo)")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out; options given "
                   "here override its config (e.g. --iterations 40 to go further)")
    p.add_argument("--n-prompts", type=int, default=512, help="train prompts of the review world (default 512)")
    p.add_argument("--prompt", action="append", help="your own prompt (repeatable); replaces world prompts")
    _add_config_options(p, PPOConfig, PPOConfig.tiny())

    from rlhf_lab.rl.group_trainer import GroupConfig

    for algo, what in (("rloo", "RLOO: the leave-one-out mean of the other K-1 samples as baseline, no critic"),
                       ("grpo", "GRPO: group mean and std as baseline, KL in the loss, no critic "
                                "(Dr. GRPO: --no-scale-rewards --loss-type dr_grpo)")):
        p = sub.add_parser(algo, help=what)
        p.add_argument("--out", help=f"checkpoint folder (default runs/{algo})")
        p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out; options given "
                       "here override its config")
        p.add_argument("--n-prompts", type=int, default=512, help="train prompts of the review world (default 512)")
        p.add_argument("--prompt", action="append", help="your own prompt (repeatable); replaces world prompts")
        _add_config_options(p, GroupConfig, GroupConfig.tiny(algo), skip=("algo",))
    return parser


def field_docs(cls) -> dict[str, str]:
    """The one-line doc string under each field of a config dataclass, read from its source."""
    docs, body = {}, ast.parse(inspect.getsource(cls)).body[0].body
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _add_config_options(p: argparse.ArgumentParser, cls, base, skip: tuple = ()) -> None:
    """One --option per config field, with the field's doc as help; unset options keep ``base``'s value."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag, default = "--" + f.name.replace("_", "-"), getattr(base, f.name)
        help_text = f"{docs.get(f.name, '')} (default {default})".replace("%", "%%")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif default is None or f.type in ("float | None", "str | None"):
            kind = _optional_float if "float" in str(f.type) else str
            p.add_argument(flag, type=kind, default=None, dest=f.name, help=help_text)
        else:
            p.add_argument(flag, type=type(default), default=None, dest=f.name, help=help_text)


def _config_overrides(args, cls) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def _run_pretrain(args) -> None:
    from dataclasses import replace

    from rlhf_lab.utils.artefacts import check_writable
    from rlhf_lab.config import runs_dir
    from rlhf_lab.lm.pretrain import PretrainConfig, pretrain

    cfg = {"tiny": PretrainConfig.tiny, "demo": PretrainConfig.demo, "gpt2": PretrainConfig.gpu}[args.size]()
    cfg = replace(cfg, seed=args.seed, device=args.device, **({"steps": args.steps} if args.steps is not None else {}))
    out = check_writable(args.out or runs_dir("models", f"{args.size}-upt", create=False))
    _, _, hist = pretrain(cfg, out_dir=out, command="rlhf-lab " + " ".join(args.argv))
    print(f"saved to {out}: {hist.n_parameters / 1e6:.2f}M parameters, val loss {hist.val_loss[-1]:.3f}, "
          f"{hist.wall_time_s:.0f} s")


def _run_sft(args) -> None:
    from dataclasses import replace

    from rlhf_lab.utils.artefacts import check_writable
    from rlhf_lab.config import runs_dir
    from rlhf_lab.lm.pretrain import SFTConfig, sft

    cfg = {"tiny": SFTConfig.tiny, "demo": SFTConfig.demo, "gpt2": SFTConfig.gpu}[args.size]()
    cfg = replace(cfg, seed=args.seed, device=args.device, **({"base": args.base} if args.base is not None else {}),
                  **({"steps": args.steps} if args.steps is not None else {}))
    out = check_writable(args.out or runs_dir("models", f"{args.size}-sft", create=False))
    _, _, hist = sft(cfg, out_dir=out, command="rlhf-lab " + " ".join(args.argv))
    print(f"saved to {out}: val loss {hist.val_loss[-1]:.3f}, {hist.wall_time_s:.0f} s")


def check_sampling_options(args) -> None:
    """--n, --max-new-tokens and --temperature of a command that samples, checked before any work."""
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not 0 < args.temperature < float("inf"):
        raise ValueError(f"--temperature must be a finite number > 0, got {args.temperature}")


def _run_sample(args) -> None:
    from rlhf_lab.config import get_device, get_profile, set_seed
    from rlhf_lab.lm.generation import sample
    from rlhf_lab.lm.models import load_model
    from rlhf_lab.world.reviews import Prompt, ReviewWorld, judge_completion

    check_sampling_options(args)
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


def _run_label(args) -> None:
    from rlhf_lab.utils.artefacts import check_writable
    from rlhf_lab.config import runs_dir
    from rlhf_lab.labels.labelers import PERSONAS, build_simulated_dataset
    from rlhf_lab.labels.store import MAX_K, MIN_K

    if not args.simulated:
        raise ValueError("people label in notebook 02 (the ranker widget); this command runs simulated "
                         "labelers: add --simulated")
    if not MIN_K <= args.k <= MAX_K:
        raise ValueError(f"--k must be between {MIN_K} and {MAX_K}, got {args.k}")
    personas = tuple(x.strip() for x in args.labelers.split(",") if x.strip())
    unknown = [x for x in personas if x not in PERSONAS]
    if unknown or not personas:
        raise ValueError(f"unknown labelers {unknown}; choose from {sorted(PERSONAS)}")
    if args.n_prompts < 1:
        raise ValueError(f"--n-prompts must be at least 1, got {args.n_prompts}")
    out = check_writable(args.out or runs_dir("preferences", create=False))
    meta = build_simulated_dataset(out, n_prompts=args.n_prompts, k=args.k, personas=personas,
                                   model_name=args.model, temperature=args.temperature,
                                   max_new_tokens=args.max_new_tokens, seed=args.seed, device=args.device,
                                   command="rlhf-lab " + " ".join(args.argv), overwrite=args.overwrite)
    print(f"saved {meta['n_records']} rankings ({meta['n_pairs']} pairs) of {meta['n_tasks']} prompts, K={args.k}, "
          f"by {', '.join(meta['labelers'])} to {out}/simulated.jsonl ({meta['bytes'] / 1e6:.2f} MB, "
          f"{meta['wall_time_s']:.0f} s)")


def _run_reward(args) -> None:
    from rlhf_lab.utils.artefacts import check_writable
    from rlhf_lab.config import get_device, runs_dir, set_seed
    from rlhf_lab.labels.preferences import load_preferences
    from rlhf_lab.reward.train import RewardConfig, train_reward_model
    from rlhf_lab.reward.model import RewardModel

    cfg = RewardConfig(backbone=args.backbone, epochs=args.epochs, seed=args.seed, device=args.device,
                       normalise_std=args.unit_std)
    out = check_writable(args.out or runs_dir("reward_model", create=False))
    labeler = None if args.labeler == "all" else args.labeler
    records = load_preferences(args.labels, labeler=labeler)
    if not records:
        raise ValueError(f"no rankings by labeler {args.labeler!r} in {args.labels or 'the shipped labels'}; "
                         f"--labeler all keeps every labeler")
    set_seed(args.seed)
    rm = RewardModel.from_backbone(args.backbone, device=get_device(args.device, verbose=False))
    rm, hist = train_reward_model(cfg, records, rm=rm, progress=sys.stderr.isatty())
    val = (f"validation accuracy {hist.val_accuracy[-1]:.3f}, loss {hist.val_loss[-1]:.3f}" if hist.val_accuracy
           else "no validation prompts (all records share one prompt)")
    rm.save_pretrained(out, extra={"command": "rlhf-lab " + " ".join(args.argv), "labels": args.labels or "shipped",
                                   "labeler": args.labeler, "n_records": len(records), "epochs": args.epochs,
                                   "unit_std": args.unit_std, "seed": args.seed,
                                   "val_accuracy": hist.val_accuracy[-1] if hist.val_accuracy else None,
                                   "val_loss": hist.val_loss[-1] if hist.val_loss else None,
                                   "reward_std": hist.reward_std, "wall_time_s": round(hist.wall_time_s, 1)})
    print(f"saved to {out}: {val}, {hist.wall_time_s:.0f} s")


def _run_ppo(args) -> None:
    from rlhf_lab.rl.ppo import PPOConfig
    from rlhf_lab.rl.ppo_trainer import PPOTrainer

    _run_rl(args, PPOTrainer, PPOConfig, PPOConfig.tiny(), "ppo")


def _run_group(args) -> None:
    from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer

    _run_rl(args, GroupTrainer, GroupConfig, GroupConfig.tiny(args.command), args.command)


def _run_rl(args, trainer_cls, cfg_cls, base, name: str) -> None:
    """PPO, RLOO and GRPO from the shell: options and --out checked first, then train and summarise."""
    from rlhf_lab.utils.artefacts import check_writable, read_json, recover
    from rlhf_lab.rl.checkpoints import CHECKPOINT_STATE
    from rlhf_lab.config import runs_dir
    from rlhf_lab.world.reviews import ReviewWorld

    out = check_writable(recover(args.out or runs_dir(name, create=False)), what="checkpoint folder")
    overrides = _config_overrides(args, cfg_cls)
    if args.resume:
        saved = read_json(out / "config.json") if (out / "config.json").exists() else {}
        if isinstance(saved, dict) and saved.get("algo", "ppo") != getattr(base, "algo", "ppo"):
            raise ValueError(f"{out} holds a {saved.get('algo', 'ppo')} run; resume it with "
                             f"`rlhf-lab {saved.get('algo', 'ppo')} --resume --out {out}`")
        trainer = trainer_cls.resume(out, **overrides)   # checks every file and option before it loads a model
        print(f"resuming {out} after iteration {len(trainer.history)} of {trainer.cfg.iterations}")
    else:
        if (out / CHECKPOINT_STATE).exists():
            raise ValueError(f"{out} already holds a run; continue it with --resume or choose another --out")
        if args.n_prompts < 1:
            raise ValueError(f"--n-prompts must be at least 1, got {args.n_prompts}")
        cfg = cfg_cls(**{**dataclasses.asdict(base), **overrides})
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


def _run_prepare(args) -> None:
    from dataclasses import replace

    from rlhf_lab import course
    from rlhf_lab.utils.artefacts import check_writable
    from rlhf_lab.config import PROFILES, get_device

    profile = PROFILES[args.profile]()
    if args.base:
        profile = replace(profile, base_model=args.base)
    if args.smoke:
        profile = profile.shrunk()
    if profile.name == "cpu":
        if args.base or args.rebuild:
            raise ValueError("the cpu chain is shipped in data/ (`make models` rebuilds it); --base and --rebuild "
                             "are for --profile gpu")
        course.ensure(profile)
        print("the cpu profile's chain is shipped in data/; nothing to build.\n" + course.describe(profile))
        return
    if not args.rebuild and all(course.is_built(profile, x) for x in course.LINKS):
        print("nothing to build (--rebuild makes it again).\n" + course.describe(profile))
        return
    for link in course.LINKS:
        check_writable(course.link_path(profile, link), folder=link != "labels")
    from rlhf_lab.lm.models import resolve
    resolve(profile.base_model)   # a mistyped --base fails here, before any work
    device = get_device(args.device)
    seconds = course.prepare(profile, device=device, rebuild=args.rebuild, progress=sys.stderr.isatty())
    print(course.describe(profile))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + f", total {sum(seconds.values()):.0f} s")


def _run_labels(args) -> None:
    from rlhf_lab.cli.labels import run

    run(args)


def _run_reward_convert(args) -> None:
    from rlhf_lab.reward.model import convert

    path = convert(args.folder)
    print(f"{path}: a sequence-classification reward model (AutoModelForSequenceClassification, num_labels=1)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # recorded in the checkpoint's metadata
    from rlhf_lab.utils.artefacts import SAVES
    from rlhf_lab.course import ChainError
    from rlhf_lab.lm.models import ModelLoadError

    saved_before = SAVES.mark()
    try:
        {"pretrain": _run_pretrain, "sft": _run_sft, "sample": _run_sample, "label": _run_label,
         "reward": _run_reward, "ppo": _run_ppo, "rloo": _run_group, "grpo": _run_group,
         "prepare": _run_prepare, "reward-convert": _run_reward_convert, "label-set": _run_labels,
         "labels": _run_labels}[args.command](args)
    except (ModelLoadError, ChainError, ValueError, FloatingPointError, RuntimeError, OSError) as err:
        message = " ".join(str(err).split()) or type(err).__name__   # one line
        print(f"rlhf-lab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlhf-lab {args.command}: interrupted; {_saved_note(SAVES.since(saved_before), args)}", file=sys.stderr)
        return 130
    return 0


def _saved_note(saved: list, args) -> str:
    """What an interrupted command saved, truthfully: every save is atomic, so each is complete."""
    if not saved:
        return "nothing was saved (any earlier artefact at the output is as it was)"
    paths = list(dict.fromkeys(str(p) for p in saved))
    note = f"saved complete before the interruption: {', '.join(paths)}; nothing after it was saved"
    if args.command in ("ppo", "rloo", "grpo"):
        note += f" (continue with `rlhf-lab {args.command} --resume{' --out ' + args.out if args.out else ''}`)"
    return note


if __name__ == "__main__":
    sys.exit(main())
