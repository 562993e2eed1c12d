"""Forecasting a univariate series without peeking at the future: time-ordered splits, windows, scaling fit
on the training part, recursive multi-step forecasts and the baselines a forecaster must beat.

Conventions: a series is a 1-D float array ``y`` of length ``n`` with no missing values. A forecast made at
*origin* ``o`` uses ``y[: o + 1]`` only and predicts ``y[o + 1], ..., y[o + horizon]``; forecasts for many
origins are arrays of shape ``(N, horizon)``. A one-step model maps windows of shape ``(N, window)`` (the
last ``window`` values, oldest first) to next values of shape ``(N,)``.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from utils.shapes import check_finite_numbers, check_ints, check_positive_numbers, check_tensor_like

PARTS = ("train", "val", "test")


def as_series(values) -> np.ndarray:
    """``values`` as a 1-D float64 array; missing or infinite values are an error (fill them first)."""
    series = np.asarray(values, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"a series must be 1-D, got shape {series.shape}")
    bad = np.flatnonzero(~np.isfinite(series))
    if bad.size:
        raise ValueError(f"the series has {bad.size} missing or infinite values (first at index {bad[0]}); "
                         "fill or drop them explicitly before forecasting")
    return series


@dataclass(frozen=True)
class TimeSplit:
    """Contiguous parts in time order: train ``[0, train_end)``, val ``[train_end, val_end)``,
    test ``[val_end, length)``."""

    train_end: int
    val_end: int
    length: int

    def __post_init__(self):
        check_ints("TimeSplit", train_end=self.train_end, val_end=self.val_end, length=self.length)
        if not 0 < self.train_end < self.val_end < self.length:
            raise ValueError(f"TimeSplit needs 0 < train_end < val_end < length (three non-empty parts in time "
                             f"order), got train_end={self.train_end}, val_end={self.val_end}, length={self.length}")

    def bounds(self, part: str) -> tuple[int, int]:
        """``(start, stop)`` of ``part`` ('train', 'val' or 'test')."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        return {"train": (0, self.train_end), "val": (self.train_end, self.val_end),
                "test": (self.val_end, self.length)}[part]

    def part(self, series, part: str) -> np.ndarray:
        """The values of ``series`` in ``part``."""
        series = as_series(series)
        if len(series) != self.length:
            raise ValueError(f"this split is for a series of length {self.length}, got {len(series)}")
        start, stop = self.bounds(part)
        return series[start:stop]


def time_split(length: int, num_val: int, num_test: int) -> TimeSplit:
    """The last ``num_test`` steps for testing, the ``num_val`` before them for validation, the rest for
    training; no shuffling, so every validation and test time comes after every training time."""
    check_ints("time_split", length=length, num_val=num_val, num_test=num_test)
    if min(num_val, num_test) < 1 or length - num_val - num_test < 1:
        raise ValueError(f"need num_val >= 1, num_test >= 1 and a non-empty training part; got length={length}, "
                         f"num_val={num_val}, num_test={num_test}")
    return TimeSplit(length - num_val - num_test, length - num_test, length)


@dataclass(frozen=True)
class Standardizer:
    """``(y - mean) / std`` with ``mean`` and ``std`` of the values it was fit on (the training part)."""

    mean: float
    std: float

    def __post_init__(self):
        check_finite_numbers("Standardizer", mean=self.mean)
        check_positive_numbers("Standardizer", std=self.std)

    @classmethod
    def fit(cls, train_values) -> "Standardizer":
        values = as_series(train_values)
        if len(values) < 2 or values.std() == 0:
            raise ValueError(f"cannot fit a scale on {len(values)} values with standard deviation "
                             f"{values.std() if len(values) else float('nan')}: need at least 2 distinct values")
        return cls(float(values.mean()), float(values.std()))

    def transform(self, values) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def inverse(self, values) -> np.ndarray:
        """Back to the original units (works on arrays of any shape, e.g. forecasts ``(N, horizon)``)."""
        return np.asarray(values, dtype=np.float64) * self.std + self.mean


