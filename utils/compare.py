"""Comparisons as claims about distributions: several seeds per model, mean and spread, paired wins, and a
verdict that calls a difference inside the spread a tie (the course's rule for every "A beats B")."""
import pandas as pd


def summarize(table: pd.DataFrame, by, value: str) -> pd.DataFrame:
    """Per group of ``by``: how many runs, the mean, min, median and max of ``value``."""
    groups = table.groupby(by, sort=False)[value]
    return pd.DataFrame({"runs": groups.size(), "mean": groups.mean(), "min": groups.min(),
                         "median": groups.median(), "max": groups.max()})


def compare(table: pd.DataFrame, column: str, a, b, value: str, *, higher_is_better: bool,
            pair_by: str = "seed") -> dict:
    """Compare the runs with ``table[column] == a`` and ``== b`` on ``value``, paired by ``pair_by``.

    Returns the means, the ranges, on how many pairs ``a`` is better (``wins``, of ``pairs``), and the
    ``verdict``: ``a`` or ``b`` when the two ranges (min to max over the runs) do not overlap, else
    ``"tie"``: a difference inside the spread of the runs is not a result.
    """
    runs = {name: table[table[column] == name].set_index(pair_by)[value] for name in (a, b)}
    if runs[a].empty or runs[b].empty:
        raise ValueError(f"no runs with {column} == {a!r} or {b!r}; the table has {sorted(table[column].unique())}")
    common = runs[a].index.intersection(runs[b].index)
    better = (runs[a][common] > runs[b][common]) if higher_is_better else (runs[a][common] < runs[b][common])
    low_a, high_a, low_b, high_b = runs[a].min(), runs[a].max(), runs[b].min(), runs[b].max()
    if high_a < low_b or high_b < low_a:
        a_higher = low_a > high_b
        verdict = a if a_higher == higher_is_better else b
    else:
        verdict = "tie"
    return {"a": a, "b": b, "mean a": runs[a].mean(), "mean b": runs[b].mean(), "range a": (low_a, high_a),
            "range b": (low_b, high_b), "wins": int(better.sum()), "pairs": len(common), "verdict": verdict}


def sentence(result: dict, value: str, fmt: str = "{:.3g}") -> str:
    """One line that states a :func:`compare` result with its numbers."""
    f = lambda x: fmt.format(x)  # noqa: E731
    verdict = "a tie (the ranges overlap)" if result["verdict"] == "tie" else f"{result['verdict']} is better"
    return (f"{value}: {result['a']} {f(result['mean a'])} (range {f(result['range a'][0])}-{f(result['range a'][1])}) "
            f"vs {result['b']} {f(result['mean b'])} (range {f(result['range b'][0])}-{f(result['range b'][1])}); "
            f"{result['a']} better on {result['wins']} of {result['pairs']} paired seeds: {verdict}")
