"""The RL sampler (rlhf_lab.lm.sampler): the distribution it draws from, the log-probs it returns, the
work it skips (no per-step logits kept, finished rows dropped) and its two loops' agreement."""
import pytest
import torch

from rlhf_lab.config import set_seed
from rlhf_lab.lm.generation import encode_prompts, sample, token_logprobs
from rlhf_lab.lm.models import load_model
from rlhf_lab.lm.sampler import decode, sample_from_logits
from rlhf_lab.world.reviews import ReviewWorld


def _fresh_logprobs(model, s, temperature):
    return token_logprobs(model, s.input_ids, s.attention_mask, s.prompt_ids.shape[1], temperature)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logprobs_equal_a_full_forward_within_1e_5(tiny, seed):
    """Within 1e-5 + 1e-5 |log p|: float32 rounding, the cached and the full forward summing in other
    orders. (transformers' generate, the sampler before this one, differed from the full forward by
    up to 1.2e-5 on these prompts, 1e-5 absolute alone fails it too.)"""
    model, tok = tiny
    prompts = [p.text for p in ReviewWorld(seed).prompts(24)]
    set_seed(seed)
    s = sample(model, tok, prompts, max_new_tokens=40, temperature=0.7, num_samples=2)
    assert (s.completion_mask.sum(-1) < 40).any(), "some rows finish early, so rows were dropped mid-loop"
    torch.testing.assert_close(s.logprobs, _fresh_logprobs(model, s, 0.7) * s.completion_mask, atol=1e-5, rtol=1e-5)


def test_logprobs_equal_a_full_forward_on_gpt2s_vocabulary(hub_gpt2):
    model, tok = load_model(hub_gpt2, role="reference")
    set_seed(0)
    s = sample(model, tok, [p.text for p in ReviewWorld(0).prompts(6)], max_new_tokens=12, temperature=1.0)
    torch.testing.assert_close(s.logprobs, _fresh_logprobs(model, s, 1.0) * s.completion_mask, atol=1e-5, rtol=1e-5)
    assert not (s.completion_ids == tok.pad_token_id)[s.completion_mask.bool()].any(), "PAD is never sampled"


def test_inverse_cdf_draws_softmax_of_logits_over_temperature():
    """200,000 draws from 6 logits (one -inf) at T = 0.5: each frequency within 5 standard errors of
    softmax(logits / T), the -inf token never, and the returned log-prob that of the drawn token."""
    logits = torch.tensor([[2.0, 0.5, -1.0, float("-inf"), 0.0, 1.2]]).expand(200_000, 6)
    torch.manual_seed(0)
    tokens, logp = sample_from_logits(logits, 0.5, torch.rand(len(logits)))
    want = torch.softmax(logits[0] / 0.5, -1)
    freq = torch.bincount(tokens, minlength=6).double() / len(tokens)
    stderr = (want * (1 - want) / len(tokens)).sqrt()
    assert freq[3] == 0
    assert ((freq - want).abs() <= 5 * stderr + 1e-12).all(), (freq, want)
    torch.testing.assert_close(logp, torch.log_softmax(logits / 0.5, -1).gather(1, tokens[:, None]).squeeze(1))


def test_extreme_uniforms_stay_inside_the_vocabulary():
    logits = torch.tensor([[0.0, 1.0, float("-inf")], [5.0, float("-inf"), float("-inf")]])
    for u in (0.0, 1.0 - 2 ** -24, 1.0 - 1e-16):
        tokens, _ = sample_from_logits(logits, 1.0, torch.full((2,), u))
        assert tokens.tolist()[1] == 0 and tokens.tolist()[0] in (0, 1)


def test_the_eager_and_the_static_loop_draw_the_same_tokens(tiny):
    model, tok = tiny
    ids, mask = encode_prompts(tok, [p.text for p in ReviewWorld(3).prompts(16)], "cpu")
    out = {}
    for static in (False, True):
        set_seed(5)
        out[static] = decode(model, ids, mask, 32, 0.7, tok.eos_token_id, tok.pad_token_id, static=static)
    assert torch.equal(out[False].tokens, out[True].tokens)
    torch.testing.assert_close(out[False].logprobs, out[True].logprobs, atol=1e-5, rtol=0)
    set_seed(5)   # the static cache is kept for the shape and emptied: a second call draws the same
    again = decode(model, ids, mask, 32, 0.7, tok.eos_token_id, tok.pad_token_id, static=True)
    assert torch.equal(again.tokens, out[True].tokens) and torch.equal(again.logprobs, out[True].logprobs)


def test_without_the_cache_the_same_tokens_come_out(tiny):
    model, tok = tiny
    prompts = [p.text for p in ReviewWorld(4).prompts(8)]
    runs = []
    for use_cache in (True, False):
        set_seed(2)
        runs.append(sample(model, tok, prompts, max_new_tokens=24, temperature=0.7, use_cache=use_cache))
    assert runs[0].completions == runs[1].completions
    torch.testing.assert_close(runs[0].logprobs, runs[1].logprobs, atol=1e-5, rtol=0)


def test_decode_steps_feed_one_token_unembed_one_position_and_drop_finished_rows(tiny):
    """After the prompt, each forward sees (b, 1) new tokens, the unembedding runs on the last position
    only ((b, d) -> (b, V)), and b shrinks once rows have ended: no (B, T, V) logits, no work on
    finished rows."""
    model, tok = tiny
    feeds, heads = [], []
    hooks = [model.base_model.register_forward_hook(lambda m, a, kw, o: feeds.append(tuple(kw["input_ids"].shape)),
                                                    with_kwargs=True),
             model.get_output_embeddings().register_forward_hook(lambda m, a, o: heads.append(tuple(o.shape)))]
    try:
        set_seed(0)
        s = sample(model, tok, [p.text for p in ReviewWorld(0).prompts(32)], max_new_tokens=48, temperature=0.7)
    finally:
        for h in hooks:
            h.remove()
    assert s.finished.all()
    assert all(len(shape) == 2 and shape[1] == len(tok) for shape in heads) and len(heads) == len(feeds)
    assert all(shape[1] == 1 for shape in feeds[1:])
    batches = [shape[0] for shape in feeds]
    assert batches[0] == 32 and batches[-1] < 32 and batches == sorted(batches, reverse=True)
    assert len(feeds) == int(s.completion_mask.sum(-1).max()), "the loop ends when the last row has ended"


def test_a_rows_tokens_do_not_depend_on_when_other_rows_finish(tiny):
    """The uniforms are drawn for every row at every step: a prompt's completion is the same whether
    the row beside it samples the same review or ends early on another prompt (and is dropped)."""
    model, tok = tiny
    prompt = ReviewWorld(0).prompts(1)[0].text
    set_seed(9)
    alone = sample(model, tok, [prompt, prompt], max_new_tokens=30, temperature=1.0)
    set_seed(9)
    mixed = sample(model, tok, ["The", prompt], max_new_tokens=30, temperature=1.0)
    assert mixed.completions[1] == alone.completions[1]


def test_zero_budget_is_an_error(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        sample(model, tok, ["The plot is"], max_new_tokens=0)
