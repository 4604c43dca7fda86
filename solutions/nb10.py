"""Notebook 10: when the reward model is wrong."""
import torch

from rlhf_lab.exercises.nb10 import SAMPLES, _pooled_line


def length_controlled_by_hand():
    """Centre tokens and gold within each policy; the slope is sum(dv * dn) / sum(dn^2) over all six samples. The
    pooled mean length is the mean of all six lengths; each policy's value is its mean gold plus the slope times
    (pooled mean length - its mean length)."""
    rows = {g: ([n for n, _ in xs], [v for _, v in xs]) for g, xs in SAMPLES.items()}
    centred = [(n - sum(ns) / len(ns), v - sum(vs) / len(vs)) for ns, vs in rows.values() for n, v in zip(ns, vs)]
    slope = sum(dn * dv for dn, dv in centred) / sum(dn * dn for dn, _ in centred)
    everyone = [n for ns, _ in rows.values() for n in ns]
    mean_len = sum(everyone) / len(everyone)
    return tuple(sum(vs) / len(vs) + slope * (mean_len - sum(ns) / len(ns)) for ns, vs in rows.values())


def kept():
    """Var((1/n) sum e_i) = (1/n^2) (n sigma^2 + n (n - 1) rho sigma^2) = sigma^2 (rho + (1 - rho) / n)."""
    return lambda rho, n: rho + (1 - rho) / n


def ensemble_reward():
    """Over the members (dim 0), for each completion: mean, min, or mean - lam x std (population form)."""
    def reward(scores, objective, lam):
        if objective == "mean":
            return scores.mean(0)
        if objective == "min":
            return scores.min(0).values
        return scores.mean(0) - lam * scores.std(0, correction=0)
    return reward


def penalty_fix():
    """scores.std() is one number over every member and completion: the same penalty for every completion, a
    constant shift that a group-normalised advantage removes. The spread is per completion, over the members."""
    return lambda scores, lam: scores.mean(0) - lam * scores.std(0)


SOLUTIONS = {"10.1": length_controlled_by_hand, "10.2": kept, "10.3": ensemble_reward, "10.4": penalty_fix}
WRONG = {
    "10.1": [("the raw means", lambda: tuple(sum(v for _, v in xs) / 3 for xs in SAMPLES.values())),
             ("one line through all six samples", _pooled_line),
             ("a dict instead of a tuple", lambda: dict(zip("AB", length_controlled_by_hand())))],
    "10.2": [("independent errors", lambda: lambda rho, n: 1 / n),
             ("the correlation alone", lambda: lambda rho, n: rho),
             ("the covariances counted once per pair", lambda: lambda rho, n: (1 + (n - 1) * rho / 2) / n)],
    "10.3": [("over the completions", lambda: lambda s, o, lam: s.mean(1) if o == "mean" else (
                 s.min(1).values if o == "min" else s.mean(1) - lam * s.std(1))),
             ("the penalty added", lambda: lambda s, o, lam: s.mean(0) if o == "mean" else (
                 s.min(0).values if o == "min" else s.mean(0) + lam * s.std(0))),
             ("the variance for the spread", lambda: lambda s, o, lam: s.mean(0) if o == "mean" else (
                 s.min(0).values if o == "min" else s.mean(0) - lam * s.var(0, correction=0)))],
    "10.4": [("the broken function unchanged", lambda: lambda s, lam: s.mean(0) - lam * s.std()),
             ("the penalty added", lambda: lambda s, lam: s.mean(0) + lam * s.std(0)),
             ("std over the completions", lambda: lambda s, lam: s.mean(0) - lam * s.std(1).mean())],
}
