import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from rlhf_lab.models import ModelLoadError
from rlhf_lab.reward import (RewardModel, bt_loss, grouped_bt_loss, last_token_index, pair_mask,
                             preference_probability)


def loop_grouped_loss(rewards, rankings):
    """The slow, obvious reference: a Python loop over all K-choose-2 pairs of each prompt.

    rankings[g] lists completion indices best -> worst.
    """
    per_prompt = []
    for r, order in zip(rewards, rankings):
        terms = [-F.logsigmoid(r[w] - r[l]) for w, l in itertools.combinations(order, 2)]
        per_prompt.append(sum(terms) / len(terms))
    return sum(per_prompt) / len(per_prompt)


def ranks_from(rankings, k):
    ranks = torch.empty(len(rankings), k, dtype=torch.long)
    for g, order in enumerate(rankings):
        for position, idx in enumerate(order):
            ranks[g, idx] = position
    return ranks


def test_bt_loss_by_hand():
    # equal rewards: -log sigmoid(0) = log 2
    loss, stats = bt_loss(torch.tensor([1.0]), torch.tensor([1.0]))
    assert loss.item() == pytest.approx(math.log(2))
    # r_w - r_l = 2: -log sigmoid(2) = log(1 + e^-2)
    loss, stats = bt_loss(torch.tensor([3.0, 0.0]), torch.tensor([1.0, 2.0]))
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))) / 2
    assert loss.item() == pytest.approx(expected)
    assert stats["rewards/accuracies"] == 0.5
    assert stats["rewards/margins"] == pytest.approx(0.0)
    assert stats["rewards/chosen"] == pytest.approx(1.5) and stats["rewards/rejected"] == pytest.approx(1.5)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_grouped_loss_by_hand_for_k_2_3_4(k):
    # rewards 0, -1, -2, -3 ranked best to worst: pair (i, j) has margin j - i
    rewards = -torch.arange(k, dtype=torch.float)[None]
    ranks = torch.arange(k)[None]
    loss, stats = grouped_bt_loss(rewards, ranks)
    pairs = list(itertools.combinations(range(k), 2))
    expected = sum(math.log(1 + math.exp(-(j - i))) for i, j in pairs) / len(pairs)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["pairs"] == math.comb(k, 2)
    assert stats["rewards/accuracies"] == 1.0


def test_grouped_loss_matches_the_loop_and_its_gradient():
    torch.manual_seed(0)
    k, g = 4, 5
    rankings = [torch.randperm(k).tolist() for _ in range(g)]
    rewards = torch.randn(g, k, requires_grad=True)
    loss, _ = grouped_bt_loss(rewards, ranks_from(rankings, k))
    (grad,) = torch.autograd.grad(loss, rewards)
    ref = loop_grouped_loss(rewards, rankings)
    (ref_grad,) = torch.autograd.grad(ref, rewards)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad, ref_grad)


def test_grouped_loss_with_padding_and_ties():
    rewards = torch.tensor([[2.0, 0.0, 5.0], [1.0, 1.0, 0.0]])
    ranks = torch.tensor([[0, 1, 9], [0, 0, 1]])          # row 0: only 2 valid; row 1: a tie at the top
    valid = torch.tensor([[True, True, False], [True, True, True]])
    pm = pair_mask(ranks, valid)
    assert pm.sum().item() == 1 + 2                       # tied completions make no pair
    loss, _ = grouped_bt_loss(rewards, ranks, valid)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert loss.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="no ranked pair"):
        grouped_bt_loss(rewards[:1], torch.tensor([[0, 0, 0]]))


def test_shift_invariance():
    rewards, ranks = torch.randn(3, 4), torch.stack([torch.randperm(4) for _ in range(3)])
    a, _ = grouped_bt_loss(rewards, ranks)
    b, _ = grouped_bt_loss(rewards + 7.5, ranks)
    torch.testing.assert_close(a, b)
    assert preference_probability(torch.tensor(1.0), torch.tensor(1.0)).item() == 0.5


def test_last_token_index_left_and_right_padding():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [3, 2, 3]


@pytest.fixture(scope="module")
def rm():
    torch.manual_seed(0)
    return RewardModel.from_backbone("tiny").eval()


def test_reward_is_the_same_whatever_the_padding_side_and_batch(rm):
    tok = rm.tokenizer
    texts = ['Write a review of the plot of "X".\nReview: The plot is good.<|endoftext|>', "Bad.<|endoftext|>"]
    with torch.no_grad():
        alone = []
        for text in texts:
            one = tok([text], return_tensors="pt", add_special_tokens=False)
            alone.append(rm(one["input_ids"], one["attention_mask"]))
        for side in ("left", "right"):
            tok.padding_side = side
            batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            r = rm(batch["input_ids"], batch["attention_mask"])
            torch.testing.assert_close(r, torch.cat(alone), atol=1e-5, rtol=1e-5)
    tok.padding_side = "left"


def test_head_init_and_scalar_output(rm):
    n_emb = rm.backbone.config.hidden_size
    assert rm.head.weight.shape == (1, n_emb) and rm.head.bias.item() == 0.0
    assert rm.head.weight.std().item() == pytest.approx(1 / math.sqrt(n_emb + 1), rel=0.2)
    r = rm.score(["The plot is", "The plot is"], [" good.", " dreadful."])
    assert r.shape == (2,) and torch.isfinite(r).all()


def test_save_and_load_round_trip(rm, tmp_path):
    rm.save_pretrained(tmp_path / "rm", extra={"note": "test"})
    again = RewardModel.from_pretrained(tmp_path / "rm")
    prompts, completions = ["The acting is", "The soundtrack is"], [" superb.", " dull."]
    torch.testing.assert_close(again.score(prompts, completions), rm.score(prompts, completions))


def test_loading_a_policy_folder_as_reward_model_is_a_clear_error():
    from rlhf_lab.config import data_dir

    with pytest.raises(ModelLoadError, match="not a reward model"):
        RewardModel.from_pretrained(data_dir() / "models" / "tiny-sft")


def test_too_long_input_is_a_clear_error(rm):
    with pytest.raises(ValueError, match="over the reward model's context"):
        rm.score(["word " * 200], [" end."])
