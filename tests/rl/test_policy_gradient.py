import math
from types import SimpleNamespace

import pytest
import torch

from rlhf_lab.config import set_seed
from rlhf_lab.lm.generation import Samples, sample
from rlhf_lab.rl.policy_gradient import (ReinforceConfig, estimator_variance, evaluate_gold, exact_gradient,
                                         expected_reward, learned_baseline, mean_baseline, reinforce_gradient_samples,
                                         reinforce_loss, score_function, sequence_logprobs, train_reinforce)
from rlhf_lab.world.reviews import ReviewWorld

LOGITS = torch.tensor([0.5, -1.0, 1.5, 0.0], dtype=torch.float64)
REWARDS = torch.tensor([1.0, 3.0, -0.5, 2.0], dtype=torch.float64)


def _draw(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(torch.softmax(LOGITS, -1), n, replacement=True, generator=g)


# ---- exact maths -----------------------------------------------------------------------

def test_exact_gradient_by_hand_and_by_autograd():
    # two arms, equal logits: pi = (1/2, 1/2), E[r] = 1/2, grad = pi * (r - E[r]) = (1/4, -1/4)
    assert exact_gradient(torch.zeros(2), torch.tensor([1.0, 0.0])).tolist() == [0.25, -0.25]
    logits = LOGITS.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(expected_reward(logits, REWARDS), logits)
    torch.testing.assert_close(exact_gradient(LOGITS, REWARDS), auto)
    assert abs(exact_gradient(LOGITS, REWARDS).sum().item()) < 1e-12  # softmax gradients sum to 0


def test_score_function_is_the_gradient_of_log_softmax():
    actions = torch.tensor([2, 0, 2])
    for i, a in enumerate(actions.tolist()):
        logits = LOGITS.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.log_softmax(logits, -1)[a], logits)
        torch.testing.assert_close(score_function(LOGITS, actions)[i], g)


def test_reinforce_estimator_is_unbiased():
    """200k samples: every coordinate within 4 standard errors of the exact gradient (and within 0.01)."""
    g = reinforce_gradient_samples(LOGITS, REWARDS, _draw(200_000))
    estimate, stderr = g.mean(0), g.std(0) / math.sqrt(g.shape[0])
    exact = exact_gradient(LOGITS, REWARDS)
    assert ((estimate - exact).abs() < 4 * stderr).all(), (estimate, exact, stderr)
    assert (estimate - exact).abs().max() < 0.01


def test_monte_carlo_error_shrinks_with_samples():
    exact = exact_gradient(LOGITS, REWARDS)
    g = reinforce_gradient_samples(LOGITS, REWARDS, _draw(100_000, seed=1))
    err_small = (g[:100].mean(0) - exact).norm().item()
    err_large = (g.mean(0) - exact).norm().item()
    assert err_large < err_small / 5    # sqrt(1000) ~ 32 in expectation


def test_baselines_keep_the_mean_and_lower_the_variance():
    shifted = REWARDS + 5.0                 # all rewards positive: the case where a baseline matters most
    actions = _draw(200_000, seed=2)
    exact = exact_gradient(LOGITS, shifted)
    assert torch.allclose(exact, exact_gradient(LOGITS, REWARDS))   # shifting r does not change the gradient
    value = expected_reward(LOGITS, shifted).item()
    runs = {"none": None, "mean": value, "learned": learned_baseline(shifted[actions], lr=0.01)}
    g = {name: reinforce_gradient_samples(LOGITS, shifted, actions, b) for name, b in runs.items()}
    for name, gi in g.items():
        stderr = gi.std(0) / math.sqrt(gi.shape[0])
        assert ((gi.mean(0) - exact).abs() < 4 * stderr).all(), name
    var = {name: estimator_variance(gi) for name, gi in g.items()}
    assert var["mean"] < var["none"] / 10 and var["learned"] < var["none"] / 10, var


