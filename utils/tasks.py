"""Synthetic sequence tasks with a known long-range dependency, generated from a seed.

Each task returns a :class:`SequenceTask` with batch-first tensors ``X`` of shape ``(N, T, num_inputs)``
and targets ``y``; models of the course are time-major, which :mod:`utils.sequence_models` handles.
"""
from dataclasses import dataclass

import torch

from utils.shapes import check_counts, check_ints, check_sizes


@dataclass
class SequenceTask:
    """Inputs ``X`` of shape ``(N, T, num_inputs)`` (floats, ``N, T >= 1``), targets ``y`` of shape ``(N,)``
    (``kind='classification'``: int64 class indices in ``[0, num_outputs)``) or ``(N, num_outputs)``
    (``kind='regression'``: floats)."""

    name: str
    X: torch.Tensor
    y: torch.Tensor
    kind: str
    num_outputs: int

    def __post_init__(self):
        if self.kind not in ("classification", "regression"):
            raise ValueError(f"SequenceTask kind must be 'classification' or 'regression', got {self.kind!r}")
        if not isinstance(self.X, torch.Tensor) or self.X.dim() != 3:
            got = tuple(self.X.shape) if isinstance(self.X, torch.Tensor) else type(self.X).__name__
            raise ValueError(f"SequenceTask X must be batch-first (N, T, num_inputs), got {got}")
        if self.X.shape[0] == 0 or self.X.shape[1] == 0:
            raise ValueError(f"SequenceTask {self.name!r} needs at least one example of at least one step, got X of "
                             f"shape {tuple(self.X.shape)}")
        if not self.X.is_floating_point():
            raise TypeError(f"SequenceTask X must hold floats, got {self.X.dtype}: convert it with .float()")
        check_sizes("SequenceTask", num_outputs=self.num_outputs)
        N = self.X.shape[0]
        expected = (N,) if self.kind == "classification" else (N, self.num_outputs)
        if not isinstance(self.y, torch.Tensor) or tuple(self.y.shape) != expected:
            got = tuple(self.y.shape) if isinstance(self.y, torch.Tensor) else type(self.y).__name__
            raise ValueError(f"SequenceTask {self.name!r} ({self.kind}) needs targets y of shape {expected}, "
                             f"got {got}")
        if self.kind == "regression" and not self.y.is_floating_point():
            raise TypeError(f"SequenceTask {self.name!r} (regression) needs float targets y, got {self.y.dtype}: "
                            "convert them with .float()")
        if self.kind == "classification":
            if self.y.dtype != torch.int64:
                raise TypeError(f"SequenceTask {self.name!r} (classification) needs class indices y of dtype "
                                f"torch.int64, got {self.y.dtype}: convert them with .long() if they are whole numbers")
            if self.y.min() < 0 or self.y.max() >= self.num_outputs:
                raise ValueError(f"SequenceTask {self.name!r} has num_outputs={self.num_outputs} classes, so y must "
                                 f"lie in [0, {self.num_outputs}), got classes {self.y.min().item()} to "
                                 f"{self.y.max().item()}")

    @property
    def num_inputs(self) -> int:
        return self.X.shape[-1]

    @property
    def seq_len(self) -> int:
        return self.X.shape[1]

    def split(self, num_train: int) -> tuple["SequenceTask", "SequenceTask"]:
        """The first ``num_train`` examples and the rest, as two tasks."""
        check_ints("SequenceTask.split", num_train=num_train)
        if not 0 < num_train < len(self.X):
            raise ValueError(f"num_train must be in 1..{len(self.X) - 1}, got {num_train}")
        head = SequenceTask(self.name, self.X[:num_train], self.y[:num_train], self.kind, self.num_outputs)
        tail = SequenceTask(self.name, self.X[num_train:], self.y[num_train:], self.kind, self.num_outputs)
        return head, tail


def recall_task(num_samples: int, seq_len: int, position: int = 0, num_symbols: int = 8,
                seed: int = 0) -> SequenceTask:
    """Random one-hot symbols; the target is the symbol seen at step ``position``.

    Every other symbol is noise, so a model must keep one early input for ``seq_len - position`` steps and
    ignore the rest. Chance accuracy is ``1 / num_symbols``.
    """
    check_sizes("recall_task", num_samples=num_samples, seq_len=seq_len, num_symbols=num_symbols)
    check_counts("recall_task", position=position, seed=seed)
    if not 0 <= position < seq_len:
        raise ValueError(f"position must be in 0..{seq_len - 1} for seq_len={seq_len}, got {position}")
    if num_symbols < 2:
        raise ValueError(f"num_symbols must be at least 2, got {num_symbols}")
    generator = torch.Generator().manual_seed(seed)
    symbols = torch.randint(0, num_symbols, (num_samples, seq_len), generator=generator)
    X = torch.nn.functional.one_hot(symbols, num_symbols).float()
    return SequenceTask(f"recall@{position} (T={seq_len})", X, symbols[:, position], "classification", num_symbols)


def adding_problem(num_samples: int, seq_len: int, seed: int = 0) -> SequenceTask:
    """Hochreiter and Schmidhuber's adding problem: each step holds a value from U(0, 1) and a marker;
    exactly two steps are marked, one in each half, and the target is the sum of their values.

    Predicting the mean (1.0) gives a mean squared error of about 1/6; solving it gives near 0.
    """
    check_sizes("adding_problem", num_samples=num_samples, seq_len=seq_len)
    check_counts("adding_problem", seed=seed)
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(num_samples, seq_len, generator=generator)
    half = seq_len // 2
    first = torch.randint(0, half, (num_samples,), generator=generator)
    second = torch.randint(half, seq_len, (num_samples,), generator=generator)
    markers = torch.zeros(num_samples, seq_len)
    rows = torch.arange(num_samples)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = torch.stack([values, markers], dim=-1)
    y = (values[rows, first] + values[rows, second]).unsqueeze(-1)
    return SequenceTask(f"adding (T={seq_len})", X, y, "regression", 1)
