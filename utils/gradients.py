"""How much the last state of a recurrent layer still depends on each earlier input: the measured form
of the vanishing-gradient problem."""
import torch
from torch import nn


def input_gradient_norms(rnn: nn.Module, inputs: torch.Tensor, H=None) -> torch.Tensor:
    """Norms of the Jacobians ``d H_T / d x_t`` for every step ``t``, averaged over the batch.

    ``rnn`` is any recurrent layer of the course (time-major, returns ``(outputs, state)``); ``inputs`` has
    shape ``(T, B, num_inputs)``. Returns a tensor of shape ``(T,)``: entry ``t`` is the mean over the batch
    of the Frobenius norm of the Jacobian of the last output ``H_T`` (shape ``(B, num_hiddens)``) with
    respect to ``x_t``. Sequences in a batch are independent, so one backward pass per hidden unit gives
    every example's Jacobian at once.
    """
    if inputs.dim() != 3:
        raise ValueError(f"inputs must be time-major (T, B, num_inputs), got {tuple(inputs.shape)}")
    X = inputs.detach().clone().requires_grad_(True)
    outputs, _ = rnn(X) if H is None else rnn(X, H)
    last = outputs[-1]  # (B, num_hiddens)
    squared = torch.zeros(X.shape[0], X.shape[1], dtype=X.dtype)
    for j in range(last.shape[1]):
        (grad,) = torch.autograd.grad(last[:, j].sum(), X, retain_graph=j + 1 < last.shape[1])
        squared += grad.pow(2).sum(dim=-1)  # (T, B)
    return squared.sqrt().mean(dim=1).detach()
