"""The kit's artefacts in TRL: the same loss from both, on the same labels and the same reward model.

The labels leave the kit as a ``datasets.Dataset`` (`rlhf_lab.labels.preferences.to_dataset`) and the reward
model as the sequence classifier TRL's RewardTrainer trains (`rlhf_lab.reward.model`). As a check
that nothing is lost on the way, `reward_loss_at_step0` computes the Bradley-Terry loss of one saved
reward model on the same pairs twice: with the kit's `bt_loss` on the kit's scores, and with TRL's
RewardTrainer on its own first batch before its first step (its own tokenisation, EOS appended,
right padding, the model's last non-PAD token). TRL is an optional extra: ``pip install -e ".[trl]"``.

`kit_reward_model` is the reward model as a TRL reward function that ``trl grpo`` and ``trl rloo``
import by name (``--reward_funcs rlhf_lab.interop.kit_reward_model``), so a course that outgrows one
GPU launches TRL on several with the kit's reward model scoring exactly as it was trained (README,
"Past one GPU").
"""
from __future__ import annotations

import os
import tempfile
import warnings

import datasets
import torch
from transformers import AutoModelForSequenceClassification

from rlhf_lab.labels.preferences import to_dataset
from rlhf_lab.lm.models import load_tokenizer
from rlhf_lab.reward.losses import bt_loss
from rlhf_lab.reward.ensemble import load_reward
from rlhf_lab.reward.model import RewardModel, SHIPPED_REWARD_MODEL, reward_function

TRL_MISSING = ("TRL is not installed: `pip install -e \".[trl]\"` (or `pip install trl==1.16.0`) adds it; "
               "the course itself does not need it")


def trl_version() -> str | None:
    """TRL's version, or None when it is not installed."""
    try:
        import trl   # here: TRL is an optional extra, and this says whether it is installed
    except ImportError:
        return None
    return trl.__version__


def reward_loss_at_step0(folder, records, n_pairs: int = 16) -> dict:
    """-mean log sigmoid(r(x, y_w) - r(x, y_l)) of the reward model in ``folder`` on the first
    ``n_pairs`` pairs of ``records``, by the kit and by TRL's RewardTrainer before any step.
    Returns {"kit", "trl", "pairs", "trl_version"}; an ImportError that says how to install TRL."""
    if trl_version() is None:
        raise ImportError(TRL_MISSING)


    pairs = to_dataset(records)
    if n_pairs < 1 or len(pairs) < n_pairs:
        raise ValueError(f"n_pairs must be between 1 and the {len(pairs)} pairs of the records, got {n_pairs}")
    pairs = pairs.select(range(n_pairs)).select_columns(["prompt", "chosen", "rejected"])
    rm = RewardModel.from_pretrained(folder)
    kit = bt_loss(rm.score(pairs["prompt"], pairs["chosen"]), rm.score(pairs["prompt"], pairs["rejected"]))[0]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = load_tokenizer(str(folder))

    datasets.disable_progress_bars()                 # its map() over 16 pairs: no bars in a notebook
    try:
        return _trl_loss(model, tok, pairs, n_pairs, kit.item())
    finally:
        datasets.enable_progress_bars()


def _trl_loss(model, tok, pairs, n_pairs: int, kit: float) -> dict:
    """TRL's RewardTrainer on ``pairs`` as one batch: its loss before the first step."""
    from trl import RewardConfig, RewardTrainer   # here: TRL is an optional extra (trl_version checks it)

    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        # TRL's config sets transformers' `gradient_checkpointing`, deprecated in transformers 5: not the student's doing
        warnings.simplefilter("ignore", FutureWarning)
        args = RewardConfig(output_dir=out, per_device_train_batch_size=n_pairs, max_steps=1, report_to=[],
                            use_cpu=not torch.cuda.is_available(), bf16=False, save_strategy="no",
                            disable_tqdm=True, max_length=None, center_rewards_coefficient=None,
                            train_sampling_strategy="sequential")
        trainer = RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok)
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        with torch.no_grad():
            theirs = trainer.compute_loss(trainer.model, batch)
    return {"kit": kit, "trl": theirs.item(), "pairs": n_pairs, "trl_version": trl_version()}


_REWARD_MODELS: dict = {}


def kit_reward_model(prompts, completions, **kwargs) -> list[float]:
    """The kit's reward model as a reward function TRL imports by its path, for ``trl grpo`` and
    ``trl rloo`` on one or several GPUs: ``--reward_funcs rlhf_lab.interop.kit_reward_model``, with
    the model's folder in ``$RLHF_LAB_REWARD_MODEL`` (default: the shipped tiny-rm; an ensemble's folder,
    `RewardEnsemble.save_pretrained`, scores by its saved objective).

    Each training process loads the model once, on its own GPU (``$LOCAL_RANK``, set by
    ``accelerate launch``), and scores prompt + completion + EOS as the kit trained it. TRL's own
    ``--reward_model_name_or_path`` scores prompt + completion without the EOS token, which is not
    the input the kit's reward model was trained on. Returns one reward per completion.
    """
    if prompts and not isinstance(prompts[0], str):
        raise ValueError("kit_reward_model scores plain text; the prompts are conversational (lists of messages): "
                         "export the prompts without --conversational")
    name = os.environ.get("RLHF_LAB_REWARD_MODEL", SHIPPED_REWARD_MODEL)
    if name not in _REWARD_MODELS:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        _REWARD_MODELS[name] = reward_function(load_reward(name, device=device))   # the kit's scoring (an ensemble's folder too)
    return _REWARD_MODELS[name](prompts, completions)
