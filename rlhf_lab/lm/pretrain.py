"""The two steps before RLHF: unsupervised pre-training (UPT) and supervised fine-tuning (SFT).

InstructGPT (Ouyang et al. 2022, §3) starts from a pretrained LM and fine-tunes it on
labeler-written demonstrations. The kit does both on the review world:

* UPT: next-token cross-entropy on plain reviews, L = -sum_t log p_theta(x_t | x_<t),
  each review followed by EOS so that the model learns to stop.
* SFT: the same loss on instruction prompts and world-written demonstrations, counted
  on the demonstration tokens only (the prompt is given, not predicted).

`pretrain(cfg)` and `sft(cfg)` return a `History` and, given ``out_dir``, save the model,
its tokenizer and a ``metadata.json`` (command, seed, steps, wall time, final loss).
"""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_lab import __version__
from rlhf_lab.utils.artefacts import atomic_dir, check_writable
from rlhf_lab.config import ConfigError, adamw, bf16_autocast, get_device, set_seed, validate_config
from rlhf_lab.utils.progress import DeviceScalars, progress_bar
from rlhf_lab.lm.gpt2_bpe import gpt2_tokenizer
from rlhf_lab.lm.packing import packed_lm_loss, sender
from rlhf_lab.utils.cards import texts_sha256
from rlhf_lab.lm.tokens import PAD, train_tokenizer
from rlhf_lab.lm.models import context_length, count_parameters, load_model, policy_card
from rlhf_lab.world.reviews import ReviewWorld
from rlhf_lab.utils.guard import check_parameters, check_step


def with_steps(cfg, steps: int):
    """``cfg`` run for ``steps`` optimizer steps instead of its preset's: the warm-up keeps its share of
    the run (200 of 3,000 becomes 20 of 300), validation happens at least at the end, and pre-training
    builds only the documents the steps can draw (``steps x batch_size``, at most the preset's)."""
    if steps < 1:
        raise ConfigError(f"{type(cfg).__name__}.steps must be at least 1, got {steps}")
    scaled = {"steps": steps, "warmup": round(cfg.warmup * steps / cfg.steps), "eval_every": min(cfg.eval_every, steps)}
    if hasattr(cfg, "n_docs"):
        scaled["n_docs"] = min(cfg.n_docs, steps * cfg.batch_size)
    return replace(cfg, **scaled)


