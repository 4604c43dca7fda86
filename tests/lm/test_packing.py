"""Prefix-shared packing gives the numbers of the unpacked rows, with fewer positions."""
import pytest
import torch
from transformers.activations import NewGELUActivation

from rlhf_lab.rl import dpo
from rlhf_lab.config import adamw, set_seed
from rlhf_lab.lm.models import fused_gelu, load_model
from rlhf_lab.lm.packing import TokenCache, pack, packed_logps, place
from rlhf_lab.reward.model import RewardModel

PAIRS = [
    {"prompt": "Review of Blue Harbor:", "chosen": " A moving film.", "rejected": " Bad."},
    {"prompt": "Write a short review of a comedy.", "chosen": " It is funny and warm, with a sharp script.",
     "rejected": " The jokes fall flat and the plot drags."},
    {"prompt": "Review:", "chosen": " Great.", "rejected": " The acting is wooden and the story is thin."},
]


@pytest.fixture(scope="module")
def policy():
    model, tok = load_model("tiny", role="policy")
    return model.eval(), tok


def test_place_fits_rows_first_fit_decreasing():
    rows = place([5, 3, 4, 2, 1], width=6)
    assert sorted(g for r in rows for g in r) == [0, 1, 2, 3, 4]
    assert all(sum([5, 3, 4, 2, 1][g] for g in r) <= 6 for r in rows)
    assert len(rows) == 3                  # 5+1, 4+2, 3


def test_mask_lets_continuations_see_the_prompt_and_themselves_only():
    b = pack([([1, 2], [[3, 4], [5]])], pad_id=0, fill=False)
    m = b.attention_mask[0, 0].int().tolist()
    # columns: x1 x2 | a1 a2 | b1 ; b1 sees x1 x2 and itself, not a1 a2
    assert m[4] == [1, 1, 0, 0, 1]
    assert m[3] == [1, 1, 1, 1, 0]
    assert b.position_ids[0].tolist() == [0, 1, 2, 3, 2]
    assert b.predictor_col.tolist() == [1, 2, 1]        # b1 is predicted by the prompt's last token
    assert b.last_col.tolist() == [3, 4]


@pytest.mark.parametrize("fill", [True, False])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_pair_logps_equal_unpacked_completion_logps(policy, fill, reduction):
    model, tok = policy
    prompts = [p["prompt"] for p in PAIRS]
    with torch.no_grad():
        want_c = dpo.completion_logps(model, tok, prompts, [p["chosen"] for p in PAIRS], reduction)
        want_r = dpo.completion_logps(model, tok, prompts, [p["rejected"] for p in PAIRS], reduction)
        cache = TokenCache(tok), TokenCache(tok, eos=True)
        groups = [(cache[0](p["prompt"]), [cache[1](p["chosen"]), cache[1](p["rejected"])]) for p in PAIRS]
        batch = pack(groups * 3, tok.pad_token_id, fill=fill)     # repeats: short groups share rows when filled
        got = packed_logps(model, batch, reduction).view(-1, 2)[:3]
    if fill:
        assert batch.input_ids.shape[0] < 9                     # groups did share rows
    torch.testing.assert_close(got[:, 0], want_c, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got[:, 1], want_r, atol=1e-4, rtol=1e-5)


def test_packed_gradients_equal_unpacked(policy):
    model, tok = policy
    prompts = [p["prompt"] for p in PAIRS]
    texts = [p["chosen"] for p in PAIRS] + [p["rejected"] for p in PAIRS]
    model.zero_grad()
    dpo.completion_logps(model, tok, prompts + prompts, texts).sum().backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    sum(dpo.pair_logps(model, tok, PAIRS)).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], atol=2e-4, rtol=1e-3, msg=n)
    model.zero_grad()


def test_eager_attention_takes_the_float_mask(policy):
    model, tok = policy
    eager, _ = load_model("tiny", role="reference")
    eager.config._attn_implementation = "eager"
    with torch.no_grad():
        a = dpo.pair_logps(model, tok, PAIRS)
        b = dpo.pair_logps(eager, tok, PAIRS)
    torch.testing.assert_close(torch.stack(a), torch.stack(b), atol=1e-4, rtol=1e-5)


def test_reward_model_packed_equals_row_by_row():
    set_seed(0)
    rm = RewardModel.from_backbone("tiny").eval()
    with torch.no_grad():
        packed = rm.forward_packed(rm.pack([(p["prompt"], [p["chosen"], p["rejected"]]) for p in PAIRS]))
        rows = rm.score([p["prompt"] for p in PAIRS for _ in range(2)],
                        [c for p in PAIRS for c in (p["chosen"], p["rejected"])])
    torch.testing.assert_close(packed, rows, atol=1e-5, rtol=1e-5)


def test_pack_errors_name_the_group(policy):
    _, tok = policy
    with pytest.raises(ValueError, match="pair 7.*empty"):
        pack([([], [[1]])], tok.pad_token_id, names=["pair 7"])
    with pytest.raises(ValueError, match="group 0, continuation 1: prompt \\+ completion is 6 tokens, over the "
                                         "model's context of 5"):
        pack([([1, 2], [[3], [4, 5, 6, 7]])], tok.pad_token_id, max_length=5)
    long = {"prompt": "Review:", "chosen": " great" * 200, "rejected": " bad"}
    with pytest.raises(ValueError, match="pair 0 .*over the model's context of 128"):
        dpo.pair_logps(policy[0], tok, [long])


