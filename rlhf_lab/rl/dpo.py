"""Direct Preference Optimization (Rafailov et al. 2023): the reward model folded into the policy.

The RLHF objective for one prompt x (notebook 05, without the token-level detail) is

    max_pi  E_{y ~ pi}[r(x, y)] - beta KL(pi(. | x) || pi_ref(. | x)).

Its maximiser has a closed form (DPO eq. 4): pi*(y | x) = pi_ref(y | x) exp(r(x, y) / beta) / Z(x),
so any reward can be written through the policy that is optimal for it,

    r(x, y) = beta log(pi*(y | x) / pi_ref(y | x)) + beta log Z(x)          (the implicit reward)

and in the Bradley-Terry likelihood of a pair the intractable Z(x) cancels. Fitting the
preferences directly with the policy gives the DPO loss (DPO eq. 7):

    L_DPO = -E log sigmoid( beta [log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l)] ).

IPO (Azar et al. 2023, eq. 17) replaces the log-sigmoid by a squared loss that pulls the
log-ratio margin h to 1 / (2 beta) instead of to infinity: L_IPO = (h - 1/(2 beta))^2.
Log-probabilities of a completion are sums of token log-probs by default (the exact
log pi(y | x)); ``reduction="mean"`` divides by the length.
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
from rlhf_lab.labels.preferences import split_by_prompt, to_pairs
from rlhf_lab.lm.generation import encode_prompts, sequence_logprob, token_logprobs
from rlhf_lab.lm.models import context_length, freeze, load_model
from rlhf_lab.lm.packing import TokenCache, pack, packed_logps
from rlhf_lab.utils.guard import check_parameters, check_step

LOSS_TYPES = ("sigmoid", "ipo")


# ---- the loss: a pure function on sequence log-probs --------------------------------------

def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float = 0.1,
             loss_type: str = "sigmoid", on_device: bool = False) -> tuple[torch.Tensor, dict]:
    """DPO eq. 7 (or IPO) on a batch of pairs; every input is (B,) log pi(y | x) of whole completions.

    Returns (mean loss, metrics) with TRL's names: rewards/chosen and rewards/rejected (mean implicit
    rewards beta log pi/pi_ref), rewards/margins (their mean difference), rewards/accuracies (fraction
    of pairs whose chosen completion has the larger implicit reward): floats, or 0-d tensors left on
    the device with ``on_device`` (a training loop reads them in batches, `utils.progress.DeviceScalars`).

    IPO here is Azar et al.'s eq. 17 on the log-probs given: (h - 1 / (2 beta))^2 with h the difference
    of the two log-ratios. TRL 1.16's ``loss_type="ipo"`` divides each completion's log-ratio by its
    length first (its code comment: the form the IPO authors confirmed), so the same beta is a different
    strength in the two. The kit gives TRL's form with per-token log-probs, ``DPOConfig(reduction="mean")``:
    policy and reference log-probs are then both divided by the completion's length.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps        # log pi(y_w)/pi_ref(y_w)
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    chosen_reward, rejected_reward = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    metrics = {"rewards/chosen": chosen_reward.mean(), "rewards/rejected": rejected_reward.mean(),
               "rewards/margins": (chosen_reward - rejected_reward).mean(),
               "rewards/accuracies": (chosen_reward > rejected_reward).float().mean()}
    return losses.mean(), (metrics if on_device else {k: v.item() for k, v in metrics.items()})


