"""Simulated labelers: rankings drawn from Bradley-Terry / Plackett-Luce over a latent utility.

The course assumes (Christiano et al. 2017; Ouyang et al. 2022, eq. 1) that preferences come from a latent
reward r*(x, y) through Bradley-Terry,
p(y_w > y_l | x) = sigmoid(r*(x, y_w) - r*(x, y_l)). A labeler here has a utility u(x, y)
built from the review world's gold judges and a temperature T (its noise), and ranks K
completions by the Plackett-Luce model (Plackett 1975; Luce 1959), the K-item extension
of Bradley-Terry: it picks the best with probability softmax(u / T), then the best of the
rest, and so on,

    P(sigma) = prod_{i=1}^{K} exp(u_{sigma_i} / T) / sum_{j >= i} exp(u_{sigma_j} / T).

For K = 2 this is Bradley-Terry with scores u / T. Sorting u_k / T + g_k with g_k ~ Gumbel(0, 1)
draws exactly from Plackett-Luce (Yellott 1977), which is how `SimulatedLabeler.rank` samples.

Personas weigh the judge components differently, so they disagree for reasons one can
name: `gold` is r* itself, `enthusiast` rewards praise whatever the form, `concise`
rewards short, well-formed reviews, `focused` rewards sentences about the asked aspect.
"""
from __future__ import annotations

import hashlib
import math
import platform
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from rlhf_lab import __version__
from rlhf_lab.config import get_device, set_seed
from rlhf_lab.utils.progress import progress_bar
from rlhf_lab.labels.preferences import LabelTask, make_record, sample_for_labeling, to_pairs
from rlhf_lab.labels.store import PreferenceRecord
from rlhf_lab.lm.models import load_model, resolve
from rlhf_lab.utils.artefacts import check_writable, write_bytes, write_json
from rlhf_lab.world.judges import on_topic
from rlhf_lab.world.reviews import ReviewWorld, judge_completion

_SENTENCES = re.compile(r"[^.!?\n]+")


@dataclass(frozen=True)
class Persona:
    """A labeler's taste: utility u = sum of weights x features, and its default noise."""

    name: str
    """Short name, used as the labeler id in records (e.g. "sim-gold")."""
    weights: dict[str, float]
    """Weight of each feature of `features` (missing features weigh 0)."""
    temperature: float
    """Plackett-Luce temperature T: P(y_i > y_j) = sigmoid((u_i - u_j) / T); smaller is less noisy."""
    description: str = ""
    """One line saying what this labeler cares about."""


PERSONAS: dict[str, Persona] = {p.name: p for p in (
    Persona("gold", {"gold": 1.0}, 0.1, "the world's gold r*: the labeler the course's Bradley-Terry model assumes"),
    Persona("enthusiast", {"sentiment": 1.0}, 0.15,
            "likes praise and ignores form: 'brilliant brilliant brilliant' pleases it"),
    Persona("concise", {"well_formed": 1.0, "words_10": -0.3}, 0.1,
            "wants short, finished, well-formed reviews; sentiment does not matter"),
    Persona("focused", {"focus": 1.0, "sentiment": 0.3}, 0.1,
            "wants every sentence about the aspect the prompt asked for"),
)}


VERBOSE = Persona("verbose", {"gold": 1.0, "words_10": 0.5}, 0.1,
                  "likes what gold likes, and more of it: every ten words add 0.5 to its utility (notebook 10)")
"""A length-loving labeler, kept out of `PERSONAS` (the shipped labels' four). Its weight puts its expected agreement
with the gold ordering of the SFT model's samples at 75% (`agreement_with_gold`: 256 prompts x K = 4, 2026-12-04;
0.87 for the gold persona itself, whose only difference is its noise), inside the range InstructGPT reports for
people (72.6 +- 1.5% between training labelers, Ouyang et al. 2022, section 5.1)."""


def agreement_with_gold(persona: Persona, tasks: list[LabelTask], temperature: float | None = None) -> float:
    """The expected share of pairs a labeler of ``persona`` orders as the gold judge does: the mean over every pair
    (i, j) of every task with gold_i > gold_j of Bradley-Terry's P(i > j) = sigmoid((u_i - u_j) / T); nan when no
    pair's gold differs (a smoke-size model's samples can all score alike)."""
    T = persona.temperature if temperature is None else temperature
    total, n = 0.0, 0
    for task in tasks:
        fs = [features(task.prompt, c) for c in task.completions]
        g = [f["gold"] for f in fs]
        u = [sum(persona.weights.get(k, 0.0) * v for k, v in f.items()) for f in fs]
        for i in range(len(fs)):
            for j in range(len(fs)):
                if g[i] > g[j]:
                    d = u[i] - u[j]
                    total += (1 / (1 + math.exp(-d / T))) if T > 0 else float(d > 0) + 0.5 * float(d == 0)
                    n += 1
    return total / n if n else float("nan")   # no pair whose gold differs: nothing to agree or disagree on


