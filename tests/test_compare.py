"""Paired comparisons: per-seed differences, a t interval for their mean, the sign test, and a verdict that is
"better" only when the interval lies on one side of zero."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from utils.compare import compare, compare_to_value, mean_interval, sentence, sign_test, summarize


def table(a_values, b_values, a_seeds=None, b_seeds=None):
    a_seeds = list(range(len(a_values))) if a_seeds is None else a_seeds
    b_seeds = list(range(len(b_values))) if b_seeds is None else b_seeds
    return pd.DataFrame({"model": ["A"] * len(a_values) + ["B"] * len(b_values), "seed": a_seeds + b_seeds,
                         "error": list(a_values) + list(b_values)})


OVERLAPPING = table([0.1, 0.5, 0.3, 0.2], [0.12, 0.52, 0.32, 0.225])


def test_pairing_finds_a_consistent_win_inside_overlapping_ranges():
    # the ranges overlap (0.1-0.5 against 0.12-0.52), but A is lower on every seed by 0.02 to 0.025
    result = compare(OVERLAPPING, "model", "A", "B", "error", higher_is_better=False)
    assert result["verdict"] == "A better" and (result["wins"], result["losses"], result["pairs"]) == (4, 0, 4)
    assert list(result["differences"]) == pytest.approx([-0.02, -0.02, -0.02, -0.025])
    assert result["interval"][1] < 0 and result["p"] == pytest.approx(0.125)
    # the same sizes of difference with more spread between seeds: 3 of 3 wins, yet the interval holds zero
    noisy = compare(table([0.1, 0.5, 0.3], [0.12, 0.53, 0.31]), "model", "A", "B", "error", higher_is_better=False)
    assert noisy["wins"] == 3 and noisy["interval"][0] < 0 < noisy["interval"][1]
    assert noisy["verdict"] == "not resolved with 3 seeds"


def test_differences_that_change_sign_are_not_resolved_and_never_called_equal():
    result = compare(table([0.1, 0.5, 0.3], [0.4, 0.6, 0.2]), "model", "A", "B", "error", higher_is_better=False)
    assert result["verdict"] == "not resolved with 3 seeds" and result["wins"] == 2
    low, high = result["interval"]
    assert low < 0 < high
    same = compare(table([0.5, 0.5], [0.5, 0.5]), "model", "A", "B", "error", higher_is_better=False)
    assert same["verdict"] == "not resolved with 2 seeds" and same["wins"] == same["losses"] == 0


def test_the_direction_of_better_follows_higher_is_better():
    accuracy = table([0.80, 0.82, 0.81, 0.79], [0.90, 0.93, 0.91, 0.92])
    assert compare(accuracy, "model", "A", "B", "error", higher_is_better=True)["verdict"] == "B better"
    assert compare(accuracy, "model", "A", "B", "error", higher_is_better=False)["verdict"] == "A better"


def test_sign_test_and_interval_agree_with_their_definitions():
    assert sign_test(5, 0) == pytest.approx(2 / 32) and sign_test(0, 5) == sign_test(5, 0)
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05])
    expected = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert mean_interval(d) == pytest.approx((expected.low, expected.high))
    assert all(np.isnan(mean_interval([0.1]))) and all(np.isnan(mean_interval([0.1, float("inf")])))


def test_only_paired_runs_count_and_one_run_per_seed_is_required():
    result = compare(table([0.1, 0.2, 0.9], [0.3, 0.4], a_seeds=[0, 1, 7]), "model", "A", "B", "error",
                     higher_is_better=False)
    assert result["pairs"] == 2 and result["mean a"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match=r"several runs with the same seed \[0\]"):
        compare(table([0.1, 0.2], [0.3, 0.4], a_seeds=[0, 0]), "model", "A", "B", "error", higher_is_better=False)
    with pytest.raises(ValueError, match="no runs with model == 'C'"):
        compare(table([1.0], [2.0]), "model", "A", "C", "error", higher_is_better=False)


def test_the_sentence_states_the_numbers_and_the_verdict():
    text = sentence(compare(OVERLAPPING, "model", "A", "B", "error", higher_is_better=False), "error")
    assert "A 0.275 vs B 0.296 (means of 4 paired seeds)" in text
    assert "A - B by seed: -0.02, -0.02, -0.02, -0.025; mean -0.0213, 95% interval -0.0252 to -0.0173" in text
    assert "A better on 4 of 4 (sign test p = 0.12): A better" in text
    one = sentence(compare(table([0.1], [0.2]), "model", "A", "B", "error", higher_is_better=False), "error")
    assert "no interval" in one and "not resolved with 1 seeds" in one


def test_summaries():
    summary = summarize(table([1.0, 3.0], [2.0]), "model", "error")
    assert summary.loc["A"].tolist() == [2, 2.0, 1.0, 2.0, 3.0] and summary.loc["B", "runs"] == 1


def test_seeds_against_one_number_use_the_one_sample_interval_and_say_so():
    values = pd.Series([0.64, 0.61, 0.68, 0.62, 0.63], index=[0, 1, 2, 3, 4])
    result = compare_to_value(values, 0.9, "GRU", "baseline", higher_is_better=False)
    expected = stats.ttest_1samp(values - 0.9, 0).confidence_interval(0.95)
    assert result["interval"] == pytest.approx((expected.low, expected.high))
    assert result["verdict"] == "GRU better" and result["wins"] == 5 and result["mean b"] == pytest.approx(0.9)
    assert "baseline is one number" in sentence(result, "RMSE")
    straddling = compare_to_value(values, 0.636, "GRU", "baseline", higher_is_better=False)
    assert straddling["verdict"] == "not resolved with 5 seeds"
    assert compare_to_value(values, 0.5, "GRU", "baseline", higher_is_better=False)["verdict"] == "baseline better"
    with pytest.raises(ValueError, match="finite"):
        compare_to_value(values, float("nan"), "GRU", "baseline", higher_is_better=False)
    with pytest.raises(ValueError, match="no values"):
        compare_to_value(pd.Series([], dtype=float), 0.9, "GRU", "baseline", higher_is_better=False)
    with pytest.raises(ValueError, match="same seed"):
        compare_to_value(pd.Series([0.6, 0.7], index=[0, 0]), 0.9, "GRU", "baseline", higher_is_better=False)
