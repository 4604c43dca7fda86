"""The options every ``rlhf-lab`` command module shares, and the checks they run before any work.

A command's options are either written out by hand (``--seed``, ``--device``, the sampling
options) or made from a config dataclass, one ``--option`` per field with the field's one-line doc
as its help (`add_config_options`), so that ``rlhf-lab ppo --help`` documents every field of
`rlhf_lab.rl.ppo.PPOConfig` in the words of its source and cannot fall behind it.

Every check here raises ``ValueError`` with the option's name: `rlhf_lab.cli.main` prints it as one
line, with exit status 2, before any model is loaded.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect

from rlhf_lab.labels.store import MAX_K, MIN_K


def add_common(p: argparse.ArgumentParser) -> None:
    """``--seed`` and ``--device``, which every command that trains or samples takes."""
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")


def add_sampling(p: argparse.ArgumentParser) -> None:
    """``--temperature`` and ``--max-new-tokens`` of a command that samples completions."""
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="token budget per completion (default 48)")


def command_line(args) -> str:
    """The command as typed, for the metadata of what it saves (``main`` keeps the argv)."""
    return "rlhf-lab " + " ".join(args.argv)


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


def add_config_options(p: argparse.ArgumentParser, cls, base, skip: tuple = ()) -> None:
    """One --option per config field, with the field's doc as help; unset options keep ``base``'s value."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag, default = "--" + f.name.replace("_", "-"), getattr(base, f.name)
        # argparse formats help with %: a doc that says "50%" would break --help
        help_text = f"{docs.get(f.name, '')} (default {default})".replace("%", "%%")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif default is None or f.type in ("float | None", "str | None"):
            kind = _optional_float if "float" in str(f.type) else str
            p.add_argument(flag, type=kind, default=None, dest=f.name, help=help_text)
        else:
            p.add_argument(flag, type=type(default), default=None, dest=f.name, help=help_text)


def config_overrides(args, cls) -> dict:
    """The config fields given on the command line (every option defaults to None: 'not given')."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def check_sampling_options(args) -> None:
    """--n, --max-new-tokens and --temperature of a command that samples, checked before any work."""
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not 0 < args.temperature < float("inf"):
        raise ValueError(f"--temperature must be a finite number > 0, got {args.temperature}")


def check_k(k: int) -> None:
    """--k, the completions ranked per prompt: as many as the label store holds (2 to 9)."""
    if not MIN_K <= k <= MAX_K:
        raise ValueError(f"--k must be between {MIN_K} and {MAX_K}, got {k}")
