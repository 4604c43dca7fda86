import math

import pytest
import torch

from rlhf_lab.config import set_seed
from rlhf_lab.lm.generation import encode_prompts, position_ids_from_mask, sample, sequence_logprob, token_logprobs

PROMPTS = ['Write a review of the plot of "Glass Orchard".\nReview:', "The acting is"]


def test_left_padding_and_positions_from_mask(tiny):
    _, tok = tiny
    ids, mask = encode_prompts(tok, ["a b c d e", "a"], "cpu")
    assert mask[1].tolist()[-1] == 1 and mask[1].tolist()[0] == 0  # short prompt padded on the left
    assert (ids[mask == 0] == tok.pad_token_id).all()
    pos = position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]))
    assert pos.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_sampled_logprobs_equal_a_fresh_forward_pass(tiny, temperature):
    model, tok = tiny
    set_seed(0)
    s = sample(model, tok, PROMPTS, max_new_tokens=20, temperature=temperature, num_samples=3)
    assert s.completion_ids.shape[0] == 6 and len(s.completions) == 6
    fresh = token_logprobs(model, s.input_ids, s.attention_mask, start=s.prompt_ids.shape[1],
                           temperature=temperature)
    torch.testing.assert_close(s.logprobs, fresh, atol=1e-4, rtol=1e-4)
    assert (s.logprobs <= 0).all()


def test_padding_does_not_change_log_probs(tiny):
    """A prompt scored alone equals the same prompt left-padded next to a longer one."""
    model, tok = tiny
    long_prompt, short = "The plot of this film is", "Bad"
    completion = " not bad at all."
    rows = []
    for batch in ([short + completion], [long_prompt + completion, short + completion]):
        ids, mask = encode_prompts(tok, batch, "cpu")
        n_completion = len(tok(completion)["input_ids"])
        with torch.no_grad():
            lp = token_logprobs(model, ids, mask, start=ids.shape[1] - n_completion)
        rows.append(lp[-1])
    torch.testing.assert_close(rows[0], rows[1], atol=1e-5, rtol=1e-5)


def test_completion_mask_stops_after_eos_and_finished_flags(tiny):
    model, tok = tiny
    set_seed(1)
    s = sample(model, tok, PROMPTS * 4, max_new_tokens=40, temperature=1.0)
    for ids, mask, done in zip(s.completion_ids, s.completion_mask, s.finished):
        eos = (ids == tok.eos_token_id).nonzero()
        if done:
            first = eos[0].item()
            assert mask[: first + 1].all() and not mask[first + 1:].any()
        else:
            assert len(eos) == 0 and mask.all()
    assert s.finished.any(), "the SFT model should finish most reviews within 40 tokens"
    assert not any("<|" in c for c in s.completions)


def test_same_seed_same_samples(tiny):
    model, tok = tiny
    set_seed(7)
    a = sample(model, tok, PROMPTS, max_new_tokens=12).completions
    set_seed(7)
    b = sample(model, tok, PROMPTS, max_new_tokens=12).completions
    assert a == b


def test_sequence_logprob_sum_and_mean_by_hand():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert sequence_logprob(lp, mask, "sum").tolist() == [-6.0, -1.0]
    assert sequence_logprob(lp, mask, "mean").tolist() == [-2.0, -0.5]
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        sequence_logprob(lp, mask, "max")


def test_sum_of_token_logprobs_is_log_of_product_of_probabilities(tiny):
    model, tok = tiny
    ids, mask = encode_prompts(tok, ["The soundtrack is haunting."], "cpu")
    with torch.no_grad():
        lp = token_logprobs(model, ids, mask, start=1)
    product = torch.exp(lp.double()).prod().item()
    assert math.isclose(lp.sum().item(), math.log(product), rel_tol=1e-4)


def test_prompt_longer_than_context_is_a_clear_error(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="prompt 1 is .* tokens long"):
        sample(model, tok, ["fine", "word " * 500], max_new_tokens=8)


def test_bad_arguments_are_rejected(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample(model, tok, PROMPTS, temperature=0)
    with pytest.raises(TypeError, match="list of strings"):
        sample(model, tok, "The plot is")
