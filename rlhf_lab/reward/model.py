"""The reward model r_phi(x, y) and its folder: a transformers sequence classifier.

r_phi(x, y) = w^T h_T + b: the SFT transformer with its unembedding (n_emb -> n_vocab) replaced by
a linear head n_emb -> 1, read at the last real token of prompt + completion + EOS (the policy ends
every completion with EOS, and the reward is read there). The training loop is `rlhf_lab.reward.train`.

The folder `RewardModel.save_pretrained` writes is the one TRL's RewardTrainer writes: an
``AutoModelForSequenceClassification`` with ``num_labels=1`` (GPT-2's ``GPT2ForSequenceClassification``:
the transformer and a ``score`` layer n_emb -> 1), its tokenizer, and ``reward_config.json`` with
how it was trained. Plain transformers loads it:

    model = AutoModelForSequenceClassification.from_pretrained("data/models/tiny-rm")
    tok = AutoTokenizer.from_pretrained("data/models/tiny-rm")
    ids = tok(prompt + completion + tok.eos_token, return_tensors="pt").input_ids
    reward = model(ids).logits[0, 0]

GPT-2's ``score`` layer has no bias, while the kit's head has one (set after training so that the
mean reward is 0, the course's centring). The bias is folded into the final layer norm's bias when
saving: with w the head's weight and LN(h) = gamma * n(h) + beta, adding delta = b w / |w|^2 to beta
adds w^T delta = b to every reward, and nothing else reads the final layer norm's output. So the
folder scores exactly as the kit does (to float rounding; tested to 1e-5).

Two things a student should know when taking the folder elsewhere. The reward is read at the EOS
that ends the completion: score ``prompt + completion + EOS``. TRL's GRPO/RLOO trainers score a
model given as ``reward_funcs`` on ``prompt + completion`` without it, one token early; pass
`reward_function` (the kit's scoring, EOS included) instead. And left padding shifts GPT-2's
positions in plain transformers unless ``position_ids`` are given; pad on the right (as TRL does)
or score one sequence at a time.

Folders of the kit's older format (backbone + ``reward_head.safetensors``) still load;
``rlhf-lab reward-convert FOLDER`` rewrites one in place.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from rlhf_lab.config import data_dir, float32_head, fork_rng, repo_root
from rlhf_lab.labels.preferences import SHIPPED
from rlhf_lab.lm.generation import left_pad, position_ids_from_mask
from rlhf_lab.lm.models import ModelLoadError, context_length, folder_kind, fused_gelu, load_model, load_tokenizer
from rlhf_lab.lm.packing import PackedBatch, TokenCache, pack, packed_hidden_at
from rlhf_lab.lm.tokens import ensure_pad_token
from rlhf_lab.utils.artefacts import LOADS, atomic_dir, read_json, recover
from rlhf_lab.utils.cards import file_sha256, model_card
from rlhf_lab.utils.guard import check_parameters

HEAD_FILE = "reward_head.safetensors"
REWARD_CONFIG = "reward_config.json"


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Column of the last real token of each row, for left or right padding. (B, L) -> (B,)."""
    width = attention_mask.shape[1]
    return width - 1 - attention_mask.long().flip(-1).argmax(-1)


