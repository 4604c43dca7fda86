"""Training the Bradley-Terry reward model r_phi(x, y) on ranked completions (InstructGPT §3.5).

The model: the SFT transformer with its unembedding (n_emb -> n_vocab) replaced by a
linear head n_emb -> 1, read at the last real token of prompt + completion (`rlhf_lab.reward.model`,
which also writes and reads its folder, a transformers sequence classifier).

The loss (Ouyang et al. 2022, eq. 1; `rlhf_lab.reward.losses`): preferences are modelled as

    p(y_w > y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))                      (Bradley-Terry)
    L_RM = -E_(x, y_w, y_l) [log sigmoid(r(x, y_w) - r(x, y_l))]

InstructGPT trains on all C(K, 2) comparisons of one prompt as a single batch element:
the K completions are forwarded once each (K forwards, not 2 C(K, 2)), and the prompt's
loss is the mean over its pairs, (1 / C(K, 2)) sum_{i ranked above j} -log sigmoid(r_i - r_j).
Shuffling the pairs of all prompts into one data set instead makes each completion appear
K - 1 times per epoch, and InstructGPT reports that the model then overfits after one epoch.

The loss only sees differences of rewards, so r + c fits as well as r for any c (shift
invariance). After training, the head's bias is set so that the mean reward over the
training completions is 0 (the course's centring), and optionally the scale so that the std is 1.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rlhf_lab.config import adamw, bf16_autocast, get_device, set_seed, validate_config
from rlhf_lab.utils.progress import DeviceScalars, progress_bar
from rlhf_lab.labels.store import ranking_to_pairs
from rlhf_lab.labels.preferences import split_by_prompt
from rlhf_lab.lm.packing import sender
from rlhf_lab.reward.losses import bt_loss, grouped_bt_loss, pair_mask
from rlhf_lab.reward.model import RewardModel
from rlhf_lab.utils.guard import check_parameters, check_step

# ---- data and training -------------------------------------------------------------------

@dataclass(frozen=True)
class RankedGroup:
    """One prompt with its K completions and a ranking (completion indices, best first)."""

    prompt_id: str
    prompt: str
    completions: tuple[str, ...]
    ranking: tuple[int, ...]

    def ranks(self) -> list[int]:
        """Rank of each completion (0 = best), in completion order."""
        out = [0] * len(self.completions)
        for position, idx in enumerate(self.ranking):
            out[idx] = position
        return out

    def pairs(self) -> list[tuple[int, int]]:
        """The C(K, 2) (winner, loser) index pairs of the ranking."""
        return ranking_to_pairs(list(self.ranking))


def as_groups(records) -> list[RankedGroup]:
    """Ranked groups from preference records (rlhf_lab.labels.preferences) or RankedGroups; errors name the bad one."""
    groups = []
    for n, rec in enumerate(records):
        if isinstance(rec, RankedGroup):
            groups.append(rec)
            continue
        try:
            groups.append(RankedGroup(str(rec.prompt_id), rec.prompt, tuple(rec.completions), tuple(rec.ranking)))
        except AttributeError as err:
            raise TypeError(f"record {n} is not a preference record ({err})") from err
    if not groups:
        raise ValueError("no preference records to train on: label some in notebook 02 or load the shipped "
                         "data with rlhf_lab.labels.preferences")
    for n, g in enumerate(groups):
        if sorted(g.ranking) != list(range(len(g.completions))) or len(g.completions) < 2:
            raise ValueError(f"record {n} (prompt {g.prompt_id}): ranking {list(g.ranking)} is not a "
                             f"permutation of the {len(g.completions)} completions' indices")
    return groups


@dataclass
class RewardConfig:
    """Training the reward model r_phi on ranked completions."""

    backbone: str = "tiny"
    """The transformer under the scalar head: a shipped name, a folder or a hub id."""
    batching: str = "grouped"
    """"grouped": all C(K,2) pairs of a prompt in one element (InstructGPT); "shuffled": pairs shuffled."""
    epochs: int = 2
    """Passes over the training data."""
    prompts_per_batch: int = 8
    """Grouped batching: prompts per optimizer step (K completions each)."""
    pairs_per_batch: int = 48
    """Shuffled batching: pairs per step (8 prompts x C(4,2) = 48 keeps the steps equal)."""
    lr: float = 3e-4
    """AdamW learning rate: 3e-4 for the tiny model; 1e-5 for GPT-2 (`gpu()`; InstructGPT trained its 6B
    reward model at 9e-6, Ouyang et al. 2022, App. C.2)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    val_fraction: float = 0.2
    """Share of prompts held out for validation (split by a hash of the prompt id)."""
    eval_every: int = 10
    """Steps between validation evaluations."""
    normalise_std: bool = False
    """After training, also scale the reward to std 1 (the mean is always set to 0)."""
    seed: int = 0
    """Seeds the head initialisation, the split and the batch order."""
    shuffle: bool = True
    """Shuffle prompts or pairs each epoch; False keeps the given order (to compare with TRL batch for batch)."""
    bf16: bool = True
    """On CUDA, the transformer under bf16 autocast (the head, the rewards and the loss stay float32)."""
    device: str | None = None
    """"cpu", "cuda", or None for get_device()."""

    def __post_init__(self):
        validate_config(self, {"backbone": "name", "batching": ("grouped", "shuffled"), "epochs": ">=1",
                               "prompts_per_batch": ">=1", "pairs_per_batch": ">=1", "lr": ">0",
                               "weight_decay": ">=0", "max_grad_norm": ">0", "val_fraction": "[0,1)",
                               "eval_every": ">=1", "seed": ">=0"})

    @classmethod
    def tiny(cls) -> "RewardConfig":
        return cls()

    @classmethod
    def gpu(cls) -> "RewardConfig":
        """GPT-2 (124M) on one GPU, after InstructGPT's reward-model recipe (Ouyang et al. 2022, §3.5 and
        App. C.2): 64 prompts per batch with all their K-choose-2 comparisons (64 x 4 completions of
        about 50 tokens with their prompts, some 13,000 tokens a step, where 16 prompts left a GPU
        idle; 128 would leave 2,048 labelled prompts 16 steps), one epoch (more overfits), lr 1e-5
        (theirs: 9e-6). The shuffled-pairs batching keeps the same comparisons per step
        (64 x 6 = 384 pairs)."""
        return cls(backbone="gpt2", epochs=1, prompts_per_batch=64, pairs_per_batch=384, lr=1e-5, eval_every=10)


