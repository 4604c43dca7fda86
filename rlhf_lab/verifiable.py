"""Measuring rewards a program can check (notebook 09): pass@k and the committed verifier-RL table.

`pass_at_k` is Chen et al.'s (2021) unbiased estimator of the chance that at least one of k samples passes,
from n >= k samples of which c passed; `pass_at_k_curve` averages it over prompts. `load_verifier_table` reads
``python -m benchmarks.verifier_rl``'s table (data/verifier_rl.json); `by_method` summarises it over seeds and
`paired` compares two methods seed by seed.
"""
from __future__ import annotations

import math
import numbers

from rlhf_lab.config import data_dir
from rlhf_lab.evaluation import mean_se
from rlhf_lab.utils.artefacts import ArtefactError, read_json

def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from n samples of which c pass: 1 - C(n - c, k) / C(n, k) (Chen et
    al. 2021, eq. 1), as their stable product 1 - prod_{i = n - c + 1}^{n} (1 - k / i), which never forms
    the huge binomials. Needs 0 <= c <= n and 1 <= k <= n."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):   # numpy and torch ints too
            raise TypeError(f"pass_at_k: {name} must be an integer, got {value!r}")
    n, c, k = int(n), int(c), int(k)
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:                      # every k-subset holds a passing sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_curve(passes, ks) -> dict[int, float]:
    """Mean pass@k over prompts for each k, from ``passes`` (P, N): which of N samples of each of P prompts pass."""
    rows = [[bool(x) for x in row] for row in passes]
    n = len(rows[0]) if rows else 0
    if not rows or any(len(r) != n for r in rows):
        raise ValueError("passes must be a non-empty (prompts, samples) table with the same number of samples per prompt")
    return {k: sum(pass_at_k(n, sum(r), k) for r in rows) / len(rows) for k in ks}


def load_verifier_table(path=None) -> dict:
    """The committed comparison of notebook 09 (default data/verifier_rl.json): {"runs": [one per seed: {"seed",
    "sft", "grpo", "grpo_kl", "rft", "rft_random", "grpo_rm": held-out readings, "curves", "seconds"}], "meta"}."""
    path = data_dir() / "verifier_rl.json" if path is None else path
    hint = "Rebuild it with `python -m benchmarks.verifier_rl` (about 15 minutes on 2 cores)."
    table = read_json(path, what="verifier-RL table", hint=hint)
    if not isinstance(table, dict) or not table.get("runs") or "meta" not in table:
        raise ArtefactError(f"{path} has no runs or no meta: it is not a verifier-RL table. {hint}")
    return table


def by_method(table: dict, method: str, key: str, k: int | None = None) -> tuple[float, float]:
    """Mean and standard error over seeds of one reading of ``method``: ``key`` ("gold", "gold_passing", "kl",
    "length", ...), a constraint's rate (key "checks/rating"), or pass@k when ``k`` is given."""
    values = []
    for run in table["runs"]:
        reading = run[method]
        if k is not None:
            values.append(reading["pass_at_k"][str(k)])
        elif key.startswith("checks/"):
            values.append(reading["checks"][key.split("/", 1)[1]])
        else:
            values.append(float("nan") if reading[key] is None else reading[key])   # None: no completion passed
    return mean_se(values)


def paired(table: dict, a: str, b: str, key: str, k: int | None = None) -> tuple[float, float, int]:
    """``a`` minus ``b``, seed by seed (every method of a seed starts from the same model, so their differences are
    paired): (mean difference, its standard error over seeds, the number of seeds in which ``a`` is higher)."""
    def value(reading):
        if k is not None:
            return reading["pass_at_k"][str(k)]
        if key.startswith("checks/"):
            return reading["checks"][key.split("/", 1)[1]]
        return float("nan") if reading[key] is None else reading[key]
    diffs = [value(r[a]) - value(r[b]) for r in table["runs"]]
    mean, se = mean_se(diffs)
    return mean, se, sum(d > 0 for d in diffs)