class RewardModel(nn.Module):
    """r_phi(x, y) = w^T h_T + b: a transformer backbone and a scalar head at the last real token."""

    def __init__(self, backbone, tokenizer, head: nn.Linear | None = None):
        super().__init__()
        self.backbone, self.tokenizer = backbone, tokenizer
        n_emb = backbone.config.hidden_size
        if head is None:
            head = nn.Linear(n_emb, 1)
            # Huang et al. 2024: N(0, 1 / sqrt(n_emb + 1)), bias 0
            nn.init.normal_(head.weight, std=1 / math.sqrt(n_emb + 1))
            nn.init.zeros_(head.bias)
        self.head = head.to(next(backbone.parameters()).device)

    @classmethod
    def from_backbone(cls, name: str = "tiny", device=None) -> "RewardModel":
        """A fresh reward model on any backbone the loader knows ("tiny", "gpt2", a folder)."""
        backbone, tok = load_model(name, role="backbone", device=device)
        return cls(backbone, tok)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) of token rows (B, L), padded on either side."""
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
        last = h[torch.arange(h.shape[0], device=h.device), last_token_index(attention_mask)]  # (B, n_emb)
        return float32_head(self.head, last)

    def forward_packed(self, batch: PackedBatch) -> torch.Tensor:
        """Rewards (N,) of every continuation of packed rows (a prompt forwarded once for all its
        completions; rlhf_lab.lm.packing), read at each continuation's last token."""
        return float32_head(self.head, packed_hidden_at(self.backbone, batch, batch.block_row, batch.last_col))

    def pack(self, rows: list[tuple[str, list[str]]], tokens: tuple[TokenCache, TokenCache] | None = None
             ) -> PackedBatch:
        """(prompt, [completion, ...]) rows as packed token rows, each completion ending in EOS."""
        prompt_ids, completion_ids = tokens or self.token_caches()
        names = [f"prompt {p[:50]!r}" for p, _ in rows]
        return pack([(prompt_ids(p), [completion_ids(c) for c in cs]) for p, cs in rows], self.tokenizer.pad_token_id,
                    self.device, context_length(self.backbone.config), names)

    def token_caches(self) -> tuple[TokenCache, TokenCache]:
        """Tokenisers that remember: prompts as they are, completions with the EOS the policy ends them with."""
        return TokenCache(self.tokenizer), TokenCache(self.tokenizer, eos=True)

    def encode(self, prompts: list[str], completions: list[str]):
        """Tokenise prompt and completion (+ EOS, as the policy ends it) separately, as the policy
        produced them, into left-padded rows (B, L) of ids and attention mask."""
        prompt_ids, completion_ids = self.token_caches()
        rows = [prompt_ids(p) + completion_ids(c) for p, c in zip(prompts, completions, strict=True)]
        context = context_length(self.backbone.config)
        for i, row in enumerate(rows):
            if len(row) > context:
                raise ValueError(f"prompt + completion {i} is {len(row)} tokens, over the reward model's "
                                 f"context of {context}: {(prompts[i] + completions[i])[:60]!r}...")
        return left_pad(rows, self.tokenizer.pad_token_id, self.device)

    def score(self, prompts: list[str], completions: list[str], batch_size: int = 64) -> torch.Tensor:
        """r_phi(x, y) for each (prompt, completion), in eval mode without gradients. Returns (N,) on CPU.

        Packed (`forward_packed`): the completions of one prompt in a batch (a GRPO group's K, a
        labelling task's) share one forward of the prompt, and the last block runs at each
        completion's last token only; the rewards are `forward`'s on padded rows up to float rounding."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: one prompt per completion")
        was_training = self.training
        self.eval()
        tokens, out = self.token_caches(), []
        context = context_length(self.backbone.config)
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                groups: dict[str, list[int]] = {}                 # prompt -> its completions' places, in order
                for j, (p, c) in enumerate(zip(prompts[i:i + batch_size], completions[i:i + batch_size])):
                    if len(tokens[0](p)) + len(tokens[1](c)) > context:
                        raise ValueError(f"prompt + completion {i + j} is {len(tokens[0](p)) + len(tokens[1](c))} "
                                         f"tokens, over the reward model's context of {context}: {(p + c)[:60]!r}...")
                    groups.setdefault(p, []).append(j)
                rewards = self.forward_packed(self.pack([(p, [completions[i + j] for j in js])
                                                         for p, js in groups.items()], tokens)).float().cpu()
                order = torch.tensor([j for js in groups.values() for j in js])
                out.append(torch.empty_like(rewards).index_copy_(0, order, rewards))
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)

    def save_pretrained(self, path, extra: dict | None = None) -> Path:
        """Write the folder of an ``AutoModelForSequenceClassification`` (num_labels=1) that scores as
        this model does, its tokenizer, and ``reward_config.json`` (``extra``: how it was trained).

        The head's bias is folded into the final layer norm (see the module doc). The folder is
        written whole beside ``path`` and swapped in atomically (`rlhf_lab.utils.artefacts.atomic_dir`): a
        crash leaves the old reward model or the new one. Non-finite parameters are refused first."""
        check_parameters(self, "the reward model's", f"when saving to {path}",
                         "not saved (training diverged; lower the learning rate)")
        meta = json.dumps({"kind": "rlhf_lab.RewardModel", "format": "AutoModelForSequenceClassification",
                           **(extra or {})}, indent=2, allow_nan=False)
        classifier = self.as_sequence_classifier()
        with atomic_dir(path) as tmp:
            classifier.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / REWARD_CONFIG).write_text(meta)
            (tmp / "README.md").write_text(_card(Path(path), extra or {}))
        return Path(path)

    def as_sequence_classifier(self):
        """A transformers ``AutoModelForSequenceClassification`` (num_labels=1, on the CPU) with this
        model's weights, the head's bias folded into the final layer norm's bias."""
        config = copy.deepcopy(self.backbone.config)
        config.num_labels, config.pad_token_id = 1, self.tokenizer.pad_token_id
        config.architectures = None
        with fork_rng():          # its random init must not move the run's RNG
            model = AutoModelForSequenceClassification.from_config(config)
        model.base_model.load_state_dict({k: v.detach().cpu() for k, v in self.backbone.state_dict().items()})
        w, b = self.head.weight.detach().cpu().float(), float(self.head.bias.detach().cpu()) if self.head.bias is not None else 0.0
        final_norm = getattr(model.base_model, "ln_f", None)
        if b != 0.0:
            if final_norm is None or final_norm.bias is None:
                raise NotImplementedError(f"{type(model).__name__} has no final layer norm with a bias to hold the "
                                          f"reward's offset {b:+.4g}: only GPT-2-family backbones can be saved")
            with torch.no_grad():
                final_norm.bias += (b * w[0] / w[0].dot(w[0])).to(final_norm.bias.dtype)
        with torch.no_grad():
            model.score.weight.copy_(w)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path, device=None) -> "RewardModel":
        """Load a reward-model folder: the kit's (or TRL's RewardTrainer's, or any) sequence classifier
        with one label, or the kit's older backbone + ``reward_head.safetensors``. Errors name the file."""
        path = recover(Path(path))
        if (path / HEAD_FILE).exists():
            return cls._from_old_format(path, device)
        config = path / "config.json"
        arch = (read_json(config, "reward model").get("architectures") or []) if config.exists() else []
        if not any(a.endswith("ForSequenceClassification") for a in arch):
            what = {"PPO checkpoint": "a PPO checkpoint", "policy": "a policy (a causal LM)"}.get(
                folder_kind(path), f"a {arch[0]}" if arch else "not a model folder")
            raise ModelLoadError(f"{path}: it is {what}, not a reward model: a reward model is a sequence classifier "
                                 f"with one label (RewardModel.save_pretrained, TRL's RewardTrainer); for a fresh "
                                 f"one use RewardModel.from_backbone")
        if (path / REWARD_CONFIG).exists():
            read_json(path / REWARD_CONFIG, "reward model", "Retrain it with `rlhf-lab reward`.")

        try:
            model = fused_gelu(AutoModelForSequenceClassification.from_pretrained(path))
        except Exception as err:  # a truncated or hand-edited folder fails in many ways
            raise ModelLoadError(f"the reward model in {path} could not be read ({type(err).__name__}: "
                                 f"{str(err)[:200]}); it may be corrupt: retrain it with `rlhf-lab reward`") from None
        if model.config.num_labels != 1:
            raise ModelLoadError(f"{path} is a classifier with {model.config.num_labels} labels; a reward model "
                                 f"has one (num_labels=1): one scalar per (prompt, completion)")
        tokenizer = load_tokenizer(str(path))
        ensure_pad_token(model, tokenizer)      # a hub reward model without PAD gets one, as every kit model
        score = model.score
        head = nn.Linear(score.in_features, 1)
        with torch.no_grad():
            head.weight.copy_(score.weight)
            head.bias.copy_(score.bias if getattr(score, "bias", None) is not None else torch.zeros(1))
        backbone = model.base_model.to(device or "cpu")
        return cls(backbone, tokenizer, head)

    @classmethod
    def _from_old_format(cls, path: Path, device=None) -> "RewardModel":
        """The kit's format before the sequence-classifier one: a backbone and the head's safetensors."""
        head_file = path / HEAD_FILE
        read_json(path / REWARD_CONFIG, "reward model", "Retrain it with `rlhf-lab reward`.")
        backbone, _ = load_model(str(path), role="backbone", device=device)
        try:
            head = nn.Linear(backbone.config.hidden_size, 1)
            head.load_state_dict(load_file(head_file))
        except Exception as err:
            raise ModelLoadError(f"{head_file} could not be read ({type(err).__name__}: {str(err)[:160]}); it is "
                                 f"damaged: retrain the reward model with `rlhf-lab reward`") from None
        return cls(backbone, load_tokenizer(str(path)), head)