def test_fused_gelu_is_the_same_function():
    model, _ = load_model("tiny")
    assert model.config.activation_function == "gelu_pytorch_tanh"
    assert not any(isinstance(m, NewGELUActivation) for m in model.modules())
    x = torch.randn(4, 7, 192) * 3
    old = NewGELUActivation()
    new = fused_gelu(torch.nn.Sequential(NewGELUActivation()))
    torch.testing.assert_close(new(x), old(x), atol=1e-6, rtol=1e-6)


def test_adamw_is_fused_where_the_device_has_the_kernel():
    p = torch.nn.Parameter(torch.ones(3))
    opt = adamw([p], lr=0.1)
    assert opt.defaults["fused"] and opt.defaults["weight_decay"] == 0.0
    p.grad = torch.ones(3)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.9))    # Adam's first step moves lr * sign(grad)


def test_dpo_without_shuffle_ignores_the_seed():
    from rlhf_lab.labels.preferences import load_preferences

    records = load_preferences(labeler="sim-gold")[:12]
    runs = [dpo.train_dpo(dpo.DPOConfig(seed=s, shuffle=shuffle, eval_every=10**6, batch_size=8), records,
                          val_records=[], progress=False)[1].loss for s in (0, 1) for shuffle in (False, True)]
    assert runs[0] == runs[2]                 # shuffle off: the same batches whatever the seed
    assert runs[1] != runs[3]                 # shuffle on: the seed orders the pairs


def test_device_scalars_read_in_batches_off_the_cpu():
    from rlhf_lab.utils.progress import DeviceScalars

    cpu = DeviceScalars("cpu")
    assert cpu.add(loss=torch.tensor(1.5)) == [{"loss": 1.5}]         # a CPU reads every step
    gpu = DeviceScalars("cuda", every=3)                              # the schedule only: values stay where they are
    assert gpu.add(loss=torch.tensor(1.0), acc=torch.tensor(0.5)) == []
    assert gpu.add(loss=torch.tensor(2.0), acc=torch.tensor(0.25)) == []
    rows = gpu.add(loss=torch.tensor(float("nan")), acc=torch.tensor(1.0))
    assert [r["acc"] for r in rows] == [0.5, 0.25, 1.0] and rows[2]["loss"] != rows[2]["loss"]
    assert gpu.read() == []


def test_dpo_nan_loss_stops_with_the_step(monkeypatch):
    from rlhf_lab.labels.preferences import load_preferences

    real = dpo.dpo_loss
    monkeypatch.setattr(dpo, "dpo_loss", lambda *a, **k: (lambda loss, m: (loss * float("nan"), m))(*real(*a, **k)))
    with pytest.raises(FloatingPointError, match="DPO loss is nan at step 1 of .*not saved"):
        dpo.train_dpo(dpo.DPOConfig(eval_every=10**6, batch_size=8), load_preferences(labeler="sim-gold")[:8],
                      val_records=[], progress=False)


@pytest.mark.parametrize("inverse_layer_scale", [False, True])
def test_last_block_at_the_read_positions_equals_the_full_forward(inverse_layer_scale):
    """The reward model's shortcut (the last GPT-2 block run only where rewards are read) changes no
    value and no gradient."""
    from transformers import GPT2Config, GPT2Model

    from rlhf_lab.lm.packing import packed_hidden, packed_hidden_at

    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=3, n_head=4,
                                 scale_attn_by_inverse_layer_idx=inverse_layer_scale)).eval()
    batch = pack([([1, 2, 3], [[4, 5], [6, 7, 8, 9]]), ([10], [[11], [12, 13]]), ([14, 15], [[16]])], pad_id=0)
    rows, cols = batch.block_row, batch.last_col
    full = packed_hidden(model, batch)[rows, cols]
    full.sum().backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    fast = packed_hidden_at(model, batch, rows, cols)
    fast.sum().backward()
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], atol=1e-5, rtol=1e-4, msg=n)
    assert len(model.h) == 3 and not isinstance(model.ln_f, torch.nn.Identity)   # the model is restored


def test_the_packed_lm_loss_is_the_padded_one(tiny):
    """Pre-training rows (every token after the first) and SFT rows (the demonstration and its EOS):
    the packed loss equals lm_loss on the right-padded batch, with fewer positions forwarded."""
    from rlhf_lab.lm.packing import packed_lm_loss
    from rlhf_lab.lm.pretrain import lm_loss, pad_batch, tokenise_for_lm
    from rlhf_lab.world.reviews import ReviewWorld

    model, tok = tiny
    world = ReviewWorld(0)
    demos = world.demonstrations(6)
    for rows in (tokenise_for_lm(tok, [], world.corpus(6), 128),
                 tokenise_for_lm(tok, [p.text for p, _ in demos], [d for _, d in demos], 128)):
        with torch.no_grad():
            padded = lm_loss(model, *pad_batch(rows, tok.pad_token_id, "cpu"))
            packed = packed_lm_loss(model, rows, tok.pad_token_id, "cpu")
        torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
