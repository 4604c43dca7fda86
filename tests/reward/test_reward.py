import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from rlhf_lab.lm.models import ModelLoadError
from rlhf_lab.reward.model import RewardModel, last_token_index
from rlhf_lab.reward.losses import bt_loss, grouped_bt_loss, pair_mask, preference_probability


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


def test_score_packs_a_prompts_completions_and_keeps_their_order(rm):
    """score() forwards each prompt once for all its completions (interleaved here, across two
    batches): the rewards are the padded forward's, in the order they were asked for."""
    prompts = ["The plot is", "The acting is", "The plot is", "The score is", "The acting is"]
    completions = [" good.", " wooden.", " a mess of twists.", " haunting.", " superb."]
    with torch.no_grad():
        padded = rm(*rm.encode(prompts, completions))
    torch.testing.assert_close(rm.score(prompts, completions), padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rm.score(prompts, completions, batch_size=2), padded, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="5 prompts but 4 completions"):
        rm.score(prompts, completions[:4])


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


# ---- training ---------------------------------------------------------------------------

def world_groups(n_prompts: int, seed: int = 0):
    """Ranked groups without sampling: 4 world reviews of the asked aspect at spread-out
    polarities, ranked by the gold judge. Cheap, and with a clear signal to learn."""
    import random

    from rlhf_lab.world import reviews as world
    from rlhf_lab.reward.train import RankedGroup

    w, rng = world.ReviewWorld(seed), random.Random(seed)
    groups = []
    for p in w.instruction_prompts(n_prompts):
        texts = tuple(" " + w.review(rng, aspect=p.aspect, polarity=pol).text for pol in (-0.9, -0.3, 0.3, 0.9))
        gold = [world.judge_completion(p, t).gold for t in texts]
        order = rng.sample(range(4), 4)                       # completions in random order
        texts = tuple(texts[i] for i in order)
        gold = [gold[i] for i in order]
        groups.append(RankedGroup(p.id, p.text, texts, tuple(sorted(range(4), key=lambda j: -gold[j]))))
    return groups


def test_seeded_training_run_learns_and_centres_the_reward():
    from rlhf_lab.reward.train import RewardConfig, evaluate, train_reward_model

    groups = world_groups(64)
    cfg = RewardConfig(epochs=3, lr=1e-3, eval_every=5, val_fraction=0.25)
    rm, hist = train_reward_model(cfg, groups, progress=False)
    assert all(math.isfinite(x) for x in hist.loss)
    assert hist.val_loss[-1] < hist.val_loss[0]
    assert hist.val_accuracy[-1] > 0.6
    from rlhf_lab.labels.preferences import split_by_prompt

    train, val = split_by_prompt(groups, 0.25)
    assert hist.forwards == 3 * 4 * len(train)                # grouped: one forward per completion
    assert not {g.prompt_id for g in train} & {g.prompt_id for g in val}
    r = rm.score([g.prompt for g in train for _ in g.completions], [c for g in train for c in g.completions])
    assert abs(r.mean().item()) < 1e-4                        # the course's centring: E[r] = 0
    assert evaluate(rm, val)["accuracy"] == pytest.approx(hist.val_accuracy[-1])


def test_shuffled_batching_forwards_each_pair():
    from rlhf_lab.reward.train import RewardConfig, train_reward_model

    from rlhf_lab.labels.preferences import split_by_prompt

    groups = world_groups(20)
    _, hist = train_reward_model(RewardConfig(batching="shuffled", epochs=1, val_fraction=0.2), groups,
                                 progress=False)
    n_train = len(split_by_prompt(groups, 0.2)[0])
    assert hist.forwards == 2 * 6 * n_train                   # 2 C(K,2) forwards per prompt


def test_unit_std_option():
    from rlhf_lab.reward.train import RewardConfig, train_reward_model

    groups = world_groups(12)
    rm, hist = train_reward_model(RewardConfig(epochs=1, normalise_std=True, val_fraction=0.0), groups,
                                  progress=False)
    r = rm.score([g.prompt for g in groups for _ in g.completions], [c for g in groups for c in g.completions])
    assert hist.reward_std == 1.0
    assert r.std().item() == pytest.approx(1.0, abs=1e-4) and abs(r.mean().item()) < 1e-4


def test_empty_and_invalid_records_are_clear_errors():
    from rlhf_lab.reward.train import RankedGroup, RewardConfig, train_reward_model

    with pytest.raises(ValueError, match="no preference records"):
        train_reward_model(RewardConfig(), [], progress=False)
    bad = [RankedGroup("p1", "x", ("a", "b", "c"), (0, 0, 2))]
    with pytest.raises(ValueError, match=r"record 0 \(prompt p1\).*not a permutation"):
        train_reward_model(RewardConfig(), bad, progress=False)
    with pytest.raises(ValueError, match="batching must be"):
        train_reward_model(RewardConfig(batching="random"), world_groups(4), progress=False)


def test_nan_loss_stops_training(monkeypatch):
    from rlhf_lab.reward import train as reward
    from rlhf_lab.reward.train import RewardConfig, train_reward_model

    # a NaN that flows through the graph, as a real one does (rewards -> loss)
    monkeypatch.setattr(reward, "grouped_bt_loss", lambda rewards, *a, **k: (
        rewards.sum() * float("nan"), {"rewards/accuracies": torch.tensor(0.0)}))
    with pytest.raises(FloatingPointError, match="loss is nan at step 1 of "):
        train_reward_model(RewardConfig(), world_groups(8), progress=False)
