import math

import pytest
import torch

from rlhf_lab.rl.bandit import (Bandit, BanditConfig, LanguageBandit, expected_regret, gold_reward,
                                gradient_bandit_update, token_steps, train_bandit)
from rlhf_lab.config import set_seed
from rlhf_lab.lm.generation import sample
from rlhf_lab.world.reviews import ReviewWorld, judge_completion


def test_gradient_bandit_update_by_hand():
    # pi = (1/2, 1/2); pulled arm 0 moves by lr (R - b)(1 - 1/2), arm 1 by -lr (R - b) 1/2
    new = gradient_bandit_update(torch.zeros(2), action=0, reward=3.0, baseline=1.0, lr=0.5)
    assert new.tolist() == [0.5, -0.5]
    # a reward below the baseline pushes the pulled arm down
    assert gradient_bandit_update(torch.zeros(2), 1, 0.0, 1.0, 0.5).tolist() == [0.25, -0.25]


def test_gradient_bandit_update_is_one_sample_reinforce():
    logits = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.log_softmax(logits, -1)[2], logits)
    new = gradient_bandit_update(logits.detach(), 2, reward=2.0, baseline=0.5, lr=0.1)
    torch.testing.assert_close(new, logits.detach() + 0.1 * 1.5 * grad)


def test_expected_regret_by_hand():
    assert expected_regret(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == 0.5
    assert expected_regret(torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 2.0, -1.0])).item() == 0.0


def test_bandit_learner_finds_the_best_arm():
    bandit = Bandit.gaussian(10, seed=0)
    hist = train_bandit(bandit, BanditConfig(steps=1000, lr=0.1, seed=0))
    final = hist.probs[-1]
    assert max(range(10), key=final.__getitem__) == bandit.best_arm and final[bandit.best_arm] > 0.8
    assert sum(hist.regret[-100:]) < sum(hist.regret[:100]) / 5
    assert hist.cumulative_regret[-1] == pytest.approx(sum(hist.regret))


def test_bandit_runs_are_reproducible():
    a = train_bandit(Bandit.gaussian(5, seed=3), BanditConfig(steps=50, seed=7))
    b = train_bandit(Bandit.gaussian(5, seed=3), BanditConfig(steps=50, seed=7))
    assert a.actions == b.actions and a.rewards == b.rewards


def test_baseline_helps_when_every_reward_is_large():
    """Sutton & Barto Fig. 2.5: with means around +4, b = 0 learns far more slowly."""
    final = {True: 0.0, False: 0.0}
    for seed in range(6):
        bandit = Bandit.gaussian(10, seed=seed, offset=4.0)
        for baseline in final:
            hist = train_bandit(bandit, BanditConfig(steps=500, lr=0.1, baseline=baseline, seed=seed))
            final[baseline] += sum(hist.regret[-50:])
    assert final[True] < final[False] / 2, final


def test_language_bandit_episode_is_one_step():
    prompts = ReviewWorld(0).instruction_prompts(5)
    env = LanguageBandit(prompts, seed=0)
    with pytest.raises(RuntimeError):
        env.step("The plot is good.")
    state = env.reset()
    assert state in prompts
    text = f" The {state.aspect} is brilliant."
    reward, done = env.step(text)
    assert done and reward == judge_completion(state, text).gold == gold_reward(state, text)
    with pytest.raises(RuntimeError):   # the episode ended
        env.step(text)


def test_token_steps_rebuild_the_completion(tiny):
    model, tok = tiny
    set_seed(0)
    s = sample(model, tok, ["The acting is", "I watched"], max_new_tokens=16, temperature=0.7)
    for row in range(2):
        steps = token_steps(s, tok, row, reward=0.3)
        n = int(s.completion_mask[row].sum())
        assert len(steps) == n
        assert steps[0].state == s.prompts[row]
        assert steps[-1].state + steps[-1].action == s.prompts[row] + tok.decode(s.completion_ids[row, :n])
        assert [st.reward for st in steps] == [0.0] * (n - 1) + [0.3]
        assert math.log(math.prod(st.prob for st in steps)) == pytest.approx(s.logprobs[row].sum().item(), abs=1e-4)
