"""Reward models in the ecosystem's format: a transformers sequence classifier that scores as the kit does."""
import json

import pytest
import torch
from safetensors.torch import save_file

from rlhf_lab.cli.main import main
from rlhf_lab.lm.models import ModelLoadError
from rlhf_lab.labels.preferences import load_preferences
from rlhf_lab.reward.model import HEAD_FILE, RewardModel, convert, load_reward_model, reward_function


def _shipped_pairs():
    """Every (prompt, completion) of the shipped preference data, once."""
    seen = {}
    for rec in load_preferences():
        for c in rec.completions:
            seen[(rec.prompt, c)] = None
    return list(seen)


def _hf_scores(model, tok, pairs, batch_size=64):
    """Plain transformers: prompt + completion + EOS as one string, right-padded (positions start at 0)."""
    tok.padding_side = "right"
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            texts = [p + c + tok.eos_token for p, c in pairs[i:i + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            out.append(model(**enc).logits[:, 0])
    return torch.cat(out)


def test_the_shipped_reward_model_loads_in_plain_transformers_and_scores_like_the_kit():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_lab.config import data_dir

    folder = data_dir() / "models" / "tiny-rm"
    assert not (folder / HEAD_FILE).exists()                       # re-saved in the new format
    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    assert hf.config.num_labels == 1 and hf.score.bias is None
    pairs = _shipped_pairs()
    assert len(pairs) > 1000
    kit = load_reward_model("tiny-rm").score([p for p, _ in pairs], [c for _, c in pairs])
    theirs = _hf_scores(hf, tok, pairs)
    assert (kit - theirs).abs().max().item() < 1e-5
    assert abs(kit.mean().item()) < 0.05                           # the centring survived the folding


def test_a_head_bias_is_folded_exactly_and_the_folder_round_trips(tmp_path):
    torch.manual_seed(0)
    rm = RewardModel.from_backbone("tiny")
    with torch.no_grad():
        rm.head.bias.fill_(1.7)                                    # an offset GPT-2's score layer cannot hold
        rm.head.weight.mul_(3.0)
    pairs = _shipped_pairs()[:200]
    prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
    want = rm.score(prompts, completions)
    rng = torch.get_rng_state()
    rm.save_pretrained(tmp_path / "rm", extra={"note": "test"})
    assert torch.equal(rng, torch.get_rng_state())                # saving draws nothing from the run's RNG
    again = RewardModel.from_pretrained(tmp_path / "rm")
    assert (again.score(prompts, completions) - want).abs().max().item() < 1e-5
    assert again.head.bias.item() == 0.0                           # the offset now lives in ln_f's bias
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    assert (_hf_scores(hf, AutoTokenizer.from_pretrained(tmp_path / "rm"), pairs) - want).abs().max().item() < 1e-5
    meta = json.loads((tmp_path / "rm" / "reward_config.json").read_text())
    assert meta["note"] == "test" and meta["format"] == "AutoModelForSequenceClassification"


def _old_format(rm: RewardModel, folder):
    """The kit's format before this one: backbone + reward_head.safetensors + reward_config.json."""
    folder.mkdir()
    rm.backbone.save_pretrained(folder)
    rm.tokenizer.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in rm.head.state_dict().items()}, folder / HEAD_FILE)
    (folder / "reward_config.json").write_text(json.dumps({"kind": "rlhf_lab.RewardModel", "val_accuracy": 0.7}))
    return folder


def test_old_format_folders_load_and_convert_in_place(tmp_path, capsys):
    torch.manual_seed(1)
    rm = RewardModel.from_backbone("tiny")
    with torch.no_grad():
        rm.head.bias.fill_(-0.4)
    old = _old_format(rm, tmp_path / "old")
    pairs = _shipped_pairs()[:100]
    prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
    want = rm.score(prompts, completions)
    assert (load_reward_model(str(old)).score(prompts, completions) - want).abs().max().item() < 1e-6
    assert main(["reward-convert", str(old)]) == 0
    assert "sequence-classification" in capsys.readouterr().out
    assert not (old / HEAD_FILE).exists()
    assert json.loads((old / "reward_config.json").read_text())["val_accuracy"] == 0.7   # kept
    assert (load_reward_model(str(old)).score(prompts, completions) - want).abs().max().item() < 1e-5
    assert convert(old) == old                                      # converting again changes nothing