@dataclass
class History:
    """What `train_reward_model` did, for plots and tests."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_epochs: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    forwards: int = 0
    """Completions forwarded through the model during training."""
    sequence_tokens: int = 0
    """Tokens of the (prompt + completion) sequences trained on, a prompt counted with each completion."""
    forwarded_tokens: int = 0
    """Tokens the transformer actually processed (no padding): each prompt once per packed group."""
    pairs_seen: int = 0
    wall_time_s: float = 0.0
    reward_mean_before: float = 0.0
    """Mean reward over the training completions before the bias was reset."""
    reward_std: float = 0.0
    """Std of the reward over the training completions (after normalisation if asked)."""
    train_s: float = 0.0
    """Seconds in the optimizer loop alone (wall_time_s also counts validation and the final centring pass)."""


def _group_rewards(rm: RewardModel, groups: list[RankedGroup], tokens=None, hist: History | None = None):
    """Each completion forwarded once, the prompt once per group (packed, rlhf_lab.lm.packing):
    (G, K) rewards, (G, K) ranks, (G, K) valid. Counts the tokens into ``hist`` if given."""
    k = max(len(g.completions) for g in groups)
    flat = _packed_rewards(rm, [(g.prompt, list(g.completions)) for g in groups], tokens, hist)
    # ranks and validity are known on the host: built there, sent in one copy each
    ranks = torch.tensor([g.ranks() + [k] * (k - len(g.completions)) for g in groups])
    valid = torch.tensor([[True] * len(g.completions) + [False] * (k - len(g.completions)) for g in groups])
    send = sender(flat.device)
    ranks, valid = send(ranks), send(valid)
    rewards = torch.zeros(len(groups), k, device=flat.device, dtype=flat.dtype).masked_scatter(valid, flat)
    return rewards, ranks, valid


def _packed_rewards(rm: RewardModel, groups: list[tuple[str, list[str]]], tokens, hist: History | None):
    batch = rm.pack(groups, tokens)
    if hist is not None:
        hist.forwards += batch.n_blocks
        hist.sequence_tokens += batch.sequence_tokens
        hist.forwarded_tokens += batch.real_tokens
    return rm.forward_packed(batch)


@torch.no_grad()
def evaluate(rm: RewardModel, groups: list[RankedGroup], batch_prompts: int = 32, tokens=None) -> dict[str, float]:
    """Mean pairwise BT loss and accuracy over all ranked pairs of ``groups`` (eval mode)."""
    was_training = rm.training
    rm.eval()
    total_loss, total_correct, total_pairs = 0.0, 0.0, 0
    for i in range(0, len(groups), batch_prompts):
        rewards, ranks, valid = _group_rewards(rm, groups[i:i + batch_prompts], tokens)
        pairs = pair_mask(ranks, valid)
        diff = (rewards[:, :, None] - rewards[:, None, :])[pairs]
        total_loss += (-F.logsigmoid(diff)).sum().item()
        total_correct += (diff > 0).float().sum().item()
        total_pairs += int(pairs.sum())
    rm.train(was_training)
    return {"loss": total_loss / total_pairs, "accuracy": total_correct / total_pairs, "pairs": total_pairs}


def normalise(rm: RewardModel, groups: list[RankedGroup], unit_std: bool = False) -> tuple[float, float]:
    """Set the head's bias so the mean reward over the groups' completions is 0 (the course's centring);
    with ``unit_std`` also scale the head so the std is 1. Returns (mean before, std after)."""
    rewards = rm.score([g.prompt for g in groups for _ in g.completions], [c for g in groups for c in g.completions])
    mean, std = rewards.mean().item(), rewards.std().item()
    with torch.no_grad():
        rm.head.bias -= mean
        if unit_std and std > 0:
            rm.head.weight /= std
            rm.head.bias /= std
            std = 1.0
    return mean, std


def train_reward_model(cfg: RewardConfig, records, val_records=None, rm: RewardModel | None = None,
                       progress: bool = True) -> tuple[RewardModel, History]:
    """Train r_phi on ranked groups with grouped (InstructGPT) or shuffled-pair batching.

    ``records``: preference records or RankedGroups; without ``val_records`` they are split
    by prompt (cfg.val_fraction). Returns ``(reward_model, history)``; the model's bias is
    reset so the mean training reward is 0. A NaN or inf loss stops training with an error.
    """
    if cfg.batching not in ("grouped", "shuffled"):
        raise ValueError(f"batching must be 'grouped' or 'shuffled', got {cfg.batching!r}")
    set_seed(cfg.seed)
    groups = as_groups(records)
    if val_records is not None:   # an explicit validation set; [] means none
        train, val = groups, (as_groups(val_records) if len(val_records) else [])
    else:
        train, val = split_by_prompt(groups, cfg.val_fraction)
    if not train:
        raise ValueError("the split left no training prompts; give more records or a smaller val_fraction")
    rm = rm or RewardModel.from_backbone(cfg.backbone, device=get_device(cfg.device, verbose=False))
    opt = adamw(rm.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = random.Random(cfg.seed)
    tokens = rm.token_caches()   # every prompt and completion tokenised once for the whole run
    pairs = [(g, w, l) for g in train for w, l in g.pairs()]
    per_epoch = (math.ceil(len(train) / cfg.prompts_per_batch) if cfg.batching == "grouped"
                 else math.ceil(len(pairs) / cfg.pairs_per_batch))
    hist, start, step = History(), time.perf_counter(), 0

    val_s = [0.0]

    def validate():
        if val:
            t = time.perf_counter()
            with bf16_autocast(rm.device, cfg.bf16):
                m = evaluate(rm, val, tokens=tokens)
            val_s[0] += time.perf_counter() - t
            hist.val_steps.append(step), hist.val_epochs.append(step / per_epoch)
            hist.val_loss.append(m["loss"]), hist.val_accuracy.append(m["accuracy"])

    scalars = DeviceScalars(rm.device)   # per-step loss and accuracy, read from a GPU every 25 steps

    def record(rows: list[dict]) -> None:
        for row in rows:   # a non-finite loss or gradient stops training before anything is saved
            check_step(row["loss"], row["grad_norm"], "the reward-model",
                       f"at step {len(hist.loss) + 1} of {cfg.epochs * per_epoch}",
                       f"lower the learning rate (lr={cfg.lr}) or check the records. Nothing was saved.")
            hist.loss.append(row["loss"]), hist.accuracy.append(row["accuracy"])

    rm.train()
    validate()
    bar = progress_bar(total=cfg.epochs * per_epoch, desc=f"reward model ({cfg.batching})", disable=not progress)
    for _ in range(cfg.epochs):
        if cfg.batching == "grouped":
            order = rng.sample(train, len(train)) if cfg.shuffle else train
            batches = [order[i:i + cfg.prompts_per_batch] for i in range(0, len(order), cfg.prompts_per_batch)]
        else:
            order = rng.sample(pairs, len(pairs)) if cfg.shuffle else pairs
            batches = [order[i:i + cfg.pairs_per_batch] for i in range(0, len(order), cfg.pairs_per_batch)]
        for batch in batches:
            with bf16_autocast(rm.device, cfg.bf16):
                if cfg.batching == "grouped":
                    loss, stats = grouped_bt_loss(*_group_rewards(rm, batch, tokens, hist), on_device=True)
                    hist.pairs_seen += sum(len(g.pairs()) for g in batch)
                else:  # each pair forwards both of its completions: 2 C(K, 2) forwards per prompt per epoch
                    r = _packed_rewards(rm, [(g.prompt, [g.completions[w], g.completions[l]]) for g, w, l in batch],
                                        tokens, hist).view(-1, 2)
                    loss, stats = bt_loss(r[:, 0], r[:, 1], on_device=True)
                    hist.pairs_seen += len(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.max_grad_norm)
            opt.step()
            step += 1
            hist.steps.append(step)
            record(scalars.add(loss=loss, accuracy=stats["rewards/accuracies"], grad_norm=grad_norm))
            if step % cfg.eval_every == 0:
                record(scalars.read())
                validate()
            bar.update(1)
            bar.set_postfix(loss=f"{hist.loss[-1]:.3f}" if hist.loss else "-",
                            val=f"{hist.val_loss[-1]:.3f}" if hist.val_loss else "-")
    record(scalars.read())
    bar.close()
    check_parameters(rm, "the reward model's", f"after {step} steps",
                     f"lower the learning rate (lr={cfg.lr}). Nothing was saved.")
    hist.train_s = time.perf_counter() - start - val_s[0]
    if not hist.val_steps or hist.val_steps[-1] != step:
        validate()
    rm.eval()
    hist.reward_mean_before, hist.reward_std = normalise(rm, train, cfg.normalise_std)
    hist.wall_time_s = time.perf_counter() - start
    return rm, hist