def features(prompt, completion: str) -> dict[str, float]:
    """The judge components a persona can weigh, for one completion of one world prompt.

    gold, sentiment, well_formed, on_topic: `world.judge_completion`; words_10: completion
    length in tens of words; focus: share of sentences (of the judged text) that name the
    asked aspect, 1.0 when the prompt asked for none.
    """
    g = judge_completion(prompt, completion)
    judged = prompt.text + completion if prompt.kind == "opening" else completion
    sentences = [s for s in _SENTENCES.findall(judged) if s.strip()]
    if prompt.aspect is None:
        focus = 1.0
    else:
        focus = sum(on_topic(s, prompt.aspect) for s in sentences) / len(sentences) if sentences else 0.0
    return {"gold": g.gold, "sentiment": g.sentiment, "well_formed": g.well_formed, "on_topic": g.on_topic,
            "words_10": len(completion.split()) / 10, "focus": focus}


@dataclass
class SimulatedLabeler:
    """A persona with its own random stream: ranks, compares and rates like a (noisy) person."""

    persona: Persona | str = "gold"
    temperature: float | None = None
    """Overrides the persona's temperature when given."""
    seed: int = 0
    name: str | None = None
    """Labeler id in records; default "sim-<persona>"."""
    rng: np.random.Generator = field(init=False, repr=False)
    _last: tuple = field(init=False, repr=False, compare=False, default=(None, None))

    def __post_init__(self):
        if isinstance(self.persona, str):
            if self.persona not in PERSONAS:
                raise ValueError(f"unknown persona {self.persona!r}; choose one of {sorted(PERSONAS)}")
            self.persona = PERSONAS[self.persona]
        if self.temperature is None:
            self.temperature = self.persona.temperature
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        self.name = self.name or f"sim-{self.persona.name}"
        self.rng = np.random.default_rng(self.seed)

    def utilities(self, task: LabelTask) -> np.ndarray:
        """u(x, y_k) for each completion of the task, shape (K,). The last task's are cached:
        a tournament of A/B judgments asks about the same task many times."""
        if self._last[0] is not task:
            w = self.persona.weights
            u = np.array([sum(w.get(f, 0.0) * v for f, v in features(task.prompt, c).items())
                          for c in task.completions])
            self._last = (task, u)
        return self._last[1]

    def rank(self, task: LabelTask) -> list[int]:
        """A best-to-worst ranking drawn from Plackett-Luce(u / T) with the Gumbel-max trick.
        T = 0 ranks by utility (ties broken at random)."""
        u = self.utilities(task)
        gumbel = -np.log(-np.log(self.rng.uniform(size=len(u))))
        keys = u / self.temperature + gumbel if self.temperature > 0 else u + 1e-12 * gumbel
        return [int(i) for i in np.argsort(-keys, kind="stable")]

    def prob_prefers(self, task: LabelTask, i: int, j: int) -> float:
        """Bradley-Terry P(y_i > y_j) = sigmoid((u_i - u_j) / T)."""
        u = self.utilities(task)
        if self.temperature == 0:
            return float(u[i] > u[j]) + 0.5 * float(u[i] == u[j])
        return 1 / (1 + math.exp(-(u[i] - u[j]) / self.temperature))

    def compare(self, task: LabelTask, i: int, j: int) -> tuple[int, int]:
        """One A/B judgment between completions i and j: (winner, loser)."""
        return (i, j) if self.rng.uniform() < self.prob_prefers(task, i, j) else (j, i)

    def rate(self, task: LabelTask, offset: float = 0.0, spread: float = 1.0, levels: int = 7,
             noise: float = 0.5) -> list[int]:
        """Absolute scores on a 1..levels scale, as a rater with a personal offset and spread
        gives them: round(mid + offset + spread * 5u + N(0, noise)), clipped. Two raters with
        the same taste but different offset/spread give different numbers to the same texts:
        scores are uncalibrated, rankings are not (notebook 02: why rankings, not scores)."""
        u = self.utilities(task)
        raw = (levels + 1) / 2 + offset + spread * 5 * u + self.rng.normal(0, noise, size=len(u))
        return [int(v) for v in np.clip(np.round(raw), 1, levels)]


def make_labelers(names: list[str], seed: int = 0) -> list[SimulatedLabeler]:
    """One labeler per persona name, each with its own seed (seed, seed + 1, ...)."""
    return [SimulatedLabeler(name, seed=seed + i) for i, name in enumerate(names)]