def _card(path: Path, meta: dict) -> str:
    """The reward model's README.md (`rlhf_lab.utils.cards`)."""
    labels = meta.get("labels")
    labels_file = data_dir() / SHIPPED if labels in ("shipped", None) else Path(str(labels))
    made = {"command": meta.get("command"), "seed": meta.get("seed", (meta.get("config") or {}).get("seed")),
            "backbone": meta.get("backbone"), "labels": str(labels) if labels else None,
            "labels sha256": file_sha256(labels_file) if labels else None, "labeler": meta.get("labeler"),
            "rankings": meta.get("n_records")}
    metrics = {k: meta.get(k) for k in ("val_accuracy", "val_loss", "reward_std")}
    return model_card(f"Reward model {path.name}", "A Bradley-Terry reward model r_phi(x, y) trained with rlhf-lab "
                      "on ranked completions (InstructGPT's grouped K-choose-2 comparisons): a GPT-2-architecture "
                      "sequence classifier with one label, centred so that its mean reward on the training "
                      "completions is 0.", "reward model", made, metrics, path=str(path))


def convert(path) -> Path:
    """Rewrite a reward-model folder of the kit's older format in the sequence-classifier one, in
    place (atomically), keeping its ``reward_config.json``. A folder already converted is left alone."""
    path = recover(Path(path))
    if not (path / HEAD_FILE).exists():
        RewardModel.from_pretrained(path)          # errors if it is not a reward model at all
        return path
    meta = read_json(path / REWARD_CONFIG, "reward model", "Retrain it with `rlhf-lab reward`.")
    meta.pop("kind", None), meta.pop("format", None)
    return RewardModel.from_pretrained(path).save_pretrained(path, extra=meta)


