"""Notebook 00: the base model and the three copies."""
import torch

from rlhf_lab.lm.models import load_model


def tied_share_and_untied_count():
    """The tiny model ties its unembedding to its token embedding (section 5 counts the same parameters for
    pi_theta and for r_phi's backbone, which has no head): the (n_vocab, n_emb) matrix is stored once.
    Share = n_vocab * n_emb / total; untied, the head is one more such matrix: total + n_vocab * n_emb."""
    model, _ = load_model("tiny", role="reference", device="cpu")
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    return emb / total, total + emb


def gold_tie():
    """r* = 0.6 s w + 0.25 (w - 1) + 0.15 (o - 1). Neutral, well-formed, on topic: 0. Well-formed, off topic:
    0.6 s - 0.15, which is 0 at s = 0.15 / 0.6 = 0.25 and at most 0.6 - 0.15 = 0.45 (s = 1)."""
    return 0.15 / 0.6, 0.6 - 0.15


def is_valid_reference(policy, reference):
    """A separate object, sharing no tensor with the policy, frozen, in eval mode, with the same weights."""
    if reference is policy or reference.training:
        return False
    mine = {p.data_ptr() for p in policy.parameters()}
    theirs = list(reference.parameters())
    if any(p.data_ptr() in mine for p in theirs) or any(p.requires_grad for p in theirs):
        return False
    return all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(policy.parameters(), theirs))


SOLUTIONS = {"00.1": tied_share_and_untied_count, "00.2": gold_tie, "00.3": lambda: is_valid_reference}
WRONG = {
    "00.1": [("the shapes of section 5, not the question", lambda: (386304, 193)),
             ("counting the head as if untied already", lambda: (0.1763, 2190720))],
    "00.2": [("the on-topic weight read as the tie", lambda: (0.15, 0.6)),
             ("forgetting the off-topic penalty in the maximum", lambda: (0.25, 0.6))],
    "00.3": [("only checks that it is another object", lambda: lambda p, r: r is not p),
             ("only checks that it is frozen", lambda: lambda p, r: not any(q.requires_grad for q in r.parameters())),
             ("a deep copy is enough, frozen or not", lambda: lambda p, r: r is not p and not any(
                 a.data_ptr() == b.data_ptr() for a, b in zip(p.parameters(), r.parameters())))],
}