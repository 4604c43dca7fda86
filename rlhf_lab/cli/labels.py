"""The instructor's label commands of ``rlhf-lab``: labeling sets, pooling a class, exporting pairs.

    rlhf-lab label-set make --n 20 --k 4 --out class-set.jsonl   # one set the whole class ranks
    rlhf-lab label-set show class-set.jsonl                       # check a set and say what it holds
    rlhf-lab labels pool hand-ins/ --set class-set.jsonl --out pooled.jsonl   # + agreement report
    rlhf-lab labels export pooled.jsonl --out pairs.parquet       # TRL's prompt/chosen/rejected
    rlhf-lab labels export pooled.jsonl --prompts --out prompts.jsonl   # prompts for TRL's GRPO/RLOO

Every option is checked before a model is loaded; files are written atomically.
"""
from __future__ import annotations


def add_parsers(sub) -> None:
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
    m.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    m.add_argument("--max-new-tokens", type=int, default=48, help="token budget per completion (default 48)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing set file (students ranking the "
                   "old one keep its id, and their labels will not pool with the new one)")
    m.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    m.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    s = verbs.add_parser("show", help="check a set file and summarise it")
    s.add_argument("path", help="the set's file")

    p = sub.add_parser("labels", help="pool a class's label files (with inter-labeler agreement), export pairs")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    q = verbs.add_parser("pool", help="pool label files into one, and report how much the labelers agree")
    q.add_argument("sources", nargs="+", help="a folder of label files (*.jsonl), or the files")
    q.add_argument("--out", required=True, help="the pooled label file (.jsonl)")
    q.add_argument("--set", dest="label_set", help="the labeling set they ranked (checks every record against it)")
    q.add_argument("--consensus", action="store_true",
                   help="write one Bradley-Terry pooled ranking per prompt (labeler 'pooled') instead of every "
                        "labeler's")
    e = verbs.add_parser("export", help="a label file as preference pairs for TRL (.jsonl or .parquet)")
    e.add_argument("path", help="a label file (e.g. pooled.jsonl)")
    e.add_argument("--out", required=True, help="pairs file: .jsonl or .parquet")
    e.add_argument("--conversational", action="store_true", help="TRL's conversational format (messages)")
    e.add_argument("--prompts", action="store_true",
                   help="write each distinct prompt once (prompt, prompt_id): a prompt set for TRL's GRPO and RLOO")


def run(args) -> None:
    {("label-set", "make"): _make, ("label-set", "show"): _show, ("labels", "pool"): _pool,
     ("labels", "export"): _export}[(args.command, args.verb)](args)


def _make(args) -> None:
    from pathlib import Path

    from rlhf_lab.utils.artefacts import check_writable
    from rlhf_lab.cli.main import check_sampling_options
    from rlhf_lab.config import get_device, get_profile
    from rlhf_lab.labels.label_sets import NAME, make_label_set, summary, write_label_set
    from rlhf_lab.labels.store import MAX_K, MIN_K

    out = Path(args.out)
    name = args.name or out.stem
    if not MIN_K <= args.k <= MAX_K:
        raise ValueError(f"--k must be between {MIN_K} and {MAX_K}, got {args.k}")
    check_sampling_options(args)
    if not NAME.match(name):
        raise ValueError(f"set name {name!r}: use letters, digits, '.', '_' or '-' (--name)")
    if out.suffix != ".jsonl":
        raise ValueError(f"--out {out}: a labeling set is a .jsonl file")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists (a set students may be ranking); choose another file or --overwrite")
    check_writable(out, folder=False)

    from rlhf_lab.lm.models import load_model, resolve
    from rlhf_lab.world.reviews import ReviewWorld

    device = get_device(args.device)
    model_name = args.model or get_profile(device, verbose=False).model_name
    resolve(model_name)                              # a mistyped --model fails before sampling
    model, tok = load_model(model_name, role="reference", device=device)
    prompts = ReviewWorld(args.seed).prompts(args.n, kind=args.kind, split="train")
    label_set = make_label_set(model, tok, prompts, name=name, k=args.k, max_new_tokens=args.max_new_tokens,
                               temperature=args.temperature, model_name=model_name, seed=args.seed, device=device,
                               command="rlhf-lab " + " ".join(args.argv))
    write_label_set(label_set, out, overwrite=args.overwrite)
    print(f"wrote {out}: " + summary(label_set))
    print(f"students rank it in notebook 02 with LABEL_SET = {str(out)!r}; their files go to "
          f"runs/labels/{label_set.set_id}/<name>.jsonl")


def _show(args) -> None:
    from rlhf_lab.labels.label_sets import load_label_set, summary

    print(summary(load_label_set(args.path)))


def _pool(args) -> None:
    from rlhf_lab.labels.pooling import agreement_report, consensus, pool_labels, write_pool

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
    from pathlib import Path

    from rlhf_lab.labels.preferences import export_pairs, export_prompts, load_preferences

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

