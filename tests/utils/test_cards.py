"""Model cards: every folder the kit saves says what it is, how it was made (with the data's hash),
its headline numbers, and loads with the plain-transformers lines it prints."""
import re

import torch

from rlhf_lab.utils.cards import records_sha256, texts_sha256
from rlhf_lab.labels.preferences import load_preferences


def card_rows(folder) -> dict:
    text = (folder / "README.md").read_text()
    return {m.group(1).strip(): m.group(2).strip().strip("`") for m in re.finditer(r"^\| (.+?) \| (.+?) \|$", text, re.M)}


def run_card_code(folder, **names) -> dict:
    """Execute the card's python block, as a student who copies it would."""
    code = re.search(r"```python\n(.*?)```", (folder / "README.md").read_text(), re.S).group(1)
    scope = dict(names)
    exec(code, scope)   # noqa: S102 - the card's own lines
    return scope


def test_a_pretrained_model_card_hashes_its_generated_data_and_its_code_runs(tmp_path):
    from dataclasses import replace

    from rlhf_lab.lm.pretrain import PretrainConfig, pretrain
    from rlhf_lab.world.reviews import ReviewWorld

    cfg = replace(PretrainConfig.demo(), steps=2, n_docs=200, device="cpu")
    pretrain(cfg, out_dir=tmp_path / "upt", progress=False)
    rows = card_rows(tmp_path / "upt")
    assert rows["data sha256"] == texts_sha256(ReviewWorld(cfg.seed).corpus(200))
    assert rows["data"] == f"200 review-world documents (seed {cfg.seed})" and rows["seed"] == str(cfg.seed)
    scope = run_card_code(tmp_path / "upt")
    assert scope["model"].config.n_layer == 2 and "Glass Garden" in scope["tok"].decode(scope["ids"][0])


def test_a_dpo_policy_card_hashes_the_rankings_it_was_trained_on(tmp_path, tiny):
    from rlhf_lab.lm.models import save_policy

    model, tok = tiny
    records = load_preferences(labeler="sim-gold")[:10]
    save_policy(model, tok, tmp_path / "dpo", records=records, metadata={"final_val_accuracy": 0.75})
    rows = card_rows(tmp_path / "dpo")
    assert rows["data sha256"] == records_sha256(records) != records_sha256(records[:9])
    assert rows["data"] == "10 rankings" and rows["final_val_accuracy"] == "0.75"
    assert run_card_code(tmp_path / "dpo")["model"].num_parameters() == model.num_parameters()


def test_an_rl_checkpoint_policy_card_hashes_its_prompts(tmp_path):
    import hashlib

    from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
    from rlhf_lab.world.reviews import ReviewWorld

    cfg = GroupConfig(algo="rloo", batch_size=8, mini_batch_size=8, num_generations=4, max_new_tokens=6,
                      num_iterations=1, device="cpu")
    prompts = ReviewWorld(0).prompts(4, kind="mixed", split="train")
    GroupTrainer(cfg, prompts).train(iterations=1, out_dir=tmp_path / "run", progress=False)
    rows = card_rows(tmp_path / "run" / "policy")
    assert rows["data sha256"] == hashlib.sha256((tmp_path / "run" / "prompts.json").read_bytes()).hexdigest()
    assert rows["data"] == "4 prompts (prompts.json beside it)"


def test_the_reward_model_card_loads_and_scores_as_the_kit(tmp_path):
    from rlhf_lab.reward.model import load_reward_model

    folder = tmp_path / "rm"
    rm = load_reward_model("tiny-rm", device="cpu")
    rm.save_pretrained(folder, extra={"labels": "shipped", "labeler": "sim-gold", "val_accuracy": 0.7})
    rows = card_rows(folder)
    assert len(rows["labels sha256"]) == 64 and rows["labeler"] == "sim-gold"
    prompt, completion = "Write a review of the plot.\nReview:", " The plot is brilliant."
    scope = run_card_code(folder, prompt=prompt, completion=completion)
    torch.testing.assert_close(scope["reward"], rm.score([prompt], [completion])[0], atol=1e-5, rtol=0)
