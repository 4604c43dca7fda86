"""Model cards: a short README.md in every folder the kit saves (SFT, reward model, PPO, DPO, RLOO/GRPO).

What a student finds when they open a saved folder, or push it to a hub: what the model is, the
command and seed that made it, the hash of its training data, its headline metrics, and the lines
that load it with plain transformers, no rlhf-lab needed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

LOADERS = {
    "causal LM": ("from transformers import AutoModelForCausalLM, AutoTokenizer\n"
                  "model = AutoModelForCausalLM.from_pretrained(\"{path}\")\n"
                  "tok = AutoTokenizer.from_pretrained(\"{path}\")\n"
                  "ids = tok(\"The acting of \\\"Glass Garden\\\" is\", return_tensors=\"pt\").input_ids\n"
                  "print(tok.decode(model.generate(ids, do_sample=True, max_new_tokens=24)[0]))"),
    "reward model": ("from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                     "model = AutoModelForSequenceClassification.from_pretrained(\"{path}\")\n"
                     "tok = AutoTokenizer.from_pretrained(\"{path}\")\n"
                     "# the reward is read at the EOS that ends the completion\n"
                     "ids = tok(prompt + completion + tok.eos_token, return_tensors=\"pt\").input_ids\n"
                     "reward = model(ids).logits[0, 0]"),
}


def file_sha256(path) -> str | None:
    """The SHA-256 of a file, or None if there is no such file (a hub id, a name)."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def texts_sha256(texts) -> str:
    """The SHA-256 of a sequence of texts (each one's UTF-8, then a NUL): the hash of generated data
    (the review world's documents or demonstrations) that no file holds."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def records_sha256(records) -> str:
    """The SHA-256 of preference records as the JSONL lines of a label file: the labels a model saw."""
    return texts_sha256(r.model_dump_json() for r in records)


def model_card(title: str, what: str, kind: str, made: dict, metrics: dict | None = None, path: str = "FOLDER") -> str:
    """The text of a README.md: ``what`` the model is (a sentence or two), ``made`` (command, seed,
    data and its hash, ...), ``metrics`` (headline numbers), and how to load a ``kind`` ("causal LM"
    or "reward model") with transformers."""
    def rows(d):
        return "\n".join(f"| {k} | {_fmt(v)} |" for k, v in d.items() if v is not None)
    parts = [f"# {title}", "", what, "", "## How it was made", "", "| | |", "|---|---|", rows(made)]
    if metrics:
        parts += ["", "## Headline metrics", "", "| | |", "|---|---|", rows(metrics)]
    parts += ["", "## Load it with plain transformers", "", "```python", LOADERS[kind].format(path=path), "```",
              "", "Made with rlhf-lab, a teaching kit for RLHF.", ""]
    return "\n".join(parts)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v).replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if isinstance(v, str) and (" " in text or "/" in text) else text