def implicit_reward(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """beta log(pi(y | x) / pi_ref(y | x)): the reward for which pi is the KL-regularised optimum (up to Z(x))."""
    return beta * (policy_logps - ref_logps)


# ---- the closed form on a categorical (checked in notebook 06) -------------------------------

def optimal_policy(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """pi*(y) = pi_ref(y) exp(r(y) / beta) / Z, the maximiser of E_pi[r] - beta KL(pi || pi_ref). (K,) -> (K,)."""
    return torch.softmax(torch.log(ref_probs) + rewards / beta, dim=-1)


def regularised_objective(probs: torch.Tensor, ref_probs: torch.Tensor, rewards: torch.Tensor,
                          beta: float) -> torch.Tensor:
    """E_pi[r] - beta KL(pi || pi_ref) of a categorical policy; differentiable in ``probs``."""
    return (probs * rewards).sum() - beta * (probs * (torch.log(probs) - torch.log(ref_probs))).sum()


# ---- log-probs of given completions -----------------------------------------------------

def encode_completions(tokenizer, prompts: list[str], completions: list[str], device=None,
                       max_length: int | None = None):
    """Prompts left-padded, completions (+ EOS, as the policy ends them) right-padded, side by side.

    Prompt and completion are tokenised separately, as the policy produced them. Returns
    (input_ids (B, P + T), attention_mask, start = P, completion_mask (B, T)).
    """
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device or "cpu")   # (B, P), left-padded
    c_rows = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    if max_length is not None:
        for i, (n, c) in enumerate(zip(prompt_mask.sum(-1).tolist(), c_rows)):
            if n + len(c) > max_length:
                raise ValueError(f"pair {i}: prompt + completion is {n + len(c)} tokens, over the model's "
                                 f"context of {max_length}: {prompts[i][:50]!r}...")
    ids = torch.full((len(c_rows), max(map(len, c_rows))), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, c in enumerate(c_rows):
        ids[i, :len(c)], mask[i, :len(c)] = torch.tensor(c), 1
    ids, mask = ids.to(prompt_ids.device), mask.to(prompt_ids.device)
    return (torch.cat([prompt_ids, ids], 1), torch.cat([prompt_mask, mask], 1), prompt_ids.shape[1], mask)


def completion_logps(model, tokenizer, prompts: list[str], completions: list[str], reduction: str = "sum",
                     batch_size: int | None = None) -> torch.Tensor:
    """log pi(y | x) of each (prompt, completion) at temperature 1, one forward per batch. Returns (N,).

    Differentiable when called with gradients enabled (and ``batch_size`` None: one batch).
    """
    device = next(model.parameters()).device
    step = batch_size or len(prompts)
    out = []
    for i in range(0, len(prompts), step):
        ids, attn, start, mask = encode_completions(tokenizer, prompts[i:i + step], completions[i:i + step],
                                                    device, context_length(model.config))
        out.append(sequence_logprob(token_logprobs(model, ids, attn, start), mask, reduction))
    return torch.cat(out)


def pair_logps(model, tokenizer, pairs: list[dict], reduction: str = "sum", batch_size: int | None = None,
               tokens: tuple[TokenCache, TokenCache] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi(y_w | x), log pi(y_l | x)), each (N,), of (prompt, chosen, rejected) pairs.

    The same numbers as `completion_logps` on the chosen and the rejected completions, from one
    packed row per pair: the prompt is forwarded once and the unembedding runs on completion
    tokens only (rlhf_lab.lm.packing). Differentiable with gradients enabled and ``batch_size`` None.
    ``tokens``: (prompt cache, completion cache) to reuse tokenisations across calls.
    """
    prompt_ids, completion_ids = tokens or (TokenCache(tokenizer), TokenCache(tokenizer, eos=True))
    device, context = next(model.parameters()).device, context_length(model.config)
    step = batch_size or len(pairs)
    out = []
    for i in range(0, len(pairs), step):
        chunk = pairs[i:i + step]
        rows = [(prompt_ids(p["prompt"]), [completion_ids(p["chosen"]), completion_ids(p["rejected"])]) for p in chunk]
        names = [f"pair {i + n} ({p['prompt'][:40]!r}...)" for n, p in enumerate(chunk)]
        out.append(packed_logps(model, pack(rows, tokenizer.pad_token_id, device, context, names), reduction))
    both = torch.cat(out).view(-1, 2)
    return both[:, 0], both[:, 1]


# ---- training --------------------------------------------------------------------------

@dataclass
class DPOConfig:
    """DPO on ranked completions, expanded to pairs (C(K, 2) per ranking) and split by prompt."""

    model: str = "tiny"
    """The SFT model: the policy starts from it, the frozen reference pi_ref is a copy of it."""
    beta: float = 0.1
    """Strength of the KL regularisation (DPO's beta; 0.1 in the paper and in TRL)."""
    loss_type: str = "sigmoid"
    """"sigmoid" (DPO eq. 7) or "ipo" (Azar et al. 2023)."""
    reduction: str = "sum"
    """log pi(y | x) as the "sum" of token log-probs (exact) or their "mean" (length-normalised)."""
    epochs: int = 1
    """Passes over the training pairs."""
    batch_size: int = 16
    """Pairs per optimizer step (2 x batch_size sequences in one forward)."""
    lr: float = 1e-4
    """Adam learning rate: 1e-4 for the tiny model; 1e-6 for GPT-2 (`gpu()`), as the DPO paper (Rafailov et al.
    2023, App. B) and TRL's DPOConfig default use."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    val_fraction: float = 0.2
    """Share of prompts held out (split by prompt, the same split as the reward model's)."""
    max_pairs: int | None = None
    """Use at most this many training pairs (None: all)."""
    eval_every: int = 25
    """Steps between evaluations of the held-out implicit-reward accuracy."""
    seed: int = 0
    """Seeds the split, the pair order and the batches."""
    shuffle: bool = True
    """Shuffle the pairs (each epoch); False keeps the given order (benchmarks compare with TRL batch for batch)."""
    bf16: bool = True
    """On CUDA, forwards under bf16 autocast (log-softmax, log-ratios and the loss stay float32)."""
    device: str | None = None
    """"cpu", "cuda", or None for get_device()."""

    def __post_init__(self):
        validate_config(self, {"model": "name", "beta": ">0", "loss_type": LOSS_TYPES, "reduction": ("sum", "mean"),
                               "epochs": ">=1", "batch_size": ">=1", "lr": ">0", "max_grad_norm": ">0",
                               "val_fraction": "[0,1)", "max_pairs": ">=1", "eval_every": ">=1", "seed": ">=0"})

    @classmethod
    def tiny(cls) -> "DPOConfig":
        return cls()

    @classmethod
    def gpu(cls) -> "DPOConfig":
        """GPT-2 (124M) on one GPU: batch 64 pairs, lr 1e-6 and beta 0.1 as in the DPO paper (Rafailov et
        al. 2023, App. B); 64 pairs of about 2 x 60 tokens, some eight thousand a step (not yet tuned
        on a GPU)."""
        return cls(model="gpt2", batch_size=64, lr=1e-6, epochs=2)


@dataclass
class DPOHistory:
    """What `train_dpo` did, for plots and tests (TRL's metric names)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    """Per step: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies."""
    val_steps: list[int] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    """Held-out pairs whose chosen completion gets the larger implicit reward."""
    val_margin: list[float] = field(default_factory=list)
    n_train_pairs: int = 0
    n_val_pairs: int = 0
    pairs_per_s: float = 0.0
    """Training pairs per second, held-out evaluations excluded."""
    wall_time_s: float = 0.0
    reference_s: float = 0.0
    """Time spent computing the reference log-probs, once, before training."""
    val_s: float = 0.0
    """Time spent on held-out evaluations (excluded from pairs_per_s)."""


@torch.no_grad()
def evaluate_pairs(policy, tokenizer, pairs: list[dict], ref_logps: tuple[torch.Tensor, torch.Tensor],
                   beta: float, reduction: str = "sum", batch_size: int = 64, tokens=None) -> dict[str, float]:
    """Implicit-reward accuracy and mean margin of ``policy`` on pairs, with cached reference log-probs.
    Ties count as half right (TRL's ``rewards/accuracies`` counts them as wrong)."""
    chosen, rejected = pair_logps(policy, tokenizer, pairs, reduction, batch_size, tokens)
    margin = (implicit_reward(chosen, ref_logps[0].to(chosen.device), beta)
              - implicit_reward(rejected, ref_logps[1].to(chosen.device), beta))
    # a tie (at the start, policy = reference) counts as half right: a coin flip, not a mistake
    accuracy = ((margin > 0).double() + 0.5 * (margin == 0).double()).mean().item()
    return {"accuracy": accuracy, "margin": margin.mean().item()}


def train_dpo(cfg: DPOConfig, records, policy=None, tokenizer=None, reference=None, val_records=None,
              progress: bool = True) -> tuple[object, DPOHistory]:
    """Train a policy with DPO on preference records; returns (policy, history).

    Records are split by prompt (``cfg.val_fraction``) unless ``val_records`` is given, and each
    ranking becomes its C(K, 2) (chosen, rejected) pairs. The reference log-probs of every pair are
    computed once, before training, and cached. A NaN or inf loss stops training with an error.
    """
    set_seed(cfg.seed)
    device = get_device(cfg.device, verbose=False)
    if policy is None:
        policy, tokenizer = load_model(cfg.model, role="policy", device=device)
    elif tokenizer is None:
        raise ValueError("pass the policy's tokenizer along with the policy")
    reference = freeze(reference if reference is not None else load_model(cfg.model, device=device)[0])
    policy.eval()   # dropout off: the log-ratios must be those of the deterministic model
    if val_records is None:
        records, val_records = split_by_prompt(records, cfg.val_fraction)
    train, val = to_pairs(records), to_pairs(val_records)
    if cfg.shuffle:
        random.Random(cfg.seed).shuffle(train)
    train = train[:cfg.max_pairs] if cfg.max_pairs else train
    if not train:
        raise ValueError("no training pairs: give more records or a smaller val_fraction")
    hist = DPOHistory(n_train_pairs=len(train), n_val_pairs=len(val))
    per_epoch = math.ceil(len(train) / cfg.batch_size)

    t0 = time.perf_counter()
    tokens = (TokenCache(tokenizer), TokenCache(tokenizer, eos=True))   # each distinct text tokenised once
    def ref_of(rows):   # the reference never changes: one pass, cached
        with torch.no_grad(), bf16_autocast(device, cfg.bf16):
            return pair_logps(reference, tokenizer, rows, cfg.reduction, 64, tokens)
    ref_train, ref_val = ref_of(train), (ref_of(val) if val else None)
    hist.reference_s = time.perf_counter() - t0

    def validate(step):
        if val:
            t = time.perf_counter()
            with bf16_autocast(device, cfg.bf16):   # as the reference pass, so step 0's margins are exactly 0
                m = evaluate_pairs(policy, tokenizer, val, ref_val, cfg.beta, cfg.reduction, tokens=tokens)
            hist.val_steps.append(step), hist.val_accuracy.append(m["accuracy"]), hist.val_margin.append(m["margin"])
            hist.val_s += time.perf_counter() - t

    opt = adamw(policy.parameters(), lr=cfg.lr)
    scalars = DeviceScalars(device)   # per-step loss and metrics, read from a GPU every 25 steps

    def record(rows: list[dict]) -> None:
        for row in rows:   # a non-finite loss or gradient stops training; nothing has been saved
            loss, grad_norm = row.pop("loss"), row.pop("grad_norm")
            check_step(loss, grad_norm, "the DPO", f"at step {len(hist.loss) + 1} of {cfg.epochs * per_epoch}",
                       f"lower lr (={cfg.lr}) or use reduction='mean' for long completions. The policy was not saved.")
            hist.loss.append(loss), hist.metrics.append(row)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, start = 0, time.perf_counter()
    validate(0)
    bar = progress_bar(total=cfg.epochs * per_epoch, desc=f"DPO (beta={cfg.beta})", disable=not progress)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train), generator=gen) if cfg.shuffle else torch.arange(len(train))
        on_device = order.to(ref_train[0].device)   # one copy per epoch, not one per step
        for idx, idx_dev in zip(order.split(cfg.batch_size), on_device.split(cfg.batch_size)):
            with bf16_autocast(device, cfg.bf16):
                chosen, rejected = pair_logps(policy, tokenizer, [train[i] for i in idx.tolist()], cfg.reduction,
                                              tokens=tokens)
            loss, metrics = dpo_loss(chosen, rejected, ref_train[0][idx_dev], ref_train[1][idx_dev],
                                     cfg.beta, cfg.loss_type, on_device=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            opt.step()
            step += 1
            hist.steps.append(step)
            record(scalars.add(loss=loss, grad_norm=grad_norm, **metrics))
            if step % cfg.eval_every == 0:
                record(scalars.read())
                validate(step)
            bar.update(1)
            bar.set_postfix(loss=f"{hist.loss[-1]:.3f}" if hist.loss else "-",
                            acc=f"{hist.val_accuracy[-1]:.2f}" if hist.val_accuracy else "-")
    record(scalars.read())
    bar.close()
    check_parameters(policy, "the policy's", f"after {step} DPO steps", f"lower lr (={cfg.lr}). The policy was not saved.")
    hist.wall_time_s = time.perf_counter() - start
    hist.pairs_per_s = cfg.epochs * len(train) / (hist.wall_time_s - hist.val_s)
    if not hist.val_steps or hist.val_steps[-1] != step:
        validate(step)
    return policy, hist
