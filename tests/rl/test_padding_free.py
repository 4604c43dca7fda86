"""Padding-free rollouts: packed rows give the padded rows' numbers, and the update the same losses."""
import copy
from dataclasses import replace

import pytest
import torch

from benchmarks.group import learn_from, snapshot
from rlhf_lab.rl.group_trainer import GroupConfig, GroupTrainer
from rlhf_lab.lm.packing import place
from rlhf_lab.rl.ppo import PPOConfig
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.rl.rollout import (Episodes, ValueModel, pack_episodes, packed_policy_forward, policy_forward, row_width,
                                 trim_minibatch)
from rlhf_lab.world.reviews import ReviewWorld

PROMPTS = ReviewWorld(0).prompts(64, kind="mixed", split="train")


@pytest.fixture(scope="module")
def grouped():
    """A PPO trainer (non-zero value head) and a rollout in which prompts repeat in groups of 4."""
    trainer = PPOTrainer(PPOConfig(batch_size=16, mini_batch_size=8, max_new_tokens=16, device="cpu",
                                   padding_free=False), PROMPTS)
    torch.nn.init.normal_(trainer.head.weight)
    return trainer, trainer.rollout([p for p in PROMPTS[:4] for _ in range(4)])


def test_packed_rows_give_the_padded_rows_log_probs_values_and_entropies(grouped):
    trainer, r = grouped
    for rows in ([0, 1, 2, 3, 8, 9, 10, 11], [13, 2, 7, 5], list(range(16))):
        packed = pack_episodes(r, rows, trainer.tokenizer.pad_token_id, "cpu", hidden_size=192)
        mb = torch.tensor(rows)
        ids, attn, start, cols = trim_minibatch(r, mb)
        m = r.mask[mb][:, cols]
        with torch.no_grad():
            want = policy_forward(trainer.policy, ids, attn, start, 0.7, trainer.head, True)
            got = packed_policy_forward(trainer.policy, packed, 0.7, trainer.head, True)
        assert got[0].shape == m.shape
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w * m, atol=2e-5, rtol=1e-5)   # 0 past each response's end
        # a prompt's K episodes share one copy of it: fewer positions than tokens of the episodes
        assert packed.batch.real_tokens == sum(r.response_lengths[i] for i in rows) + sum(
            len(p) for p in {r.prompt_tokens[i] for i in rows})


def test_a_separate_critic_reads_packed_rows_too(grouped):
    trainer, r = grouped
    critic = ValueModel(copy.deepcopy(trainer.policy.base_model)).eval()
    torch.nn.init.normal_(critic.head.weight)
    rows = [1, 6, 11, 12]
    mb = torch.tensor(rows)
    ids, attn, start, cols = trim_minibatch(r, mb)
    with torch.no_grad():
        want = critic(ids, attn, start) * r.mask[mb][:, cols]
        got = critic.packed(pack_episodes(r, rows, trainer.tokenizer.pad_token_id, "cpu"))
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_episodes_read_the_tokens_behind_the_padding(grouped):
    _, r = grouped
    e = Episodes.of(r.input_ids, r.attention_mask, r.start, r.mask)
    for i in range(len(e.prompt_tokens)):
        assert list(e.prompt_tokens[i]) == r.input_ids[i, r.attention_mask[i].bool()][:e.prompt_lengths[i]].tolist()
        assert e.response_tokens[i] == r.input_ids[i, r.start:r.start + e.response_lengths[i]].tolist()
    assert e.response_lengths == r.response_lengths and e.prompt_tokens == r.prompt_tokens


def test_row_width_fits_the_longest_group_and_prefers_fewer_positions():
    assert row_width([40], 192) == 40
    assert row_width([33, 35, 36, 38, 40, 31], 192) == 40  # two per row at 80: as many positions, wider attention
    sizes = [20, 22, 25, 40]                               # 4 rows at 40; at 50, 25 + 22 share one: 3 rows
    w = row_width(sizes, 192)
    assert w > 40 and len(place(sizes, w)) * w < len(sizes) * 40


def _learn_twice(trainer, r):
    """The update on ``r`` padded and packed, from the same weights, optimizer and minibatch order."""
    state = snapshot(trainer)
    return {padding_free: (learn_from(trainer, state, r, padding_free),
                           [p.detach().clone() for p in trainer.policy.parameters()])
            for padding_free in (False, True)}


@pytest.mark.parametrize("make", ["ppo", "grpo", "rloo"])
def test_the_update_has_the_same_losses_and_steps_packed_or_padded(make):
    if make == "ppo":
        trainer = PPOTrainer(PPOConfig(batch_size=16, mini_batch_size=8, max_new_tokens=16, device="cpu",
                                       group_by_length=True), PROMPTS)
        batch = PROMPTS[:16]
    else:
        trainer = GroupTrainer(replace(GroupConfig.tiny(make), batch_size=16, mini_batch_size=8, max_new_tokens=16,
                                       device="cpu"), PROMPTS)
        batch = [p for p in PROMPTS[:4] for _ in range(4)]
    r = trainer.rollout(batch)
    out = _learn_twice(trainer, r)
    (padded, w_padded), (packed, w_packed) = out[False], out[True]
    assert padded.keys() == packed.keys()
    for k in padded:
        assert packed[k] == pytest.approx(padded[k], abs=1e-5, rel=1e-4), k
    assert max((a - b).abs().max().item() for a, b in zip(w_padded, w_packed)) < 1e-5
    assert any(not torch.equal(a, b) for a, b in zip(w_packed, trainer.reference.parameters()))


def test_a_padding_free_rollout_scores_like_a_padded_one():
    cfg = PPOConfig(batch_size=8, mini_batch_size=4, max_new_tokens=12, device="cpu")
    rs = {}
    for padding_free in (False, True):
        trainer = PPOTrainer(replace(cfg, padding_free=padding_free), PROMPTS)
        rs[padding_free] = trainer.rollout(PROMPTS[:8])          # same seed: the same samples
    a, b = rs[False], rs[True]
    assert a.completions == b.completions
    for name in ("logprobs", "ref_logprobs", "values", "entropy", "kl", "advantages"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=2e-5, rtol=1e-4, msg=name)
    assert b.kl.abs().max().item() == 0.0        # policy and reference are the same weights: exactly 0
