"""DPO: the loss against hand values and a forward pass, the closed form, a seeded training run."""
import math

import pytest
import torch
import torch.nn.functional as F

from rlhf_lab.rl import dpo
from rlhf_lab.labels.preferences import load_preferences


def test_dpo_loss_hand_values():
    pc, pr = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0])
    rc, rr = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -5.0])
    loss, m = dpo.dpo_loss(pc, pr, rc, rr, beta=0.5)
    # pair 1: h = (1) - (-1) = 2 -> -log sigmoid(1); pair 2: h = 0 - 1 = -1 -> -log sigmoid(-0.5)
    want = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.5))) / 2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert m["rewards/chosen"] == pytest.approx((0.5 * 1 + 0.5 * 0) / 2)
    assert m["rewards/rejected"] == pytest.approx((0.5 * -1 + 0.5 * 1) / 2)
    assert m["rewards/margins"] == pytest.approx(m["rewards/chosen"] - m["rewards/rejected"])
    assert m["rewards/accuracies"] == 0.5


def test_dpo_loss_beta_limits_and_ipo():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(64, generator=g) for _ in range(4))
    h = (pc - rc) - (pr - rr)
    # beta -> 0: every pair costs log 2, whatever the policy
    assert dpo.dpo_loss(pc, pr, rc, rr, beta=1e-6)[0].item() == pytest.approx(math.log(2), abs=1e-5)
    # large beta: the loss is beta * mean(max(-h, 0)) (hinge), the pairs ranked the wrong way pay
    big = 1e3
    assert dpo.dpo_loss(pc, pr, rc, rr, beta=big)[0].item() == pytest.approx(big * F.relu(-h).mean().item(), rel=1e-3)
    # policy = reference: h = 0 and the loss is log 2 for any beta
    assert dpo.dpo_loss(rc, rr, rc, rr, beta=0.3)[0].item() == pytest.approx(math.log(2))
    ipo, _ = dpo.dpo_loss(pc, pr, rc, rr, beta=0.25, loss_type="ipo")
    assert ipo.item() == pytest.approx(((h - 2.0) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(pc, pr, rc, rr, beta=0.0)
    with pytest.raises(ValueError, match="loss_type"):
        dpo.dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type="hinge")


def test_implicit_reward_sign():
    """Raising pi(y) above pi_ref(y) gives y a positive implicit reward, lowering it a negative one."""
    assert dpo.implicit_reward(torch.tensor(-1.0), torch.tensor(-2.0), 0.1).item() == pytest.approx(0.1)
    assert dpo.implicit_reward(torch.tensor(-3.0), torch.tensor(-2.0), 0.1).item() == pytest.approx(-0.1)


def test_dpo_loss_matches_a_direct_forward_pass(tiny):
    """The pair's loss from `completion_logps` equals one written from a plain forward and a loop."""
    model, tok = tiny
    prompt, chosen, rejected = "The plot of \"Stone Engine\" is", " superb.", " dull and far too long."
    logp = dpo.completion_logps(model, tok, [prompt, prompt], [chosen, rejected])

    def direct(completion):   # unpadded, one sequence, sum over its tokens by hand
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = model(ids).logits[0].log_softmax(-1)
        return sum(logits[len(p) + t - 1, c[t]].item() for t in range(len(c)))

    assert logp[0].item() == pytest.approx(direct(chosen), abs=1e-4)
    assert logp[1].item() == pytest.approx(direct(rejected), abs=1e-4)
    ref = torch.tensor([direct(chosen) - 0.3, direct(rejected) + 0.2])
    loss, _ = dpo.dpo_loss(logp[:1], logp[1:], ref[:1], ref[1:], beta=0.1)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.1 * 0.5))), abs=1e-5)
    # mean reduction divides by the completion length (+ EOS)
    mean = dpo.completion_logps(model, tok, [prompt], [chosen], reduction="mean")
    n = len(tok(chosen, add_special_tokens=False)["input_ids"]) + 1
    assert mean.item() == pytest.approx(logp[0].item() / n, abs=1e-5)


def test_closed_form_optimum_on_a_categorical():
    """Gradient ascent on E[r] - beta KL lands on pi_ref exp(r / beta) / Z."""
    g = torch.Generator().manual_seed(1)
    ref = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), -1)
    r = torch.randn(6, generator=g, dtype=torch.float64)
    for beta in (0.2, 1.0):
        logits = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=0.05)
        for _ in range(3000):
            opt.zero_grad()
            (-dpo.regularised_objective(torch.softmax(logits, -1), ref, r, beta)).backward()
            opt.step()
        torch.testing.assert_close(torch.softmax(logits, -1).detach(), dpo.optimal_policy(ref, r, beta),
                                   atol=1e-4, rtol=1e-3)
        # the implicit reward recovers r up to a constant: beta log(pi*/pi_ref) - r = -beta log Z
        diff = beta * torch.log(dpo.optimal_policy(ref, r, beta) / ref) - r
        assert diff.std().item() < 1e-10


def test_seeded_dpo_run_learns_and_moves_the_policy():
    records = load_preferences(labeler="sim-gold")
    cfg = dpo.DPOConfig(max_pairs=256, batch_size=16, lr=3e-4, eval_every=8, device="cpu")
    policy, hist = dpo.train_dpo(cfg, records, progress=False)
    assert hist.val_accuracy[0] == 0.5                       # policy = reference: every pair a tie
    assert hist.val_accuracy[-1] > 0.6, hist.val_accuracy     # above chance on held-out pairs
    assert all(math.isfinite(x) for x in hist.loss)
    assert sum(hist.loss[-4:]) / 4 < math.log(2)
    from rlhf_lab.lm.models import load_model
    ref, tok = load_model("tiny", role="reference")
    changed = [not torch.equal(a, b) for a, b in zip(policy.parameters(), ref.parameters())]
    assert any(changed)
    from rlhf_lab.evaluation import evaluate_policy
    from rlhf_lab.world.reviews import ReviewWorld
    kl = evaluate_policy(policy, ref, tok, ReviewWorld(0).prompts(16, split="test"), max_new_tokens=16)["kl"]
    assert kl > 0.05


def test_config_validation():
    with pytest.raises(ValueError, match="loss_type"):
        dpo.DPOConfig(loss_type="hinge")
    with pytest.raises(ValueError, match="reduction"):
        dpo.DPOConfig(reduction="max")
