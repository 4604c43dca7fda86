"""Rejection-sampling fine-tuning (expert iteration): sample K completions per prompt, keep the ones a checker
passes, fine-tune on them, repeat (as for Llama 2's rejection sampling and in Stanford CS336's assignment 5).

`select_passing` keeps every passing completion of each prompt; `matched_random` is its control: as many
completions per prompt as passed, chosen at random among all K, so that a comparison of the two differs in
the selection only, not in the amount of data (notebook 09). `rejection_sampling_finetune` is the loop, on the
same number of sampled completions as an RL run (``rounds x prompts_per_round x K``). `sample_verdicts` draws
n completions per specification and checks them (pass@k's table); `verdict_groups` turns the checker's labels
into the pairs a reward model learns from (a passing completion above a failing one of the same prompt).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from rlhf_lab.config import ConfigError, validate_config
from rlhf_lab.lm.finetune import FineTuneConfig, fine_tune
from rlhf_lab.lm.generation import sample_groups
from rlhf_lab.lm.models import load_model
from rlhf_lab.reward.train import RankedGroup
from rlhf_lab.utils.progress import progress_bar
from rlhf_lab.world.reviews import judge_many
from rlhf_lab.world.specs import CONSTRAINTS, Spec, verify

SELECTIONS = ("passing", "random")


def select_passing(prompts: list[str], completions: list[list[str]], passed: list[list[bool]]) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of every completion that passed, prompt by prompt, in order."""
    _check(prompts, completions, passed)
    return [(p, c) for p, cs, ok in zip(prompts, completions, passed) for c, good in zip(cs, ok) if good]


def matched_random(prompts: list[str], completions: list[list[str]], passed: list[list[bool]],
                   seed: int = 0) -> list[tuple[str, str]]:
    """For each prompt, as many of its completions as passed, drawn at random without replacement from all of them."""
    _check(prompts, completions, passed)
    rng = random.Random(seed)
    return [(p, c) for p, cs, ok in zip(prompts, completions, passed) for c in rng.sample(cs, sum(map(bool, ok)))]


def _check(prompts, completions, passed) -> None:
    if not len(prompts) == len(completions) == len(passed):
        raise ValueError(f"{len(prompts)} prompts, {len(completions)} rows of completions, {len(passed)} rows of verdicts")
    for i, (cs, ok) in enumerate(zip(completions, passed)):
        if len(cs) != len(ok):
            raise ValueError(f"prompt {i}: {len(cs)} completions but {len(ok)} verdicts")


def group_shares(passed: torch.Tensor) -> dict[str, float]:
    """passed: (P, K) bool. The share of prompts whose K completions all pass and all fail: with a 0/1 reward,
    the groups whose advantages are all zero, which teach a group method nothing."""
    return {"groups/all_pass": passed.all(1).float().mean().item(),
            "groups/all_fail": (~passed).all(1).float().mean().item()}


@torch.no_grad()
def sample_verdicts(model, tokenizer, specs: list[Spec], n: int, max_new_tokens: int = 48, temperature: float = 0.7,
                    seed: int = 0, batch_rows: int = 512) -> dict:
    """``n`` completions per specification and the verifier's verdicts, without touching the caller's random stream.

    Returns {"completions": P lists of n strings, "passed": (P, n) bool, "checks": {constraint: (P, n) bool},
    "gold": (P, n) the gold judge's score, "length": (P, n) tokens, "nll": (P, n) summed -log pi of the sample}.
    """
    out = sample_groups(model, tokenizer, [s.text for s in specs], n, max_new_tokens, temperature, seed, batch_rows)
    completions = out["completions"]
    verdicts = [[verify(s, c) for c in row] for s, row in zip(specs, completions)]
    checks = {k: torch.tensor([[v.checks[k] for v in row] for row in verdicts]) for k in CONSTRAINTS}
    gold = torch.tensor([[g.gold for g in judge_many([s.prompt] * n, row)] for s, row in zip(specs, completions)])
    return {**out, "passed": torch.tensor([[v.passed for v in row] for row in verdicts]), "checks": checks,
            "gold": gold}


