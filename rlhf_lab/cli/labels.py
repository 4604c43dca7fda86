"""The label commands of ``rlhf-lab`` (notebook 02): simulated labelers, and the instructor's
labeling sets, pooling of a class's labels and export of pairs.

    rlhf-lab label --simulated   # simulated labelers rank K completions -> runs/preferences
    rlhf-lab label-set make --n 20 --k 4 --out class-set.jsonl   # one set the whole class ranks
    rlhf-lab label-set show class-set.jsonl                       # check a set and say what it holds
    rlhf-lab labels pool hand-ins/ --set class-set.jsonl --out pooled.jsonl   # + agreement report
    rlhf-lab labels export pooled.jsonl --out pairs.parquet       # TRL's prompt/chosen/rejected
    rlhf-lab labels export pooled.jsonl --prompts --out prompts.jsonl   # prompts for TRL's GRPO/RLOO

People rank in the notebook's ranker widget (`rlhf_lab.labels.ranker`), not here: InstructGPT's
labelers ranked K = 4 to 9 completions of a prompt (Ouyang et al. 2022, §3.5), and so do the
simulated personas of `rlhf_lab.labels.labelers` and a class ranking one labeling set. Every option
is checked before a model is loaded; files are written atomically.
"""
from __future__ import annotations

from pathlib import Path

from rlhf_lab.cli.options import add_common, add_sampling, check_k, check_sampling_options, command_line
from rlhf_lab.config import get_device, get_profile, runs_dir
from rlhf_lab.labels.label_sets import NAME, load_label_set, make_label_set, summary, write_label_set
from rlhf_lab.labels.labelers import PERSONAS, build_simulated_dataset
from rlhf_lab.labels.pooling import agreement_report, consensus, pool_labels, write_pool
from rlhf_lab.labels.preferences import export_pairs, export_prompts, load_preferences
from rlhf_lab.lm.models import load_model, resolve
from rlhf_lab.utils.artefacts import check_writable
from rlhf_lab.world.reviews import ReviewWorld


def add_parsers(sub) -> None:
    p = sub.add_parser("label", help="rank K sampled completions per prompt with simulated labelers "
                                     "(people label in notebook 02)")
    p.add_argument("--simulated", action="store_true",
                   help="use the simulated labelers (required: human labeling happens in the notebook's ranker)")
    p.add_argument("--n-prompts", type=int, default=512, help="train prompts of the review world (default 512)")
    p.add_argument("--k", type=int, default=4, help="completions per prompt, 2 to 9 (default 4)")
    p.add_argument("--labelers", default="gold,enthusiast,concise,focused",
                   help="comma-separated personas (default gold,enthusiast,concise,focused)")
    p.add_argument("--model", default="tiny", help="policy to sample from (default tiny, the shipped SFT model)")
    add_sampling(p)
    p.add_argument("--out", help="output folder for simulated.jsonl and metadata.json (default runs/preferences)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing simulated.jsonl in --out")
    add_common(p)
    p.set_defaults(run=run_simulated)

    p = sub.add_parser("label-set", help="labeling sets: one fixed set of prompts and K completions a class ranks")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    m = verbs.add_parser("make", help="sample a set from a policy and write it")
    m.add_argument("--n", type=int, default=20, help="prompts in the set (default 20)")
    m.add_argument("--k", type=int, default=4, help="completions per prompt, 2 to 9 (default 4)")
    m.add_argument("--out", required=True, help="the set's file (.jsonl), handed out to the class")
    m.add_argument("--name", help="the set's name; its id adds the content hash (default: the file's stem)")
    m.add_argument("--model", default=None, help="policy to sample from (default: the profile's SFT model)")
    m.add_argument("--kind", choices=["instruction", "opening", "mixed"], default="mixed",
                   help="which review-world prompts (default mixed)")
    add_sampling(m)
    m.add_argument("--overwrite", action="store_true", help="replace an existing set file (students ranking the "
                   "old one keep its id, and their labels will not pool with the new one)")
    add_common(m)
    m.set_defaults(run=_make)
    s = verbs.add_parser("show", help="check a set file and summarise it")
    s.add_argument("path", help="the set's file")
    s.set_defaults(run=_show)

    p = sub.add_parser("labels", help="pool a class's label files (with inter-labeler agreement), export pairs")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    q = verbs.add_parser("pool", help="pool label files into one, and report how much the labelers agree")
    q.add_argument("sources", nargs="+", help="a folder of label files (*.jsonl), or the files")
    q.add_argument("--out", required=True, help="the pooled label file (.jsonl)")
    q.add_argument("--set", dest="label_set", help="the labeling set they ranked (checks every record against it)")
    q.add_argument("--consensus", action="store_true",
                   help="write one Bradley-Terry pooled ranking per prompt (labeler 'pooled') instead of every "
                        "labeler's")
    q.set_defaults(run=_pool)
    e = verbs.add_parser("export", help="a label file as preference pairs for TRL (.jsonl or .parquet)")
    e.add_argument("path", help="a label file (e.g. pooled.jsonl)")
    e.add_argument("--out", required=True, help="pairs file: .jsonl or .parquet")
    e.add_argument("--conversational", action="store_true", help="TRL's conversational format (messages)")
    e.add_argument("--prompts", action="store_true",
                   help="write each distinct prompt once (prompt, prompt_id): a prompt set for TRL's GRPO and RLOO")
    e.set_defaults(run=_export)


