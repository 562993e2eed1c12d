"""d2l's GRU exercise 1: the gate values that make ``H_t`` depend on the input at step ``t'`` only.

In d2l's convention ``H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t`` with
``H~_t = tanh(X_t W_xh + (R_t * H_{t-1}) W_hh + b_h)``. Steps are counted from 0 here, as in the code.

- :func:`ideal_gate_schedule`: the schedule, with masks marking the entries whose value does not matter;
- :func:`perturbation_effects`: the check, how much each output moves when one input is perturbed;
- :func:`marked_recall_task`: a task whose target is the symbol at ``t'``, for a GRU to learn the schedule.
"""
import math
from numbers import Real
from typing import NamedTuple

import torch

from utils.gru import GRUScratch
from utils.shapes import check_ints
from utils.tasks import SequenceTask, recall_task


class GateSchedule(NamedTuple):
    """Forced gate values ``Z`` and ``R`` of shape ``(T, 1, 1)`` (they broadcast to ``(T, B, h)``), and
    boolean masks of the same shape: True where the value does not affect any ``H_t`` with ``t >= t'``."""

    Z: torch.Tensor
    R: torch.Tensor
    Z_free: torch.Tensor
    R_free: torch.Tensor

    def filled(self, values_Z: torch.Tensor, values_R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Z, R)`` with every free entry replaced by the given values: numbers, or tensors of shape
        ``(T, B, h)`` (or ``(T, 1, 1)``, ...: one entry per step, broadcast over the batch and the units)."""
        T = self.Z.shape[0]
        for label, values in (("values_Z", values_Z), ("values_R", values_R)):
            number = isinstance(values, Real) and not isinstance(values, bool)
            per_step = isinstance(values, torch.Tensor) and values.dim() == 3 and values.shape[0] == T
            if not (number or per_step):
                got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
                raise ValueError(f"filled expects {label} to be a number or a tensor of shape ({T}, B, h), one entry "
                                 f"per step, got {got}")
        return torch.where(self.Z_free, values_Z, self.Z), torch.where(self.R_free, values_R, self.R)


def _check_steps(seq_len, t_prime):
    for name, value in (("seq_len", seq_len), ("t_prime", t_prime)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2 (an output after t'), got {seq_len}")
    if not 0 <= t_prime < seq_len - 1:
        raise ValueError(f"t_prime must be in 0..{seq_len - 2} so that a later step exists "
                         f"(seq_len={seq_len}), got {t_prime}")


def ideal_gate_schedule(seq_len: int, t_prime: int, dtype=torch.float64) -> GateSchedule:
    """The best gates for predicting every ``H_t`` with ``t > t'`` from ``x_{t'}`` alone.

    - at ``t'``: ``Z = 0`` (take the candidate) and ``R = 0`` (the candidate ignores ``H_{t'-1}``), so
      ``H_{t'} = tanh(x_{t'} W_xh + b_h)`` is a function of ``x_{t'}`` only;
    - after ``t'``: ``Z = 1`` (keep the state), so ``H_t = H_{t'}``; ``R`` is free (the candidate is
      discarded);
    - before ``t'``: both free (whatever the state holds is reset and overwritten at ``t'``).

    Free entries hold 0.5 in ``Z`` and ``R``; replace them with :meth:`GateSchedule.filled`. ``dtype`` must be
    that of the GRU the gates are forced on (chapter 05's GRUs are float64).
    """
    _check_steps(seq_len, t_prime)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"ideal_gate_schedule expects a floating-point dtype (gate values, 0.5 where free), got "
                        f"{dtype}; use the dtype of the GRU the gates are forced on, e.g. torch.float32")
    steps = torch.arange(seq_len).reshape(seq_len, 1, 1)
    before, at, after = steps < t_prime, steps == t_prime, steps > t_prime
    half = torch.full((seq_len, 1, 1), 0.5, dtype=dtype)
    Z = torch.where(at, 0.0, torch.where(after, 1.0, half)).to(dtype)
    R = torch.where(at, 0.0, half).to(dtype)
    return GateSchedule(Z, R, Z_free=before, R_free=before | after)


def perturbation_effects(gru, inputs: torch.Tensor, Z=None, R=None, H=None, *, scale: float = 1.0,
                         seed: int = 0) -> torch.Tensor:
    """How far each state moves when one input is perturbed: a ``(T, T)`` tensor whose entry ``[s, t]`` is
    ``max |H_t(x with x_s + noise) - H_t(x)|`` over the batch and the hidden units.

    ``gru`` is a :class:`utils.gru.GRUScratch`, ``inputs`` has shape ``(T, B, num_inputs)``; ``Z``, ``R``
    (forced gates, see ``GRUScratch.forward``) and ``H`` (initial state) are passed on. The noise at step
    ``s`` is Gaussian with standard deviation ``scale``, drawn from a generator seeded with ``seed``.
    """
    _check_perturbation(gru, inputs, scale, seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        reference, _ = gru(inputs, H, Z=Z, R=R)
        rows = []
        for s in range(inputs.shape[0]):
            perturbed = inputs.clone()
            noise = torch.randn(inputs.shape[1:], generator=generator, dtype=inputs.dtype)
            perturbed[s] += scale * noise
            outputs, _ = gru(perturbed, H, Z=Z, R=R)
            rows.append((outputs - reference).abs().amax(dim=(1, 2)))
    return torch.stack(rows)


def _check_perturbation(gru, inputs, scale, seed) -> None:
    """``gru`` a GRUScratch, ``inputs`` time-major, ``scale`` a finite number > 0, ``seed`` an int."""
    if not isinstance(gru, GRUScratch):
        raise TypeError(f"perturbation_effects expects a utils.gru.GRUScratch (it forces gates), got "
                        f"{type(gru).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be time-major (T, B, num_inputs), got {got}")
    if isinstance(scale, bool) or not isinstance(scale, Real) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be positive and finite (the noise's standard deviation), got {scale!r}")
    check_ints("perturbation_effects", seed=seed)


def marked_recall_task(num_samples: int, seq_len: int, t_prime: int, num_symbols: int = 8,
                       seed: int = 0) -> SequenceTask:
    """:func:`utils.tasks.recall_task` plus a marker channel that is 1 at step ``t'`` and 0 elsewhere.

    ``X`` has shape ``(N, T, num_symbols + 1)``; the target is the symbol at ``t'``. The marker tells the
    network when to write, as a time-indicator input would; without it the GRU would also have to count.
    """
    task = recall_task(num_samples, seq_len, position=t_prime, num_symbols=num_symbols, seed=seed)
    marker = torch.zeros(num_samples, seq_len, 1)
    marker[:, t_prime] = 1.0
    return SequenceTask(f"marked {task.name}", torch.cat([task.X, marker], dim=-1), task.y, task.kind,
                        task.num_outputs)