def verdict_groups(specs: list[Spec], completions: list[list[str]], passed, max_pairs: int = 4,
                   seed: int = 0) -> list[RankedGroup]:
    """The checker's labels as comparisons a reward model trains on: for each specification with both passing and
    failing completions, up to ``max_pairs`` (passing, failing) pairs drawn at random, each a RankedGroup of two
    with the passing one first. Specifications whose completions all pass or all fail give no pair."""
    _check(specs, completions, passed)
    rng, out = random.Random(seed), []
    for s, cs, ok in zip(specs, completions, passed):
        good = [c for c, p in zip(cs, ok) if p]
        bad = [c for c, p in zip(cs, ok) if not p]
        pairs = [(g, b) for g in good for b in bad]
        for g, b in rng.sample(pairs, min(max_pairs, len(pairs))):
            out.append(RankedGroup(s.id, s.text, (g, b), (0, 1)))   # one id per spec: its pairs share a split
    return out


@dataclass
class RFTConfig:
    """Rejection-sampling fine-tuning: ``rounds`` of (sample K per prompt, keep, fine-tune)."""

    model: str = "tiny"
    """The model to start from (notebook 09's spec-form SFT model, e.g. runs/spec_sft) when none is passed in."""
    rounds: int = 4
    """Rounds of sampling and fine-tuning."""
    prompts_per_round: int = 40
    """Prompts drawn (without replacement within a round) and sampled K times each."""
    num_generations: int = 8
    """K: completions sampled per prompt."""
    select: str = "passing"
    """"passing": keep the completions the checker passes; "random": the control, as many per prompt drawn at
    random among all K (the same amount of data, without the selection)."""
    epochs: float = 4.0
    """Passes over a round's kept completions (steps = ceil(epochs x kept / batch_size))."""
    batch_size: int = 16
    """Completions per fine-tuning step."""
    lr: float = 3e-4
    """Peak learning rate of each round's fine-tuning. 3e-4 and 4 epochs were the best of three recipes tried on one
    seed of notebook 09 (1e-4 x 2, 3e-4 x 2, 3e-4 x 4 epochs: held-out pass rate 0.68, 0.69, 0.80)."""
    max_new_tokens: int = 48
    """Token budget of a sampled completion."""
    temperature: float = 0.7
    """Sampling temperature."""
    seed: int = 0
    """Seeds the prompt draws, the sampling, the random control and the batch order."""

    def __post_init__(self):
        validate_config(self, {"model": "name", "rounds": ">=1", "prompts_per_round": ">=1", "num_generations": ">=1",
                               "select": SELECTIONS, "epochs": ">0", "batch_size": ">=1", "lr": ">0",
                               "max_new_tokens": ">=1", "temperature": ">0", "seed": ">=0"})

    @property
    def episodes(self) -> int:
        """Completions sampled over the whole run: the budget an RL run is matched on."""
        return self.rounds * self.prompts_per_round * self.num_generations

    @classmethod
    def tiny(cls, select: str = "passing") -> "RFTConfig":
        return cls(select=select)

    @classmethod
    def gpu(cls, select: str = "passing") -> "RFTConfig":
        """GPT-2 (124M): 3e-5 (a tenth of the tiny model's, as its SFT's lr is) and 128 prompts a round."""
        return cls(select=select, prompts_per_round=128, lr=3e-5)