@dataclass
class PretrainConfig:
    """UPT of a GPT-2-architecture model on the review world's corpus."""

    seed: int = 0
    """Seeds the world, the initialisation and the batch order."""
    n_docs: int = 40_000
    """Reviews in the training corpus (the world writes a fresh, deterministic stream)."""
    tokenizer: str = "world"
    """"world": a byte-level BPE trained on the review world (``vocab_size`` tokens); "gpt2": GPT-2's own
    50,257-token BPE (Radford et al. 2019; `rlhf_lab.lm.gpt2_bpe`) plus PAD, so the model has GPT-2's shape."""
    vocab_size: int = 2048
    """BPE vocabulary of the trained tokenizer (PAD and EOS included); unused with tokenizer="gpt2"."""
    n_layer: int = 4
    """Transformer blocks."""
    n_head: int = 4
    """Attention heads per block."""
    n_embd: int = 192
    """Width n_emb of the residual stream (the reward head maps n_emb -> 1)."""
    n_positions: int = 128
    """Context length in tokens (prompt + completion)."""
    steps: int = 1200
    """Optimizer steps."""
    batch_size: int = 32
    """Reviews per step."""
    lr: float = 3e-3
    """Peak learning rate (AdamW), after linear warm-up, then cosine decay to 10%."""
    warmup: int = 50
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices."""
    eval_every: int = 200
    """Steps between validation losses."""
    device: str | None = None
    """"cpu", "cuda", or None for `get_device()`."""

    def __post_init__(self):
        validate_config(self, {"seed": ">=0", "n_docs": ">=1", "tokenizer": ("world", "gpt2"), "vocab_size": ">=1",
                               "n_layer": ">=1", "n_head": ">=1", "n_embd": ">=1", "n_positions": ">=1", "steps": ">=1",
                               "batch_size": ">=1", "lr": ">0", "warmup": ">=0", "weight_decay": ">=0",
                               "eval_every": ">=1"})
        if self.vocab_size < 258:
            raise ConfigError(f"PretrainConfig.vocab_size must be at least 258 (256 bytes, EOS and PAD), "
                              f"got {self.vocab_size}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"PretrainConfig.n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.n_positions < 2:
            raise ConfigError(f"PretrainConfig.n_positions must be at least 2, got {self.n_positions}")

    @classmethod
    def tiny(cls) -> "PretrainConfig":
        """The shipped embedded model: a few minutes on 2 CPU cores."""
        return cls()

    @classmethod
    def demo(cls) -> "PretrainConfig":
        """A few seconds of training, for notebook 00 and the smoke tests."""
        return cls(n_docs=2000, vocab_size=1024, n_layer=2, n_embd=64, n_head=2, steps=30, eval_every=15)

    @classmethod
    def gpu(cls) -> "PretrainConfig":
        """GPT-2 (124M) on the review world: GPT-2's tokenizer, 12 layers, 12 heads, n_emb 768, context 1024
        (Radford et al. 2019, the smallest model): 124.4M parameters, the hub's shape plus one PAD row."""
        return cls(n_docs=400_000, tokenizer="gpt2", n_layer=12, n_head=12, n_embd=768, n_positions=1024,
                   steps=3000, batch_size=64, lr=6e-4, warmup=200, eval_every=500)


@dataclass
class SFTConfig:
    """Supervised fine-tuning on instruction prompts and world-written demonstrations."""

    seed: int = 0
    """Seeds the demonstrations and the batch order."""
    base: str = "tiny-base"
    """The pretrained model to start from: a shipped name, a folder, or a hub id."""
    n_demos: int = 20_000
    """(instruction, demonstration) pairs."""
    steps: int = 600
    """Optimizer steps."""
    batch_size: int = 32
    """Pairs per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW), warm-up then cosine decay."""
    warmup: int = 30
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    eval_every: int = 200
    """Steps between validation losses."""
    device: str | None = None
    """"cpu", "cuda", or None for `get_device()`."""

    def __post_init__(self):
        validate_config(self, {"seed": ">=0", "base": "name", "n_demos": ">=1", "steps": ">=1", "batch_size": ">=1",
                               "lr": ">0", "warmup": ">=0", "weight_decay": ">=0", "eval_every": ">=1"})

    @classmethod
    def tiny(cls) -> "SFTConfig":
        return cls()

    @classmethod
    def demo(cls) -> "SFTConfig":
        return cls(n_demos=1000, steps=30, eval_every=15)

    @classmethod
    def gpu(cls) -> "SFTConfig":
        return cls(base="gpt2", n_demos=50_000, steps=1000, batch_size=64, lr=1e-4, warmup=100, eval_every=250)


@dataclass
class History:
    """What a training run did: read by notebooks and tests instead of parsing logs."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    n_parameters: int = 0


def tokenise_for_lm(tokenizer, prompts: list[str], targets: list[str], max_len: int):
    """Rows of token ids with a loss mask on the target part (and its EOS); truncated to max_len."""
    eos = tokenizer.eos_token_id
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else None
    t_ids = tokenizer(targets, add_special_tokens=False)["input_ids"]
    rows = []
    for i, t in enumerate(t_ids):
        p = p_ids[i] if p_ids else []
        ids = (p + t + [eos])[:max_len]
        rows.append((ids, ([0] * len(p) + [1] * (len(t) + 1))[:max_len]))
    return rows


def pad_batch(rows, pad_id: int, device):
    """Right-pad rows to (B, L) ids, attention mask and loss mask."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    lm = torch.zeros((len(rows), width), dtype=torch.float)
    for i, (r, m) in enumerate(rows):
        ids[i, :len(r)], att[i, :len(r)], lm[i, :len(m)] = torch.tensor(r), 1, torch.tensor(m, dtype=torch.float)
    send = sender(device)   # pinned and non-blocking to a GPU
    return send(ids), send(att), send(lm)


