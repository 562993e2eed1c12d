"""Shape checks shared by the course's recurrent layers: time-major inputs and a (batch, hidden) state.

Every layer takes ``inputs`` of shape ``(T, B, num_inputs)`` and an optional state of shape
``(B, num_hiddens)``; these two functions give the same clear error, naming the layer, wherever a call
does not fit.
"""
import torch


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def check_sequence(name: str, inputs, num_inputs: int) -> tuple[int, int]:
    """Check that ``inputs`` is a tensor of shape ``(T, B, num_inputs)`` with ``T >= 1``; return ``(T, B)``."""
    expected = f"(T, B, {num_inputs})"
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        raise ValueError(f"{name} expects time-major inputs of shape {expected}, got {_shape(inputs)}")
    if inputs.shape[-1] != num_inputs:
        raise ValueError(f"{name} expects inputs of shape {expected}, got {tuple(inputs.shape)}: "
                         f"{inputs.shape[-1]} features instead of {num_inputs}")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} got an empty sequence (T = 0)")
    return inputs.shape[0], inputs.shape[1]


def initial_state(name: str, inputs: torch.Tensor, H, num_hiddens: int, label: str = "H") -> torch.Tensor:
    """``H`` after checking that its shape is ``(B, num_hiddens)`` for the batch of ``inputs``; zeros of that
    shape (``inputs``' dtype and device) when ``H`` is None."""
    B = inputs.shape[1]
    if H is None:
        return inputs.new_zeros(B, num_hiddens)
    if not isinstance(H, torch.Tensor) or tuple(H.shape) != (B, num_hiddens):
        raise ValueError(f"{name} expects a state {label} of shape ({B}, {num_hiddens}) (batch, num_hiddens), "
                         f"got {_shape(H)}")
    return H
