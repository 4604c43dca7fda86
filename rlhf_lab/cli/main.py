"""The ``rlhf-lab`` command: pretrain and fine-tune the embedded model, label, train a reward model, run RL.

    rlhf-lab pretrain            # UPT on the review world   -> runs/models/tiny-upt
    rlhf-lab sft                 # SFT on demonstrations     -> runs/models/tiny-sft
    rlhf-lab sample --n 8        # eight reviews with their gold scores
    rlhf-lab label --simulated   # simulated labelers rank K completions -> runs/preferences
    rlhf-lab label-set make --n 20 --k 4 --out class-set.jsonl   # one set a whole class ranks
    rlhf-lab labels pool DIR --set class-set.jsonl --out pooled.jsonl   # a class's labels + agreement
    rlhf-lab reward              # Bradley-Terry reward model on the labels -> runs/reward_model
    rlhf-lab reward-ensemble     # N of them on bootstrap samples, one conservative reward -> runs/reward_ensemble
    rlhf-lab ppo                 # PPO with a KL penalty                    -> runs/ppo (--resume continues)
    rlhf-lab rloo / grpo         # critic-free RL from K samples per prompt     -> runs/rloo, runs/grpo
                                 # (Dr. GRPO: rlhf-lab grpo --no-scale-rewards --loss-type dr_grpo)
    rlhf-lab spec-sft            # the spec form for notebook 09's checkable task -> runs/spec_sft
    rlhf-lab grpo --reward-model verifier --model runs/spec_sft   # RL on the verifier's 0/1 reward
    rlhf-lab rft --model runs/spec_sft   # rejection-sampling fine-tuning on the verifier -> runs/rft
    rlhf-lab prepare --profile gpu   # the gpu course's chain: SFT -> labels -> reward model, under runs/gpu

This module is the parser and `main`; the commands live in one module per stage of the course
(`rlhf_lab.cli.lm`, `labels`, `reward`, `rl`, `verifier`, `prepare`), on the options they share
(`rlhf_lab.cli.options`). ``python -m rlhf_lab.cli`` runs the same `main`.
"""
from __future__ import annotations

import argparse
import os
import sys

from rlhf_lab.cli import labels, lm, prepare, reward, rl, verifier
from rlhf_lab.config import DeviceError
from rlhf_lab.course import ChainError
from rlhf_lab.lm.models import ModelLoadError
from rlhf_lab.utils.artefacts import SAVES

DEBUG_ENV = "RLHF_LAB_DEBUG"

EPILOG = f"""\
Outputs go under runs/ ($RLHF_LAB_RUNS), never over the shipped data/, unless --out names another
folder. Every option is checked before any model is loaded, the output folder is checked for
writing first, and every artefact is written atomically: an interrupted command leaves the previous
artefact or the new one, and says which it saved.

An error the kit reports on purpose (a bad option, a missing model or file, a diverged run) is one
line and exit status 2; set {DEBUG_ENV}=1 to see its full traceback instead. Any other error is a
bug, and Python prints its traceback."""

EXPECTED = (ValueError, FloatingPointError, OSError, ModelLoadError, ChainError, DeviceError)
"""What the kit raises on purpose, with a message that says what to do: ValueError for a bad option,
config field or file (ConfigError, ArtefactError, PreferenceFileError, ...), FloatingPointError for a
diverged run, OSError for a file or folder, and the RuntimeErrors of its own (a model or a link of the
chain that is missing, a device this machine lacks). A plain RuntimeError (torch's shape, dtype and
memory errors) is not here: it is a bug or a limit, and its traceback is what finds it."""


def build_parser() -> argparse.ArgumentParser:
    """Every command, in the order the course uses them; each module adds its own (and its ``run``)."""
    parser = argparse.ArgumentParser(prog="rlhf-lab", description=__doc__.split("\n")[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lm.add_parsers(sub)        # pretrain, sft, sample
    labels.add_parsers(sub)    # label, label-set make/show, labels pool/export
    reward.add_parsers(sub)    # reward, reward-ensemble, reward-convert
    prepare.add_parsers(sub)   # prepare
    rl.add_parsers(sub)        # ppo, rloo, grpo
    verifier.add_parsers(sub)  # spec-sft, rft
    return parser


def debugging() -> bool:
    """Whether ``RLHF_LAB_DEBUG`` asks for tracebacks (1 or true; unset, 0 or false do not)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv   # recorded in the metadata of what the command saves
    saved_before = SAVES.mark()
    try:
        args.run(args)
    except EXPECTED as err:
        if debugging():
            raise
        message = " ".join(str(err).split()) or type(err).__name__   # one line
        print(f"rlhf-lab {args.command}: error: {message} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
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