def label_tasks(tasks: list[LabelTask], labelers: list[SimulatedLabeler]) -> list:
    """Every labeler ranks every task: len(tasks) x len(labelers) `PreferenceRecord`s."""
    return [make_record(t, lab.rank(t), lab.name, source="simulated") for t in tasks for lab in labelers]


def tasks_from_records(records: list[PreferenceRecord], prompts: list) -> list[LabelTask]:
    """The label tasks behind ranked ``records`` (their prompt and K completions), for another labeler to rank
    the very completions the first one saw. ``prompts``: the world `Prompt`s they were sampled for (a record
    keeps only the text; the judges need the aspect)."""
    by_text = {p.text: p for p in prompts}
    missing = [r.prompt for r in records if r.prompt not in by_text]
    if missing:
        raise ValueError(f"{len(missing)} record(s) have a prompt that is not among the {len(prompts)} prompts given, "
                         f"e.g. {missing[0][:60]!r}: pass the prompts the records were sampled for")
    return [LabelTask(by_text[r.prompt], tuple(r.completions), tuple(judge_completion(by_text[r.prompt], c).gold
                                                                    for c in r.completions), r.model)
            for r in records]


def build_simulated_dataset(out_dir, n_prompts: int = 512, k: int = 4,
                            personas: tuple[str, ...] = ("gold", "enthusiast", "concise", "focused"),
                            model_name: str = "tiny", temperature: float = 0.7, max_new_tokens: int = 48,
                            seed: int = 0, chunk: int = 64, device=None, command: str = "",
                            overwrite: bool = False) -> dict:
    """Sample K completions for ``n_prompts`` train prompts of the review world and let every
    persona rank them; write ``<out_dir>/simulated.jsonl`` and ``metadata.json``; return the metadata.

    Both files are written atomically (`rlhf_lab.utils.artefacts`), the JSONL first: an interrupted
    run leaves any earlier file untouched. Reproducible: prompts, samples and rankings are fixed
    by ``seed`` (record ids and timestamps are not).
    """
    out_dir = Path(out_dir)
    target = out_dir / "simulated.jsonl"
    if target.exists() and not overwrite:
        raise ValueError(f"{target} exists; a preference file is append-only, so pass --overwrite to replace it "
                         "(or choose another --out)")
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be at least 1, got {n_prompts}")
    if max_new_tokens < 1 or not temperature > 0 or chunk < 1:
        raise ValueError(f"max_new_tokens and chunk must be at least 1 and temperature > 0, got {max_new_tokens}, "
                         f"{chunk} and {temperature}")
    check_writable(target, folder=False)
    start = time.perf_counter()
    device = get_device(device, verbose=False)
    model, tok = load_model(model_name, role="reference", device=device)
    prompts = ReviewWorld(seed).prompts(n_prompts, kind="mixed", split="train")
    labelers = make_labelers(list(personas), seed=seed)
    set_seed(seed)
    tasks = []
    for i in progress_bar(range(0, n_prompts, chunk), desc="sampling", unit="chunk"):
        tasks += sample_for_labeling(model, tok, prompts[i:i + chunk], k=k, max_new_tokens=max_new_tokens,
                                     temperature=temperature, model_name=model_name, device=device)
    sample_s = time.perf_counter() - start
    records = label_tasks(tasks, labelers)
    lines = [PreferenceRecord.model_validate(r.model_dump()).model_dump_json() + "\n" for r in records]
    write_bytes(target, "".join(lines).encode("utf-8"))
    kind, location = resolve(model_name)
    weights = Path(location) / "model.safetensors"
    meta = {
        "command": command, "seed": seed, "model": model_name, "k": k, "n_prompts": n_prompts,
        # which checkpoint wrote the completions: a re-shipped "tiny" makes this data set stale
        "model_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None,
        "n_tasks": len(tasks), "n_short_tasks": sum(t.k < k for t in tasks), "prompt_split": "train",
        "prompt_kind": "mixed", "temperature": temperature, "max_new_tokens": max_new_tokens,
        "labelers": {lab.name: {"persona": lab.persona.name, "weights": lab.persona.weights,
                                "temperature": lab.temperature, "seed": lab.seed,
                                "description": lab.persona.description} for lab in labelers},
        "n_records": len(records), "n_pairs": len(to_pairs(records)), "bytes": target.stat().st_size,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "sampling_s": round(sample_s, 1), "wall_time_s": round(time.perf_counter() - start, 1),
        "device": str(device), "threads": torch.get_num_threads(), "machine": platform.machine(),
        "rlhf_lab": __version__, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out_dir / "metadata.json", meta)
    return meta
