"""Comparisons: means, spreads, paired wins, and ties when the spreads overlap."""
import pandas as pd
import pytest

from utils.compare import compare, sentence, summarize


def table(a_values, b_values):
    return pd.DataFrame({"model": ["A"] * len(a_values) + ["B"] * len(b_values),
                         "seed": list(range(len(a_values))) + list(range(len(b_values))),
                         "error": list(a_values) + list(b_values)})


def test_separate_ranges_give_a_winner_and_overlapping_ones_a_tie():
    clear = compare(table([0.1, 0.2, 0.15], [0.5, 0.6, 0.4]), "model", "A", "B", "error", higher_is_better=False)
    assert clear["verdict"] == "A" and clear["wins"] == 3 and clear["pairs"] == 3
    assert clear["mean a"] == pytest.approx(0.15) and clear["range b"] == (0.4, 0.6)
    close = compare(table([0.1, 0.5, 0.3], [0.4, 0.6, 0.2]), "model", "A", "B", "error", higher_is_better=False)
    assert close["verdict"] == "tie" and close["wins"] == 2
    higher = compare(table([0.9, 0.8], [0.5, 0.6]), "model", "A", "B", "error", higher_is_better=True)
    assert higher["verdict"] == "A"
    assert "A better on 3 of 3 paired seeds: A is better" in sentence(clear, "error")
    assert "a tie (the ranges overlap)" in sentence(close, "error")


def test_summaries_and_missing_models():
    summary = summarize(table([1.0, 3.0], [2.0]), "model", "error")
    assert summary.loc["A"].tolist() == [2, 2.0, 1.0, 2.0, 3.0] and summary.loc["B", "runs"] == 1
    with pytest.raises(ValueError, match="no runs with model == 'A' or 'C'"):
        compare(table([1.0], [2.0]), "model", "A", "C", "error", higher_is_better=False)