def test_reinforce_loss_by_hand_and_its_gradient_is_minus_the_estimate():
    # advantages (1 - 2, 3 - 2) = (-1, 1); loss = -mean(-1 * -1, 1 * -2) = -mean(1, -2) = 0.5
    loss, stats = reinforce_loss(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0]), 2.0)
    assert loss.item() == pytest.approx(0.5) and stats["reward"] == pytest.approx(2.0)
    actions = _draw(64, seed=3)
    logits = LOGITS.clone().requires_grad_(True)
    b = mean_baseline(REWARDS[actions])
    loss, _ = reinforce_loss(torch.log_softmax(logits, -1)[actions], REWARDS[actions], b)
    (grad,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(grad, -reinforce_gradient_samples(LOGITS, REWARDS, actions, b).mean(0))


def test_mean_baseline_leaves_one_out():
    r = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert mean_baseline(r, group_size=2).tolist() == [2.0, 1.0, 6.0, 3.0]
    torch.testing.assert_close(mean_baseline(r), torch.tensor([11 / 3, 10 / 3, 3.0, 2.0]))
    with pytest.raises(ValueError):
        mean_baseline(r, group_size=3)


def test_learned_baseline_uses_only_past_rewards():
    assert learned_baseline(torch.tensor([1.0, 1.0, 1.0]), lr=0.5).tolist() == [0.0, 0.5, 0.75]
    a, b = learned_baseline(torch.tensor([1.0, 2.0, 9.0])), learned_baseline(torch.tensor([1.0, 2.0, -9.0]))
    assert a.tolist() == b.tolist()      # b_i does not see r_i


# ---- sequence log-probs ------------------------------------------------------------------

class _FixedLogits(torch.nn.Module):
    """A 'model' whose logits are given: hand computations without a transformer. Its transformer
    returns the logits as hidden states and its unembedding is the identity."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    @property
    def base_model(self):
        return self

    def get_output_embeddings(self):
        return torch.nn.Identity()

    def forward(self, input_ids, attention_mask, position_ids, use_cache):
        return SimpleNamespace(logits=self.logits, last_hidden_state=self.logits)


def _samples(prompt_ids, completion_ids, completion_mask) -> Samples:
    b, t = completion_ids.shape
    return Samples([""] * b, [""] * b, prompt_ids, torch.ones_like(prompt_ids), completion_ids,
                   completion_mask, torch.zeros(b, t), completion_mask.bool()[:, -1])


def test_sequence_logprob_of_two_tokens_by_hand():
    # vocabulary of 3; prompt = [0]; completion = [2, 1]. Logits at column 0 predict token 2,
    # at column 1 predict token 1; column 2 predicts nothing that is scored.
    logits = torch.tensor([[[0.0, 0.0, math.log(2.0)], [math.log(3.0), 0.0, 0.0], [9.0, 9.0, 9.0]]])
    s = _samples(torch.tensor([[0]]), torch.tensor([[2, 1]]), torch.tensor([[1, 1]]))
    p1, p2 = 2 / (1 + 1 + 2), 1 / (3 + 1 + 1)          # 1/2 and 1/5
    model = _FixedLogits(logits)
    assert sequence_logprobs(model, s).item() == pytest.approx(math.log(p1 * p2))
    assert sequence_logprobs(model, s, reduction="mean").item() == pytest.approx(math.log(p1 * p2) / 2)
    # at temperature 2 the logits are halved: p1 = sqrt2 / (2 + sqrt2), p2 = 1 / (sqrt3 + 2)
    assert sequence_logprobs(model, s, temperature=2.0).item() == pytest.approx(
        math.log(math.sqrt(2) / (2 + math.sqrt(2))) + math.log(1 / (math.sqrt(3) + 2)))
    # a masked second token counts for nothing, and the mean divides by one token
    s1 = _samples(torch.tensor([[0]]), torch.tensor([[2, 1]]), torch.tensor([[1, 0]]))
    assert sequence_logprobs(model, s1).item() == pytest.approx(math.log(p1))
    assert sequence_logprobs(model, s1, reduction="mean").item() == pytest.approx(math.log(p1))


def test_sequence_logprob_matches_one_forward_pass_per_token(tiny):
    """The batched, padded helper against the slow reference: one unpadded forward pass per token."""
    model, tok = tiny
    set_seed(0)
    s = sample(model, tok, ["The acting is", 'Write a review of the plot of "Glass Orchard".\nReview:'],
               max_new_tokens=12, temperature=0.7)
    fast_sum = sequence_logprobs(model, s, temperature=0.7)
    fast_mean = sequence_logprobs(model, s, temperature=0.7, reduction="mean")
    for row in range(2):
        ids = s.prompt_ids[row][s.prompt_mask[row].bool()].tolist()
        n = int(s.completion_mask[row].sum())
        total = 0.0
        with torch.no_grad():
            for y in s.completion_ids[row, :n].tolist():
                logits = model(torch.tensor([ids])).logits[0, -1] / 0.7
                total += torch.log_softmax(logits, -1)[y].item()
                ids.append(y)
        assert fast_sum[row].item() == pytest.approx(total, abs=1e-3)
        assert fast_mean[row].item() == pytest.approx(total / n, abs=1e-4)
        assert s.logprobs[row].sum().item() == pytest.approx(total, abs=1e-3)


def test_sequence_logprobs_are_differentiable(tiny):
    model, tok = tiny
    set_seed(0)
    s = sample(model, tok, ["The plot is"], max_new_tokens=8)
    model.requires_grad_(True)
    try:
        sequence_logprobs(model, s).sum().backward()
        assert model.transformer.wte.weight.grad.abs().sum() > 0
    finally:
        model.requires_grad_(False)
        model.zero_grad(set_to_none=True)


# ---- a seeded REINFORCE run on the tiny model -------------------------------------------

def test_reinforce_smoke_run_raises_gold_reward():
    from rlhf_lab.lm.models import load_model

    model, tok = load_model("tiny", role="policy", device="cpu")
    before_params = [p.detach().clone() for p in model.parameters()]
    w = ReviewWorld(0)
    held_out = w.instruction_prompts(64, split="val")
    before = evaluate_gold(model, tok, held_out, seed=0, max_new_tokens=32)
    cfg = ReinforceConfig(steps=12, max_new_tokens=32, seed=0)     # 12 x 32 completions, a few seconds
    hist = train_reinforce(model, tok, w.instruction_prompts(500), cfg, progress=False)
    after = evaluate_gold(model, tok, held_out, seed=0, max_new_tokens=32)
    assert all(math.isfinite(x) for x in hist.loss) and len(hist.loss) == cfg.steps
    assert any(not torch.equal(a, b) for a, b in zip(before_params, model.parameters()))
    assert after.summary["gold"] > before.summary["gold"] + 0.05, (before.summary, after.summary)


def test_train_reinforce_options_and_frozen_model_error(tiny):
    from rlhf_lab.lm.models import load_model

    frozen, tok = tiny
    prompts = ReviewWorld(0).instruction_prompts(8)
    with pytest.raises(ValueError, match="frozen"):
        train_reinforce(frozen, tok, prompts, ReinforceConfig(steps=1), progress=False)
    model, _ = load_model("tiny", role="policy", device="cpu")
    with pytest.raises(ValueError, match="baseline"):
        train_reinforce(model, tok, prompts, ReinforceConfig(baseline="median"), progress=False)
    for baseline, reduction in [("learned", "mean"), ("none", "sum")]:
        cfg = ReinforceConfig(steps=2, batch_size=2, samples_per_prompt=2, max_new_tokens=8,
                              baseline=baseline, reduction=reduction)
        hist = train_reinforce(model, tok, prompts, cfg, progress=False)
        assert len(hist.reward) == 2 and all(math.isfinite(x) for x in hist.loss + hist.grad_norm)


def test_reinforce_stops_at_a_nan_reward_and_at_parameters_that_overflowed():
    from rlhf_lab.lm.models import load_model

    model, tok = load_model("tiny", role="policy", device="cpu")
    prompts = ReviewWorld(0).instruction_prompts(8)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = ReinforceConfig(steps=2, batch_size=2, samples_per_prompt=2, max_new_tokens=8)
    nan_reward = lambda ps, cs: torch.full((len(cs),), float("nan"))   # noqa: E731
    with pytest.raises(FloatingPointError, match="the REINFORCE loss is nan at step 1 of 2; a reward of NaN"):
        train_reinforce(model, tok, prompts, cfg, reward_fn=nan_reward, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # stopped before the step
    # a parameter no forward reads (so no loss can show it) is caught by the check at the end
    model.register_parameter("stray", torch.nn.Parameter(torch.tensor([float("inf")])))
    with pytest.raises(FloatingPointError, match="the policy's parameter stray is not finite after 2 REINFORCE steps"):
        train_reinforce(model, tok, prompts, cfg, progress=False)

def test_evaluate_gold_is_reproducible(tiny):
    model, tok = tiny
    prompts = ReviewWorld(0).instruction_prompts(6, split="val")
    a, b = (evaluate_gold(model, tok, prompts, seed=3, max_new_tokens=16) for _ in range(2))
    assert a.completions == b.completions and a.gold == b.gold and len(a.gold) == 6
    assert a.summary["gold"] == pytest.approx(sum(a.gold) / 6) and a.stderr > 0


# ---- exercises ---------------------------------------------------------------------------
