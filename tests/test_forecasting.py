import numpy as np
import pytest
import torch
from torch import nn

from utils.forecasting import (ChangeFromLast, LinearAR, Standardizer, TimeSplit, forecast_origins,
                               last_value_forecast, recursive_forecast, rmse_by_horizon,
                               seasonal_naive_forecast, targets, time_split, torch_predictor, windows)
from utils.sequence_models import LastStepModel

SERIES = np.arange(10, dtype=float) * 10  # 0, 10, ..., 90: value = 10 * index


def test_time_split_is_contiguous_and_in_order():
    split = time_split(10, num_val=2, num_test=3)
    assert split == TimeSplit(5, 7, 10)
    parts = [split.part(SERIES, p) for p in ("train", "val", "test")]
    assert [list(p // 10) for p in parts] == [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]


def test_training_windows_never_touch_later_parts():
    split = time_split(10, num_val=2, num_test=3)
    X, y = windows(SERIES, 3, *split.bounds("train"))
    assert X.max() < 10 * split.train_end and y.max() < 10 * split.train_end
    assert np.array_equal(y, [30, 40]) and np.array_equal(X, [[0, 10, 20], [10, 20, 30]])


def test_test_windows_target_only_the_test_part_and_look_back_into_the_past():
    split = time_split(10, num_val=2, num_test=3)
    X, y = windows(SERIES, 3, *split.bounds("test"))
    assert np.array_equal(y, [70, 80, 90])
    assert np.array_equal(X[0], [40, 50, 60])  # inputs before the test part are known at forecast time
    assert np.all(X < y[:, None])  # every input comes before its target


def test_scaler_is_fit_on_the_training_part_only():
    split = time_split(10, num_val=2, num_test=3)
    scaler = Standardizer.fit(split.part(SERIES, "train"))
    assert scaler.mean == pytest.approx(20.0) and scaler.std == pytest.approx(np.std([0, 10, 20, 30, 40]))
    changed = SERIES.copy()
    changed[split.train_end:] = 1e6  # the future changes; the scale must not
    assert Standardizer.fit(split.part(changed, "train")) == scaler
    assert np.allclose(scaler.inverse(scaler.transform(SERIES)), SERIES)
    assert np.allclose(scaler.transform(split.part(SERIES, "train")).mean(), 0)


def test_origins_put_every_target_inside_the_part():
    split = time_split(10, num_val=2, num_test=3)
    origins = forecast_origins(split, "test", horizon=2)
    assert list(origins) == [6, 7]
    assert targets(SERIES, origins, 2).tolist() == [[70, 80], [80, 90]]


def test_last_value_and_seasonal_naive_on_a_hand_made_series():
    series = np.array([1, 2, 3, 4, 11, 12, 13, 14, 21, 22], dtype=float)  # period 4
    assert last_value_forecast(series, [5], 3).tolist() == [[12, 12, 12]]
    # origin 5: targets 6..11 take the values at 2, 3, 4, 5 (one period back), then 2, 3 again (h = 5, 6:
    # two periods back, since 6 and 7 are not observed at the origin).
    assert seasonal_naive_forecast(series, [5], 6, period=4).tolist() == [[3, 4, 11, 12, 3, 4]]
    assert seasonal_naive_forecast(series, [3, 4], 1, period=4).tolist() == [[1], [2]]


def test_linear_ar_recovers_a_noiseless_ar2_and_forecasts_it_exactly():
    series = [1.0, 0.5]
    for _ in range(40):
        series.append(0.3 + 0.6 * series[-1] - 0.2 * series[-2])
    series = np.array(series)
    X, y = windows(series, 2, 0, 30)
    ar = LinearAR(2).fit(X, y)
    assert np.allclose(ar.coef, [-0.2, 0.6]) and ar.intercept == pytest.approx(0.3)
    origins = np.array([30, 33])
    forecast = recursive_forecast(ar.predict_next, series, origins, window=2, horizon=5)
    assert np.allclose(forecast, targets(series, origins, 5))


def test_recursive_forecast_reads_nothing_after_the_origin():
    series = np.arange(20, dtype=float)

    def mean_of_window(X):
        return X.mean(axis=1)

    future_changed = series.copy()
    future_changed[11:] = -100
    a = recursive_forecast(mean_of_window, series, [10], window=3, horizon=4)
    b = recursive_forecast(mean_of_window, future_changed, [10], window=3, horizon=4)
    assert np.array_equal(a, b)
    # by hand: window (8, 9, 10) -> 9, then (9, 10, 9) -> 9.333, then (10, 9, 9.333) -> 9.444 ...
    assert np.allclose(a[0, :3], [9, 28 / 3, (10 + 9 + 28 / 3) / 3])


def test_rmse_by_horizon():
    truth = np.zeros((2, 3))
    forecasts = np.array([[1.0, 0, 3], [1.0, 2, -4]])
    assert np.allclose(rmse_by_horizon(forecasts, truth), [1, np.sqrt(2), np.sqrt(12.5)])


def test_change_from_last_and_torch_predictor():
    torch.manual_seed(0)
    inner = LastStepModel(nn.GRU(1, 4), 4, 1)
    model = ChangeFromLast(inner)
    X = torch.randn(3, 5, 1)
    shifted = X + 7.0  # a level never seen: the predicted change is the same
    assert torch.allclose(model(shifted) - shifted[:, -1], model(X) - X[:, -1], atol=1e-5)
    predict = torch_predictor(model)
    assert np.allclose(predict(X[..., 0].numpy()), model(X)[:, 0].detach().numpy(), atol=1e-6)
    assert model.training  # the predictor restores the training mode


@pytest.mark.parametrize("call, message", [
    (lambda: time_split(10, 0, 3), "num_val >= 1"),
    (lambda: time_split(5, 2, 3), "non-empty training part"),
    (lambda: TimeSplit(5, 7, 10).bounds("dev"), "part must be one of"),
    (lambda: TimeSplit(5, 7, 10).part(np.zeros(9), "train"), "length 10, got 9"),
    (lambda: windows(np.array([1.0, np.nan, 3.0]), 1, 0, 3), "1 missing or infinite values"),
    (lambda: windows(np.zeros((3, 2)), 1, 0, 3), r"must be 1-D, got shape \(3, 2\)"),
    (lambda: windows(SERIES, 0, 0, 5), "window must be at least 1"),
    (lambda: windows(SERIES, 2, 5, 11), "start < stop <= 10"),
    (lambda: windows(SERIES, 6, 0, 5), "no target in"),
    (lambda: Standardizer.fit(np.ones(4)), "standard deviation"),
    (lambda: forecast_origins(TimeSplit(5, 7, 10), "val", 3), "no origin with 3 targets"),
    (lambda: forecast_origins(TimeSplit(5, 7, 10), "test", 0), "horizon must be at least 1"),
    (lambda: targets(SERIES, [8], 2), "runs past the end"),
    (lambda: last_value_forecast(SERIES, [10], 1), r"origins must lie in \[0, 9\]"),
    (lambda: seasonal_naive_forecast(SERIES, [2], 1, period=4), r"origins must lie in \[3, 9\]"),
    (lambda: seasonal_naive_forecast(SERIES, [5], 1, period=0), "period must be at least 1"),
    (lambda: recursive_forecast(lambda X: X.mean(1), SERIES, [1], window=3, horizon=1), r"in \[2, 9\]"),
    (lambda: recursive_forecast(lambda X: X, SERIES, [5], window=3, horizon=1), r"must return shape \(1,\)"),
    (lambda: LinearAR(0), "order must be at least 1"),
    (lambda: LinearAR(2).predict_next(np.zeros((1, 2))), "before fit"),
    (lambda: LinearAR(2).fit(np.zeros((5, 3)), np.zeros(5)), r"windows of shape \(N, 2\), got \(5, 3\)"),
    (lambda: LinearAR(2).fit(np.zeros((5, 2)), np.zeros(4)), r"y of shape \(5,\)"),
    (lambda: LinearAR(2).fit(np.zeros((2, 2)), np.zeros(2)), "more than 2 windows"),
    (lambda: rmse_by_horizon(np.zeros((2, 3)), np.zeros((3, 2))), "same shape|both have shape"),
    (lambda: ChangeFromLast(nn.Identity())(torch.zeros(2, 3)), r"\(B, T, 1\), got \(2, 3\)"),
    (lambda: torch_predictor(nn.Linear(1, 1))(np.zeros((2, 3))), r"to \(B, 1\), got \(2, 3, 1\)"),
])
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_seasonal_naive_with_drift_adds_the_trend_of_the_observed_history():
    from utils.forecasting import seasonal_naive_drift_forecast
    months = np.arange(48)
    series = 2.0 * months + 10 * np.sin(2 * np.pi * months / 12)  # a linear trend plus a yearly season
    origins = np.array([24, 30])
    forecast = seasonal_naive_drift_forecast(series, origins, 18, 12)
    truth = 2.0 * (origins[:, None] + np.arange(1, 19)) + 10 * np.sin(2 * np.pi * (origins[:, None] + np.arange(1, 19)) / 12)
    np.testing.assert_allclose(forecast, truth, atol=1e-9)  # exact for trend + season
    with pytest.raises(ValueError, match="origins must lie in"):
        seasonal_naive_drift_forecast(series, np.array([5]), 3, 12)