def reward_function(rm: "RewardModel", batch_size: int = 64):
    """The reward model as a reward function for TRL's GRPOTrainer and RLOOTrainer
    (``reward_funcs=[reward_function(rm)]``): scores as the kit does, EOS included."""
    def reward_model(prompts, completions, **kwargs) -> list[float]:   # TRL logs it by its __name__
        return rm.score(list(prompts), list(completions), batch_size=batch_size).tolist()
    return reward_model


SHIPPED_REWARD_MODEL = "tiny-rm"
"""The reward model shipped in data/models/tiny-rm: the tiny SFT model with a scalar head, trained
on the shipped simulated labels with `RewardConfig.tiny` (``rlhf-lab reward`` rebuilds it)."""


def reward_model_path(name: str = SHIPPED_REWARD_MODEL) -> Path:
    """The folder of a reward model by name: "tiny-rm" (shipped) or a folder written by `RewardModel.save_pretrained`
    (notebook 03 saves one to runs/reward_model) or `RewardEnsemble.save_pretrained`. A relative folder is looked up
    from the working directory, then from the repository root. Raises ModelLoadError, with what to do, if absent."""
    if name == SHIPPED_REWARD_MODEL:
        path = data_dir() / "models" / SHIPPED_REWARD_MODEL
        hint = "restore it with `git checkout data/models` or rebuild it with `rlhf-lab reward --out data/models/tiny-rm`"
    else:
        path = Path(name).expanduser()
        if not path.is_absolute() and not path.exists():
            path = repo_root() / path
        hint = (f"train one in notebook 03 or with `rlhf-lab reward --out {name}`, or use the shipped "
                f"{SHIPPED_REWARD_MODEL!r}")
    if not recover(path).is_dir():
        raise ModelLoadError(f"reward model {name!r} not found (no folder {path}); {hint}")
    LOADS.record(("reward_model", str(path)))
    return path


def load_reward_model(name: str = SHIPPED_REWARD_MODEL, device=None) -> RewardModel:
    """Load one reward model by name (`reward_model_path`); `rlhf_lab.reward.ensemble.load_reward` also reads an
    ensemble's folder."""
    return RewardModel.from_pretrained(reward_model_path(name), device=device)
