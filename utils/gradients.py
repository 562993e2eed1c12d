"""How much the last state of a recurrent layer still depends on each earlier input: the measured form
of the vanishing-gradient problem."""
import torch
from torch import nn

from utils.shapes import check_sequence


def input_gradient_norms(rnn: nn.Module, inputs: torch.Tensor, H=None) -> torch.Tensor:
    """Norms of the Jacobians ``d H_T / d x_t`` for every step ``t``, averaged over the batch.

    ``rnn`` is any recurrent layer of the course (time-major, returns ``(outputs, state)``); ``inputs`` has
    shape ``(T, B, num_inputs)``. Returns a tensor of shape ``(T,)``: entry ``t`` is the mean over the batch
    of the Frobenius norm of the Jacobian of the last output ``H_T`` (shape ``(B, num_hiddens)``) with
    respect to ``x_t``. Sequences in a batch are independent, so one backward pass per hidden unit gives
    every example's Jacobian at once.
    """
    _check(rnn, inputs)
    X = inputs.detach().clone().requires_grad_(True)
    last = _last_output(rnn(X) if H is None else rnn(X, H), *X.shape[:2])  # (B, num_hiddens)
    squared = X.new_zeros(X.shape[0], X.shape[1])
    for j in range(last.shape[1]):
        (grad,) = torch.autograd.grad(last[:, j].sum(), X, retain_graph=j + 1 < last.shape[1])
        squared += grad.pow(2).sum(dim=-1)  # (T, B)
    return squared.sqrt().mean(dim=1).detach()


def _check(rnn, inputs) -> None:
    """``rnn`` a time-major layer (not ``batch_first``); ``inputs`` a floating-point ``(T, B, num_inputs)`` tensor
    that holds values (not a 'meta' one), with ``T, B >= 1``."""
    name = "input_gradient_norms"
    if not callable(rnn):
        raise TypeError(f"{name} expects rnn to be a recurrent layer (callable), got {type(rnn).__name__}")
    if getattr(rnn, "batch_first", False):
        raise ValueError(f"{name} feeds rnn time-major inputs (T, B, num_inputs); got a {type(rnn).__name__} with "
                         "batch_first=True, which would take the batch axis for time: build it with batch_first=False")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be time-major (T, B, num_inputs), got {got}")
    check_sequence(name, inputs, inputs.shape[-1])
    if not inputs.is_floating_point():
        raise TypeError(f"{name} expects floating-point inputs (gradients flow only through those), got "
                        f"{inputs.dtype}")
    if inputs.device.type == "meta":
        raise ValueError(f"{name} expects inputs that hold values, got a 'meta' tensor (a shape only): create it "
                         "on the cpu or a GPU")


def _last_output(result, T: int, B: int) -> torch.Tensor:
    """``H_T`` of shape ``(B, num_hiddens)`` from what ``rnn`` returned: ``(outputs, state)`` with ``outputs`` a
    ``(T, B, num_hiddens)`` tensor or a list of ``T`` steps (d2l's ``RNNScratch``)."""
    outputs = result[0] if isinstance(result, (tuple, list)) and len(result) == 2 else None
    last = outputs[-1] if isinstance(outputs, (torch.Tensor, list)) and len(outputs) == T else None
    if not isinstance(last, torch.Tensor) or last.dim() != 2 or last.shape[0] != B:
        got = type(result).__name__ + (f" of shape {tuple(result.shape)}" if isinstance(result, torch.Tensor) else "")
        raise TypeError(f"input_gradient_norms expects rnn to return (outputs, state) with outputs of shape "
                        f"({T}, {B}, num_hiddens), like the course's layers; got {got}")
    return last