def test_a_hub_shaped_sequence_classifier_loads_as_a_reward_model(tmp_path, hub_gpt2):
    """A reward model as the hub or TRL's RewardTrainer writes it: GPT2ForSequenceClassification, GPT-2's
    tokenizer without PAD, no reward_config.json."""
    from transformers import AutoTokenizer, GPT2ForSequenceClassification

    torch.manual_seed(2)
    hf = GPT2ForSequenceClassification.from_pretrained(hub_gpt2, num_labels=1).eval()
    hf.save_pretrained(tmp_path / "hub-rm")
    AutoTokenizer.from_pretrained(hub_gpt2).save_pretrained(tmp_path / "hub-rm")
    rm = load_reward_model(str(tmp_path / "hub-rm"))
    assert rm.tokenizer.pad_token_id != rm.tokenizer.eos_token_id   # given a PAD of its own, as every kit model
    prompt, completion = "The acting of \"Glass Garden\" is", " wonderful."
    ids = rm.tokenizer(prompt + completion, add_special_tokens=False)["input_ids"] + [rm.tokenizer.eos_token_id]
    with torch.no_grad():
        want = hf(torch.tensor([ids])).logits[0, 0]
    got = rm.score([prompt, prompt], [completion, " fine"])          # a batch: the kit pads the shorter one
    assert abs(got[0].item() - want.item()) < 1e-5


def test_the_wrong_folders_are_refused_by_name(tmp_path, hub_gpt2):
    from transformers import GPT2ForSequenceClassification

    with pytest.raises(ModelLoadError, match="causal LM|policy|LMHeadModel"):
        RewardModel.from_pretrained(hub_gpt2)
    GPT2ForSequenceClassification.from_pretrained(hub_gpt2, num_labels=3).save_pretrained(tmp_path / "three")
    with pytest.raises(ModelLoadError, match="3 labels"):
        RewardModel.from_pretrained(tmp_path / "three")
    assert main(["reward-convert", str(tmp_path / "nothing")]) == 2


def test_the_reward_function_for_trl_scores_like_the_kit():
    rm = load_reward_model("tiny-rm")
    pairs = _shipped_pairs()[:16]
    f = reward_function(rm)
    got = f([p for p, _ in pairs], [c for _, c in pairs], completion_ids=None)
    assert got == rm.score([p for p, _ in pairs], [c for _, c in pairs]).tolist() and f.__name__ == "reward_model"


def test_trl_grpo_takes_the_shipped_reward_model_for_one_step(tmp_path):
    pytest.importorskip("trl", reason="the trl extra (pip install -e '.[trl]'); CI installs it")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rlhf_lab.lm.models import load_model
    from rlhf_lab.world.reviews import ReviewWorld

    policy, tok = load_model("tiny", role="policy")
    rm = load_reward_model("tiny-rm")
    prompts = [p.text for p in ReviewWorld(0).prompts(4, kind="mixed", split="train")]
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_steps=1,
                      max_completion_length=8, temperature=0.7, learning_rate=1e-4, report_to=[], use_cpu=True,
                      bf16=False, gradient_checkpointing=False, save_strategy="no", logging_steps=1,
                      disable_tqdm=True)
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward_function(rm)], args=args,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tok)
    before = [p.detach().clone() for p in policy.parameters()]
    trainer.train()
    assert trainer.state.global_step == 1
    logged = trainer.state.log_history[0]
    assert "rewards/reward_model/mean" in logged and torch.isfinite(torch.tensor(logged["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
