"""Comparisons as claims about distributions: several seeds per model, paired by seed. Per seed, the
difference between the two models; over the seeds, the mean difference with a t interval and the sign test's
count of wins. The verdict is "A better", "B better" or "not resolved with n seeds": never "equal", because
failing to find a difference with a few seeds is not evidence that there is none. A deterministic baseline (one
number, no seeds) is compared with each seed's value the same way (:func:`compare_to_value`)."""
import math

import numpy as np
import pandas as pd
from scipy import stats


def summarize(table: pd.DataFrame, by, value: str) -> pd.DataFrame:
    """Per group of ``by``: how many runs, the mean, min, median and max of ``value``."""
    groups = table.groupby(by, sort=False)[value]
    return pd.DataFrame({"runs": groups.size(), "mean": groups.mean(), "min": groups.min(),
                         "median": groups.median(), "max": groups.max()})


def sign_test(wins: int, losses: int) -> float:
    """Two-sided p of the exact sign test: how often a fair coin gives a split at least this uneven."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mean_interval(differences, confidence: float = 0.95) -> tuple[float, float]:
    """The t interval for the mean of ``differences`` (NaN with fewer than 2 or any non-finite value)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or not np.isfinite(d).all():
        return math.nan, math.nan
    half = stats.t.ppf((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def compare(table: pd.DataFrame, column: str, a, b, value: str, *, higher_is_better: bool,
            pair_by: str = "seed", confidence: float = 0.95) -> dict:
    """Compare the runs with ``table[column] == a`` and ``== b`` on ``value``, paired by ``pair_by``.

    Returns the means over the pairs, the per-pair ``differences`` (a - b, indexed by ``pair_by``), their
    mean and ``interval`` (a t interval at ``confidence``), ``wins`` of a out of ``pairs`` with the sign
    test's ``p``, and the ``verdict``: ``"{a} better"`` or ``"{b} better"`` when the interval lies wholly on
    one side of zero, else ``"not resolved with {pairs} seeds"``. Runs without a partner are left out.
    """
    runs = {}
    for name in (a, b):
        rows = table[table[column] == name]
        if rows.empty:
            raise ValueError(f"no runs with {column} == {name!r}; the table has {sorted(table[column].unique())}")
        if rows[pair_by].duplicated().any():
            raise ValueError(f"{column} == {name!r} has several runs with the same {pair_by} "
                             f"{sorted(rows[pair_by][rows[pair_by].duplicated()].unique().tolist())}: select one run per "
                             f"{pair_by} (e.g. one learning rate) before comparing")
        runs[name] = rows.set_index(pair_by)[value]
    common = runs[a].index.intersection(runs[b].index)
    return _judge(a, b, runs[a][common], runs[b][common], higher_is_better, confidence)


def compare_to_value(values: pd.Series, reference: float, a: str, b: str, *, higher_is_better: bool,
                     confidence: float = 0.95) -> dict:
    """Compare runs of ``a`` (``values``, one per seed, indexed by seed) with one number ``reference`` of ``b``
    (a deterministic baseline: no seed to pair with). Same result as :func:`compare`, with the differences
    ``values - reference`` and ``"mean b"`` the reference itself."""
    values = pd.Series(values, dtype=float)
    if values.empty:
        raise ValueError(f"no values of {a!r} to compare with {b!r}")
    if values.index.duplicated().any():
        raise ValueError(f"{a!r} has several runs with the same seed: give one value per seed")
    if not np.isfinite(reference):
        raise ValueError(f"the reference of {b!r} must be a finite number, got {reference!r}")
    return {**_judge(a, b, values, pd.Series(float(reference), index=values.index), higher_is_better, confidence),
            "reference": True}


def _judge(a, b, values_a: pd.Series, values_b: pd.Series, higher_is_better: bool, confidence: float) -> dict:
    differences = values_a - values_b
    sign = 1 if higher_is_better else -1
    wins, losses = int((sign * differences > 0).sum()), int((sign * differences < 0).sum())
    low, high = mean_interval(differences, confidence)
    if sign * low > 0 and sign * high > 0:
        verdict = f"{a} better"
    elif sign * low < 0 and sign * high < 0:
        verdict = f"{b} better"
    else:
        verdict = f"not resolved with {len(differences)} seeds"
    return {"a": a, "b": b, "mean a": values_a.mean(), "mean b": values_b.mean(), "differences": differences,
            "mean difference": differences.mean(), "interval": (low, high), "confidence": confidence, "wins": wins,
            "losses": losses, "pairs": len(differences), "p": sign_test(wins, losses), "verdict": verdict,
            "reference": False}


def sentence(result: dict, value: str, fmt: str = "{:.3g}") -> str:
    """Two lines that state a :func:`compare` (or :func:`compare_to_value`) result with its numbers: the
    means, the per-seed differences, the interval of their mean, the wins with the sign test's p, the verdict."""
    f = lambda x: fmt.format(x)  # noqa: E731
    signed = lambda x: ("+" if x > 0 else "") + f(x)  # noqa: E731
    a, b, n = result["a"], result["b"], result["pairs"]
    low, high = result["interval"]
    interval = "no interval" if math.isnan(low) else (
        f"{result['confidence']:.0%} interval {signed(low)} to {signed(high)}")
    seeds = f"mean of {n} seeds; {b} is one number" if result["reference"] else f"means of {n} paired seeds"
    return (f"{value}: {a} {f(result['mean a'])} vs {b} {f(result['mean b'])} ({seeds})\n"
            f"  {a} - {b} by seed: {', '.join(signed(d) for d in result['differences'])}; mean "
            f"{signed(result['mean difference'])}, {interval}; {a} better on {result['wins']} of {n} "
            f"(sign test p = {result['p']:.2g}): {result['verdict']}")