def matched_count(completions: list[list[str]], n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` (prompt, completion) places drawn at random without replacement among all the round's completions."""
    places = [(i, j) for i, row in enumerate(completions) for j in range(len(row))]
    if not 0 <= n <= len(places):
        raise ValueError(f"cannot draw {n} of {len(places)} completions")
    return random.Random(seed).sample(places, n)


def rejection_sampling_finetune(specs: list[Spec], cfg: RFTConfig | None = None, policy=None, tokenizer=None,
                                progress: bool = True, on_round=None, match: list[int] | None = None) -> list[dict]:
    """Expert iteration on the verifier, in place on ``policy`` (default: ``cfg.model``, loaded; then read the result
    from ``on_round`` or pass the policy in); returns one row per round: the completions
    sampled so far (``episodes``), the pass rate of the round's samples, the all-pass and all-fail shares of its
    groups, the per-token entropy of the samples (the mean of -log pi over sampled tokens, an unbiased estimate
    of the mean per-token entropy), how many completions were kept and the fine-tuning's steps and last loss.

    ``match`` (with ``cfg.select == "random"``): the control of a selected run, keeping in round r exactly
    ``match[r]`` completions (that run's ``kept``) drawn at random among the round's, so that both runs fine-tune on
    as many completions with as many steps, round by round, and differ in the selection only. Without it the
    random selection keeps, per prompt, as many as passed among its own samples (`matched_random`)."""
    cfg = cfg or RFTConfig()
    if policy is None:
        policy, tokenizer = load_model(cfg.model, role="policy")
    elif tokenizer is None:
        raise ValueError("pass the policy's tokenizer along with the policy")
    if match is not None and (cfg.select != "random" or len(match) != cfg.rounds):
        raise ConfigError(f"match gives the kept counts of a selected run to its random control: one per round "
                          f"({cfg.rounds}) with select='random'; got {len(match)} counts with select={cfg.select!r}")
    if cfg.prompts_per_round > len(specs):
        raise ConfigError(f"RFTConfig.prompts_per_round ({cfg.prompts_per_round}) is more than the {len(specs)} "
                          f"specifications given; lower it or give more")
    gen, rows = torch.Generator().manual_seed(cfg.seed), []
    bar = progress_bar(range(cfg.rounds), desc=f"rejection sampling ({cfg.select})", disable=not progress)
    for rnd in bar:
        chosen = [specs[i] for i in torch.randperm(len(specs), generator=gen)[:cfg.prompts_per_round].tolist()]
        policy.eval()
        v = sample_verdicts(policy, tokenizer, chosen, cfg.num_generations, cfg.max_new_tokens, cfg.temperature,
                            seed=cfg.seed * 1000 + rnd)
        texts, passed = [s.text for s in chosen], v["passed"].tolist()
        if cfg.select == "passing":
            kept = select_passing(texts, v["completions"], passed)
        elif match is None:
            kept = matched_random(texts, v["completions"], passed, seed=cfg.seed * 1000 + rnd)
        else:
            n = min(match[rnd], len(texts) * cfg.num_generations)
            kept = [(texts[i], v["completions"][i][j]) for i, j in matched_count(v["completions"], n, cfg.seed * 1000 + rnd)]
        kept = [(p, c) for p, c in kept if c.strip()]       # an empty completion teaches nothing but EOS
        row = {"round": rnd + 1, "episodes": (rnd + 1) * cfg.prompts_per_round * cfg.num_generations,
               "pass_rate": v["passed"].float().mean().item(), **group_shares(v["passed"]),
               "objective/entropy": (v["nll"].sum() / v["length"].sum().clamp(min=1)).item(),
               "gold": v["gold"].mean().item(), "kept": len(kept), "steps": 0, "loss": None}
        if kept:
            steps = math.ceil(cfg.epochs * len(kept) / cfg.batch_size)
            ft = FineTuneConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup=min(10, steps // 10),
                                seed=cfg.seed * 1000 + rnd)
            hist = fine_tune(policy, tokenizer, kept, ft, progress=False, desc=f"round {rnd + 1}")
            row.update(steps=steps, loss=sum(hist.loss[-5:]) / len(hist.loss[-5:]))
        rows.append(row)
        bar.set_postfix(pass_rate=f"{row['pass_rate']:.2f}", kept=row["kept"])
        if on_round is not None:
            on_round(row)
    policy.eval()
    return rows