def run_simulated(args) -> None:
    """``label --simulated``: the personas rank K samples of --n-prompts prompts into simulated.jsonl."""
    if not args.simulated:
        raise ValueError("people label in notebook 02 (the ranker widget); this command runs simulated "
                         "labelers: add --simulated")
    check_k(args.k)
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
                                   command=command_line(args), overwrite=args.overwrite)
    print(f"saved {meta['n_records']} rankings ({meta['n_pairs']} pairs) of {meta['n_tasks']} prompts, K={args.k}, "
          f"by {', '.join(meta['labelers'])} to {out}/simulated.jsonl ({meta['bytes'] / 1e6:.2f} MB, "
          f"{meta['wall_time_s']:.0f} s)")


def _make(args) -> None:
    out = Path(args.out)
    name = args.name or out.stem
    check_k(args.k)
    check_sampling_options(args)
    if not NAME.match(name):
        raise ValueError(f"set name {name!r}: use letters, digits, '.', '_' or '-' (--name)")
    if out.suffix != ".jsonl":
        raise ValueError(f"--out {out}: a labeling set is a .jsonl file")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists (a set students may be ranking); choose another file or --overwrite")
    check_writable(out, folder=False)
    device = get_device(args.device)
    model_name = args.model or get_profile(device, verbose=False).model_name
    resolve(model_name)                              # a mistyped --model fails before sampling
    model, tok = load_model(model_name, role="reference", device=device)
    prompts = ReviewWorld(args.seed).prompts(args.n, kind=args.kind, split="train")
    label_set = make_label_set(model, tok, prompts, name=name, k=args.k, max_new_tokens=args.max_new_tokens,
                               temperature=args.temperature, model_name=model_name, seed=args.seed, device=device,
                               command=command_line(args))
    write_label_set(label_set, out, overwrite=args.overwrite)
    print(f"wrote {out}: " + summary(label_set))
    print(f"students rank it in notebook 02 with LABEL_SET = {str(out)!r}; their files go to "
          f"runs/labels/{label_set.set_id}/<name>.jsonl")


def _show(args) -> None:
    print(summary(load_label_set(args.path)))


def _pool(args) -> None:
    pool = pool_labels(args.sources, label_set=args.label_set)   # checks everything before writing
    for note in pool.notes:
        print("note:", note)
    records = consensus(pool.records) if args.consensus else pool.records
    write_pool(records, args.out, inputs=pool.files)
    print(f"pooled {len(pool.records)} rankings of {len(pool.prompt_ids)} prompts by {len(pool.labelers)} labelers "
          f"from {len(pool.files)} files (set {pool.set_id})")
    if len(pool.labelers) >= 2:
        print(agreement_report(pool.records).table())
    print(f"wrote {len(records)} {'pooled rankings' if args.consensus else 'rankings'} to {args.out}")


def _export(args) -> None:
    if Path(args.out).suffix.lower() not in (".jsonl", ".parquet"):
        raise ValueError(f"--out {args.out}: export to a .jsonl or .parquet file")
    if args.prompts and args.conversational:
        raise ValueError("--prompts writes plain-text prompts; leave out --conversational")
    records = load_preferences(args.path)
    if args.prompts:
        print(f"wrote {export_prompts(records, args.out)} prompts (prompt, prompt_id) to {args.out}")
        return
    n = export_pairs(records, args.out, conversational=args.conversational)
    print(f"wrote {n} pairs (prompt, chosen, rejected, prompt_id, group_id, labeler) to {args.out}")