def windows(series, window: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``X`` of shape ``(N, window)`` and next values ``y`` of shape ``(N,)`` for every target time
    ``t`` in ``[max(start, window), stop)``: ``X[i] = series[t - window : t]``, ``y[i] = series[t]``.

    Targets lie in ``[start, stop)``; inputs may reach back before ``start`` (the known past), never after
    ``t``. Training windows use ``(0, train_end)``, so nothing of the validation or test part enters.
    """
    series = as_series(series)
    check_ints("windows", window=window, start=start, stop=stop)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if not 0 <= start < stop <= len(series):
        raise ValueError(f"need 0 <= start < stop <= {len(series)}, got start={start}, stop={stop}")
    targets = np.arange(max(start, window), stop)
    if targets.size == 0:
        raise ValueError(f"no target in [{start}, {stop}) has {window} values before it")
    X = np.stack([series[t - window:t] for t in targets])
    return X, series[targets]


def forecast_origins(split: TimeSplit, part: str, horizon: int) -> np.ndarray:
    """Every origin ``o`` whose targets ``o + 1 .. o + horizon`` all lie in ``part``."""
    check_ints("forecast_origins", horizon=horizon)
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    start, stop = split.bounds(part)
    origins = np.arange(start - 1, stop - horizon)
    if origins.size == 0 or origins[0] < 0:
        raise ValueError(f"the {part} part [{start}, {stop}) has no origin with {horizon} targets inside it "
                         "and at least one observed value before them")
    return origins


def _check_origins(series, origins, horizon, first_origin):
    series = as_series(series)
    given = np.asarray(origins)
    if given.dtype == bool:
        raise TypeError("origins must be integer indices, got a boolean mask; pass np.flatnonzero(mask)")
    if given.size and not np.issubdtype(given.dtype, np.integer):
        raise TypeError(f"origins must be integer indices, got values of dtype {given.dtype} "
                        f"(first: {given.flat[0].item()!r})")
    origins = given.astype(np.int64)
    if origins.ndim != 1 or origins.size == 0:
        raise ValueError(f"origins must be a non-empty 1-D array of indices, got shape {origins.shape}")
    check_ints("the forecast", horizon=horizon)
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if origins.min() < first_origin or origins.max() >= len(series):
        raise ValueError(f"origins must lie in [{first_origin}, {len(series) - 1}] for this method and a series "
                         f"of length {len(series)}, got [{origins.min()}, {origins.max()}]")
    return series, origins


def targets(series, origins, horizon: int) -> np.ndarray:
    """The true values ``series[o + 1 .. o + horizon]`` for every origin: shape ``(N, horizon)``."""
    series, origins = _check_origins(series, origins, horizon, 0)
    if origins.max() + horizon >= len(series):
        raise ValueError(f"origin {origins.max()} + horizon {horizon} runs past the end of the series "
                         f"(length {len(series)})")
    return series[origins[:, None] + np.arange(1, horizon + 1)]


def last_value_forecast(series, origins, horizon: int) -> np.ndarray:
    """The naive forecast: every future value equals ``series[o]``. Shape ``(N, horizon)``."""
    series, origins = _check_origins(series, origins, horizon, 0)
    return np.repeat(series[origins][:, None], horizon, axis=1)


def seasonal_naive_forecast(series, origins, horizon: int, period: int) -> np.ndarray:
    """Each future value equals the last observed value of the same season:
    ``y^[o + h] = series[o + h - period * ceil(h / period)]``. Shape ``(N, horizon)``."""
    check_ints("seasonal_naive_forecast", period=period)
    if period < 1:
        raise ValueError(f"period must be at least 1, got {period}")
    series, origins = _check_origins(series, origins, horizon, period - 1)
    steps = np.arange(1, horizon + 1)
    back = period * np.ceil(steps / period).astype(np.int64)
    return series[origins[:, None] + steps - back]


def seasonal_naive_drift_forecast(series, origins, horizon: int, period: int) -> np.ndarray:
    """Seasonal naive plus the trend: the same season's last observed value, raised by the average change per
    step over the whole observed history, ``d = (y[o] - y[0]) / o``, times the steps between them:
    ``y^[o + h] = series[o + h - period * k] + period * k * d`` with ``k = ceil(h / period)``. Shape
    ``(N, horizon)``."""
    seasonal = seasonal_naive_forecast(series, origins, horizon, period)
    series, origins = _check_origins(series, origins, horizon, max(period - 1, 1))
    drift = (series[origins] - series[0]) / origins  # (N,): average change per step up to each origin
    back = period * np.ceil(np.arange(1, horizon + 1) / period)
    return seasonal + drift[:, None] * back


class LinearAR:
    """Linear autoregression ``y[t] = c + a_1 y[t-order] + ... + a_order y[t-1]``, fit by least squares.

    ``coef`` has shape ``(order,)`` and matches the windows' order (oldest first); ``intercept`` is ``c``.
    """

    def __init__(self, order: int):
        check_ints("LinearAR", order=order)
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        self.order = order
        self.coef = None
        self.intercept = None

    def fit(self, X, y) -> "LinearAR":
        """``X`` of shape ``(N, order)``, ``y`` of shape ``(N,)`` (from :func:`windows` on the training part)."""
        X = self._check(X)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (X.shape[0],):
            raise ValueError(f"LinearAR.fit expects y of shape ({X.shape[0]},), got {y.shape}")
        _check_finite("LinearAR.fit", "y", y)
        if X.shape[0] <= self.order:
            raise ValueError(f"LinearAR({self.order}) needs more than {self.order} windows, got {X.shape[0]}")
        solution, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)
        self.coef, self.intercept = solution[:-1], float(solution[-1])
        return self

    def predict_next(self, X) -> np.ndarray:
        """Next values of shape ``(N,)`` for windows ``X`` of shape ``(N, order)``."""
        if self.coef is None:
            raise ValueError("LinearAR.predict_next called before fit")
        return self._check(X) @ self.coef + self.intercept

    def _check(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.order:
            raise ValueError(f"LinearAR({self.order}) expects windows of shape (N, {self.order}), got {X.shape}")
        _check_finite(f"LinearAR({self.order})", "windows", X)
        return X


def _check_finite(name: str, label: str, values: np.ndarray) -> None:
    """NaN or inf in ``values`` is an error: least squares would give NaN coefficients or fail to converge."""
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{name} expects finite {label}, got {len(bad)} missing or infinite values (first at index "
                         f"{tuple(int(i) for i in bad[0])}); fill or drop them first")


def recursive_forecast(predict_next, series, origins, window: int, horizon: int) -> np.ndarray:
    """Multi-step forecasts from a one-step model: predict ``o + 1`` from ``series[o - window + 1 : o + 1]``,
    append the prediction to the window, predict ``o + 2``, and so on. Shape ``(N, horizon)``.

    ``predict_next`` maps windows ``(N, window)`` to next values ``(N,)``; only values up to each origin
    are read, so later errors feed on earlier predictions exactly as in real use.
    """
    check_ints("recursive_forecast", window=window)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    series, origins = _check_origins(series, origins, horizon, window - 1)
    context = series[origins[:, None] + np.arange(-window + 1, 1)]
    forecasts = np.empty((len(origins), horizon))
    for h in range(horizon):
        step = np.asarray(predict_next(context), dtype=np.float64)
        if step.shape != (len(origins),):
            raise ValueError(f"predict_next must return shape ({len(origins)},) for windows of shape "
                             f"{context.shape}, got {step.shape}")
        forecasts[:, h] = step
        context = np.column_stack([context[:, 1:], step])
    return forecasts


def rmse_by_horizon(forecasts, truth) -> np.ndarray:
    """Root mean squared error for each step ahead: ``(N, horizon)`` arrays -> ``(horizon,)``."""
    forecasts, truth = np.asarray(forecasts, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if forecasts.shape != truth.shape or forecasts.ndim != 2:
        raise ValueError(f"forecasts and truth must both have shape (N, horizon), got {forecasts.shape} "
                         f"and {truth.shape}")
    return np.sqrt(((forecasts - truth) ** 2).mean(axis=0))


class ChangeFromLast(nn.Module):
    """Wraps a one-step model so that it predicts the change from the last observed value.

    ``forward(X)`` with ``X`` of shape ``(B, T, 1)`` returns ``X[:, -1] + model(X - X[:, -1:])`` of shape
    ``(B, 1)``: the inner model sees the window shifted so that its last value is 0, so a level it never
    met in training (a trend leaving the training range) looks like one it did.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, X):
        if not isinstance(X, torch.Tensor) or X.dim() != 3 or X.shape[-1] != 1:
            got = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
            raise ValueError(f"ChangeFromLast expects windows of shape (B, T, 1), got {got}")
        if X.shape[1] == 0:
            raise ValueError("ChangeFromLast got empty windows (T = 0): there is no last value to start from")
        check_tensor_like("ChangeFromLast", "the windows X", X, next(self.model.parameters(), None))
        last = X[:, -1]
        return last + self.model(X - last[:, None])


def torch_predictor(model: nn.Module):
    """``predict_next`` for :func:`recursive_forecast` from a torch model that maps ``(B, T, 1)`` windows to
    ``(B, 1)``: takes and returns NumPy arrays, runs in eval mode without gradients."""

    parameter = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    if parameter is None:
        raise TypeError(f"torch_predictor expects a torch model with parameters (their dtype sets the inputs'), "
                        f"got {type(model).__name__}, which has none")
    dtype = parameter.dtype

    @torch.no_grad()
    def predict_next(X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] == 0:
            raise ValueError(f"predict_next expects windows of shape (N, window) with window >= 1, got {X.shape}; "
                             "a single window w goes in as w[None]")
        was_training = model.training
        model.eval()
        out = model(torch.as_tensor(X, dtype=dtype)[..., None])
        model.train(was_training)
        if tuple(out.shape) != (X.shape[0], 1):
            raise ValueError(f"the model must map windows (B, T, 1) to (B, 1), got {tuple(out.shape)} for "
                             f"{X.shape[0]} windows")
        return out[:, 0].double().numpy()

    return predict_next
