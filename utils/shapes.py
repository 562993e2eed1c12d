"""Input checks shared by the course's code: sizes, counts, numbers, switches, token ids, tensors, time-major
inputs, one step, and the state.

Every layer takes ``inputs`` of shape ``(T, B, num_inputs)`` and an optional state of shape
``(B, num_hiddens)`` (one step: ``X`` of shape ``(B, num_inputs)``), in the dtype and on the device of its
parameters. These functions give the same clear error, naming the layer, the argument, what was expected
and what came, wherever a call does not fit, before anything reaches a matmul deep inside torch.
"""
import math
import numbers

import torch


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _is_int(value) -> bool:
    """An int or a NumPy integer, never a bool, float or str."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, torch.Tensor)) and \
        type(value).__name__ != "bool_"


def check_sizes(name: str, **sizes) -> None:
    """Each size (``num_inputs=3, num_hiddens=4``) must be a positive int (not a bool, float or str)."""
    for arg, value in sizes.items():
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} expects {arg} to be a positive int, got {value!r}")


def check_counts(name: str, **counts) -> None:
    """Each count (``max_retries=2``, ``num_samples=0``) must be a non-negative int (not a bool or float)."""
    for arg, value in counts.items():
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} expects {arg} to be a non-negative int, got {value!r}")


def _is_finite_number(value) -> bool:
    """A finite int, float or NumPy number: never a bool, str, tensor, NaN or infinity."""
    return not isinstance(value, (bool, str, torch.Tensor)) and isinstance(value, numbers.Real) \
        and math.isfinite(value)


def check_positive_numbers(name: str, **numbers_) -> None:
    """Each value (``lr=0.1, clip=1.0``) must be a finite number above 0 (not a bool, str, NaN or inf)."""
    for arg, value in numbers_.items():
        if not _is_finite_number(value) or value <= 0:
            raise ValueError(f"{name} expects {arg} to be a positive finite number, got {value!r}")


def check_switches(name: str, **switches) -> None:
    """Each switch (``reset_gate=True``) must be True or False: ``'no'`` or ``0`` would be read as a truth value."""
    for arg, value in switches.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} expects {arg} to be True or False, got {value!r}")


def check_tensor_like(name: str, label: str, value: torch.Tensor, like: torch.Tensor | None) -> None:
    """``value`` must have the dtype and device of ``like`` (a parameter of the layer); nothing to check
    when ``like`` is None."""
    if like is None:
        return
    if value.dtype != like.dtype:
        fix = f"convert {label} with .to({like.dtype})"
        if value.is_floating_point():
            fix += f", or the layer with .to({value.dtype})"
        raise TypeError(f"{name} expects {label} of dtype {like.dtype} (its parameters' dtype), got "
                        f"{value.dtype}: {fix}")
    if value.device != like.device:
        raise ValueError(f"{name} expects {label} on {like.device} (its parameters' device), got {value.device}; "
                         f"move one of them with .to(device)")


def check_sequence(name: str, inputs, num_inputs: int, like: torch.Tensor | None = None) -> tuple[int, int]:
    """Check that ``inputs`` is a tensor of shape ``(T, B, num_inputs)`` with ``T >= 1`` and ``B >= 1``, of
    the dtype and device of ``like``; return ``(T, B)``."""
    expected = f"(T, B, {num_inputs})"
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        raise ValueError(f"{name} expects time-major inputs of shape {expected}, got {_shape(inputs)}")
    if inputs.shape[-1] != num_inputs:
        raise ValueError(f"{name} expects inputs of shape {expected}, got {tuple(inputs.shape)}: "
                         f"{inputs.shape[-1]} features instead of {num_inputs}")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} got an empty sequence (T = 0)")
    if inputs.shape[1] == 0:
        raise ValueError(f"{name} got an empty batch (B = 0)")
    check_tensor_like(name, "inputs", inputs, like)
    return inputs.shape[0], inputs.shape[1]


def check_step_input(name: str, X, num_inputs: int, like: torch.Tensor | None = None) -> int:
    """Check one time step's input ``X`` of shape ``(B, num_inputs)``; return ``B``. A whole sequence
    ``(T, B, num_inputs)`` is refused: it belongs in ``forward``."""
    if not isinstance(X, torch.Tensor) or X.dim() != 2 or X.shape[1] != num_inputs:
        hint = "; a sequence (T, B, num_inputs) goes to forward, not step" if (
            isinstance(X, torch.Tensor) and X.dim() == 3) else ""
        raise ValueError(f"{name}.step expects one time step X of shape (B, {num_inputs}), got {_shape(X)}{hint}")
    check_tensor_like(f"{name}.step", "X", X, like)
    return X.shape[0]


def check_state(name: str, H, batch_size: int, num_hiddens: int, like: torch.Tensor | None = None,
                label: str = "H") -> torch.Tensor:
    """``H`` after checking that it is a ``(batch_size, num_hiddens)`` tensor of the dtype and device of
    ``like``."""
    if not isinstance(H, torch.Tensor) or tuple(H.shape) != (batch_size, num_hiddens):
        raise ValueError(f"{name} expects a state {label} of shape ({batch_size}, {num_hiddens}) "
                         f"(batch, num_hiddens), got {_shape(H)}")
    check_tensor_like(name, f"the state {label}", H, like)
    return H


def initial_state(name: str, inputs: torch.Tensor, H, num_hiddens: int, label: str = "H",
                  like: torch.Tensor | None = None) -> torch.Tensor:
    """``H`` after checking that its shape is ``(B, num_hiddens)`` for the batch of ``inputs`` (and its dtype
    and device those of ``like``); zeros of that shape (``inputs``' dtype and device) when ``H`` is None."""
    B = inputs.shape[1]
    if H is None:
        return inputs.new_zeros(B, num_hiddens)
    return check_state(name, H, B, num_hiddens, like, label)


def check_ints(name: str, **values) -> None:
    """Each value (``start=0, horizon=12``) must be an int (not a bool, float or str); the caller checks its range.
    ``2.5`` would become a fractional bound or a slice error deep inside, ``True`` a silent 1."""
    for arg, value in values.items():
        if not _is_int(value):
            raise ValueError(f"{name} expects {arg} to be an int, got {value!r}")


def check_finite_numbers(name: str, **numbers_) -> None:
    """Each value (``mean=0.5``) must be a finite number (not a bool, str, NaN or inf)."""
    for arg, value in numbers_.items():
        if not _is_finite_number(value):
            raise ValueError(f"{name} expects {arg} to be a finite number, got {value!r}")


def check_token_ids(name: str, label: str, tokens, vocab_size: int | None) -> None:
    """``tokens`` (any shape) must be a ``torch.int64`` tensor of token indices in ``[0, vocab_size)`` (no upper
    bound when ``vocab_size`` is None): a float or an index outside the vocabulary fails deep inside ``one_hot``
    or the loss otherwise."""
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.int64:
        got = tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise TypeError(f"{name} expects {label} to be token indices of dtype torch.int64, got {got}")
    if tokens.numel() and (tokens.min() < 0 or (vocab_size is not None and tokens.max() >= vocab_size)):
        expected = "non-negative" if vocab_size is None else f"in [0, {vocab_size}) (the model's vocabulary)"
        raise ValueError(f"{name} expects {label} {expected}, got indices from {tokens.min().item()} to "
                         f"{tokens.max().item()}")


def check_non_negative_numbers(name: str, **numbers_) -> None:
    """Each value (``sigma=0.01``) must be a finite number >= 0 (not a bool, str, NaN or inf)."""
    for arg, value in numbers_.items():
        if not _is_finite_number(value) or value < 0:
            raise ValueError(f"{name} expects {arg} to be a finite number >= 0, got {value!r}")


def check_tensor(name: str, label: str, value, shape: tuple, like: torch.Tensor | None = None) -> torch.Tensor:
    """``value`` after checking that it is a tensor of exactly ``shape`` (a weight, a bias, a matrix given to a
    step), in the dtype and on the device of ``like``."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} expects {label} of shape {tuple(shape)}, got {_shape(value)}")
    check_tensor_like(name, label, value, like)
    return value
