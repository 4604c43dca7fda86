"""``rlhf-lab prepare``: build a profile's chain of artefacts, SFT model -> labels -> reward model.

    rlhf-lab prepare --profile gpu           # GPT-2 -> runs/gpu/sft -> runs/gpu/preferences -> runs/gpu/reward_model
    rlhf-lab prepare --profile gpu --smoke   # the same chain at smoke sizes (seconds; CI)
    rlhf-lab prepare --profile cpu           # says that the cpu chain is shipped in data/

InstructGPT's three steps (Ouyang et al. 2022, Figure 2) made in order by `rlhf_lab.course`, which
the notebooks call too (`course.ensure`); this command only checks its options and every link's
output first, then says where each link is and how long it took.
"""
from __future__ import annotations

import sys
from dataclasses import replace

from rlhf_lab import course
from rlhf_lab.config import PROFILES, get_device
from rlhf_lab.lm.models import resolve
from rlhf_lab.utils.artefacts import check_writable


def add_parsers(sub) -> None:
    p = sub.add_parser("prepare", help="build a profile's chain: SFT model -> simulated labels -> reward model "
                                       "(the cpu chain is shipped; the gpu chain goes to runs/gpu)")
    p.add_argument("--profile", choices=["cpu", "gpu"], default="gpu", help="which course (default gpu)")
    p.add_argument("--base", help="model the SFT model is fine-tuned from (default: the profile's, gpt2 for gpu; "
                   "offline: runs/models/gpt2-upt from `rlhf-lab pretrain --size gpt2`)")
    p.add_argument("--smoke", action="store_true", help="smoke sizes (seconds; for CI, not for learning)")
    p.add_argument("--rebuild", action="store_true", help="rebuild every link, even those already made")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.set_defaults(run=run_prepare)


def run_prepare(args) -> None:
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
    for link in course.LINKS:   # every output checked for writing before the first link is made
        check_writable(course.link_path(profile, link), folder=link != "labels")
    resolve(profile.base_model)   # a mistyped --base fails here, before any work
    device = get_device(args.device)
    seconds = course.prepare(profile, device=device, rebuild=args.rebuild, progress=sys.stderr.isatty())
    print(course.describe(profile))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + f", total {sum(seconds.values()):.0f} s")