def lm_loss(model, ids, attention_mask, loss_mask) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens where loss_mask is 1. ids: (B, L)."""
    logits = model(input_ids=ids, attention_mask=attention_mask).logits[:, :-1]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="none")
    mask = loss_mask[:, 1:].reshape(-1)
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def _fit(model, tokenizer, train_rows, val_rows, cfg, desc: str, progress: bool) -> History:
    """The shared training loop: AdamW, warm-up + cosine, gradient clipping, NaN guard."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = adamw([{"params": decay, "weight_decay": cfg.weight_decay},
                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        losses = [packed_lm_loss(model, val_rows[i:i + 64], tokenizer.pad_token_id, device).item()
                  for i in range(0, len(val_rows), 64)]
        model.train()
        return sum(losses) / len(losses)

    def record(rows: list[dict]) -> None:
        """Append the losses read from the device; stop at a non-finite loss or gradient."""
        for row in rows:
            check_step(row["loss"], row["grad_norm"], f"{desc}: the", f"at step {len(hist.loss) + 1} of {cfg.steps}",
                       f"lower the learning rate (lr={cfg.lr}) or check the data. Nothing was saved.")
            hist.loss.append(row["loss"])

    hist, start = History(n_parameters=count_parameters(model)), time.perf_counter()
    model.train()
    scalars = DeviceScalars(device)   # the losses, read from a GPU every 25 steps, not at every step
    bar = progress_bar(range(cfg.steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        idx = torch.randint(len(train_rows), (cfg.batch_size,), generator=gen).tolist()
        with bf16_autocast(device):   # bf16 matmuls on a GPU; lm_loss's log-softmax stays float32
            loss = packed_lm_loss(model, [train_rows[i] for i in idx], tokenizer.pad_token_id, device)   # no padding
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.steps.append(step)
        record(scalars.add(loss=loss, grad_norm=grad_norm))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            record(scalars.read())
            hist.val_steps.append(step + 1)
            hist.val_loss.append(evaluate())
            bar.set_postfix(loss=f"{hist.loss[-1]:.3f}", val=f"{hist.val_loss[-1]:.3f}")
    model.eval()
    check_parameters(model, f"{desc}: the model's", f"after {cfg.steps} steps",
                     f"lower the learning rate (lr={cfg.lr}). Nothing was saved.")
    hist.wall_time_s = time.perf_counter() - start
    return hist


def _save(model, tokenizer, out_dir, cfg, hist: History, command: str, data: tuple[str, str]) -> None:
    """save_pretrained (safetensors) plus a metadata.json that says how the checkpoint was made,
    written whole and swapped in atomically (`rlhf_lab.utils.artefacts.atomic_dir`)."""
    meta = {
        "command": command, "config": asdict(cfg), "seed": cfg.seed, "steps": cfg.steps,
        "data": data[0], "data_sha256": data[1],
        "wall_time_s": round(hist.wall_time_s, 1), "final_train_loss": round(sum(hist.loss[-20:]) / len(hist.loss[-20:]), 4),
        "final_val_loss": round(hist.val_loss[-1], 4), "n_parameters": hist.n_parameters,
        "device": str(next(model.parameters()).device), "threads": torch.get_num_threads(),
        "versions": {"rlhf_lab": __version__, "torch": torch.__version__, "python": platform.python_version()},
        # a thinned training curve, so notebooks can plot how the shipped model was made
        "curve": {"steps": hist.steps[::10], "loss": [round(x, 4) for x in hist.loss[::10]],
                  "val_steps": hist.val_steps, "val_loss": [round(x, 4) for x in hist.val_loss]},
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")
        (tmp / "README.md").write_text(policy_card(Path(out_dir), meta, what=(
            "A GPT-2-architecture causal language model made with rlhf-lab: " + ("pretrained (UPT) on the "
            "course's review world" if command.startswith(("rlhf-lab pretrain", "rlhf_lab.lm.pretrain")) else
            "fine-tuned (SFT) on instruction demonstrations of the course's review world") + ".")))


def pretrain(cfg: PretrainConfig | None = None, out_dir=None, progress: bool = True,
             command: str = "rlhf_lab.lm.pretrain.pretrain(cfg)") -> tuple:
    """UPT: a tokenizer (trained on the review world, or GPT-2's own) and a fresh GPT-2-architecture model.

    Returns ``(model, tokenizer, history)``; saves them to ``out_dir`` when given.
    """
    cfg = cfg or PretrainConfig.tiny()
    if out_dir is not None:
        check_writable(out_dir)
    set_seed(cfg.seed)
    device = get_device(cfg.device, verbose=False)
    world = ReviewWorld(cfg.seed)
    docs = world.corpus(cfg.n_docs)
    if cfg.tokenizer == "gpt2":   # GPT-2's own BPE, with a PAD token of its own (PAD is not EOS)
        tokenizer = gpt2_tokenizer()
        tokenizer.add_special_tokens({"pad_token": PAD})
        tokenizer.padding_side = "left"
    else:   # instructions are in the tokenizer's corpus so SFT prompts tokenise as well as reviews
        extra = [p.text for p in world.instruction_prompts(2000)]
        tokenizer = train_tokenizer(docs + extra, cfg.vocab_size)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        activation_function="gelu_pytorch_tanh",   # GPT-2's GELU, fused (models.fused_gelu)
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config).to(device)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    train_rows = tokenise_for_lm(tokenizer, [], docs, cfg.n_positions)
    val_rows = tokenise_for_lm(tokenizer, [], world.corpus(512, split="val"), cfg.n_positions)
    hist = _fit(model, tokenizer, train_rows, val_rows, cfg, "pretrain (UPT)", progress)
    if out_dir is not None:
        _save(model, tokenizer, out_dir, cfg, hist, command,
              (f"{len(docs)} review-world documents (seed {cfg.seed})", texts_sha256(docs)))
    return model, tokenizer, hist


def sft(cfg: SFTConfig | None = None, out_dir=None, model=None, tokenizer=None, progress: bool = True,
        command: str = "rlhf_lab.lm.pretrain.sft(cfg)") -> tuple:
    """SFT: fine-tune ``cfg.base`` (or the given model) on instruction demonstrations.

    The loss counts demonstration tokens only. Returns ``(model, tokenizer, history)``.
    """
    cfg = cfg or SFTConfig.tiny()
    if out_dir is not None:
        check_writable(out_dir)
    set_seed(cfg.seed)
    device = get_device(cfg.device, verbose=False)
    if model is None:
        model, tokenizer = load_model(cfg.base, role="policy", device=device)
    world = ReviewWorld(cfg.seed)
    demos = world.demonstrations(cfg.n_demos)
    context = context_length(model.config)
    train_rows = tokenise_for_lm(tokenizer, [p.text for p, _ in demos], [d for _, d in demos], context)
    val = world.demonstrations(min(256, max(16, cfg.n_demos // 4)), split="val")   # 256 for every preset
    val_rows = tokenise_for_lm(tokenizer, [p.text for p, _ in val], [d for _, d in val], context)
    hist = _fit(model, tokenizer, train_rows, val_rows, cfg, "SFT", progress)
    if out_dir is not None:
        _save(model, tokenizer, out_dir, cfg, hist, command,
              (f"{len(demos)} instruction demonstrations of the review world (seed {cfg.seed})",
               texts_sha256(t for p, d in demos for t in (p.text, d))))
    return model, tokenizer, hist
