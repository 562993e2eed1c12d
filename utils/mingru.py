"""``MinGRU``: the minimal GRU of Feng et al. (2024, "Were RNNs All We Needed?"), in d2l's notation.

The gate and the candidate see only the input, not the previous state::

    Z_t  = sigmoid(X_t W_xz + b_z)                    # update gate, (B, h)
    H~_t = g(X_t W_xh + b_h)                          # candidate, kept positive by g
    H_t  = Z_t * H_{t-1} + (1 - Z_t) * H~_t           # d2l's convention: Z = 1 keeps the old state

with ``g(x) = x + 0.5`` for ``x >= 0`` and ``sigmoid(x)`` otherwise. (The paper writes the gate on the
candidate, ``(1 - z) h + z h~``; here ``Z`` plays d2l's role, ``Z = 1 - z``.) Since ``H_t = a_t H_{t-1} +
b_t`` with ``a_t = Z_t`` and ``b_t = (1 - Z_t) H~_t`` known for every ``t`` before the recurrence runs, the
whole sequence follows from cumulative sums, without a loop over time::

    H_t = A_t (H_0 + sum_{s <= t} b_s / A_s),   A_t = a_1 a_2 ... a_t

computed in log space (all terms are positive) with ``cumsum`` and ``logcumsumexp``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from utils.shapes import check_non_negative_numbers, check_sequence, check_sizes, check_switches, initial_state


def log_g(x: torch.Tensor) -> torch.Tensor:
    """``log g(x)`` without forming ``g(x)``: ``log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x)`` otherwise."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def g(x: torch.Tensor) -> torch.Tensor:
    """The positive candidate activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` otherwise."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def sequential_scan(Z: torch.Tensor, H_tilde: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """``H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t`` step by step: ``(T, B, h)`` tensors, ``H`` of shape
    ``(B, h)``; returns all states ``(T, B, h)``."""
    outputs = []
    for Z_t, H_tilde_t in zip(Z.unbind(0), H_tilde.unbind(0)):
        H = Z_t * H + (1 - Z_t) * H_tilde_t
        outputs.append(H)
    return torch.stack(outputs)


def log_space_scan(log_a: torch.Tensor, log_b: torch.Tensor, H: torch.Tensor | None) -> torch.Tensor:
    """All ``H_t = a_t H_{t-1} + b_t`` at once from ``log a`` and ``log b`` of shape ``(T, B, h)`` and a
    positive ``H`` of shape ``(B, h)`` (None: ``H_0 = 0``); returns ``(T, B, h)``.

    Precision: ``cumsum`` adds ``T`` logarithms, so in float32 the relative error grows with the length
    (about 1e-4 at T=1000 and 4e-4 at T=4000 in the tests, bounded there by 1e-6 * T), while the loop
    over time stays at float32's rounding; in float64 both agree to about 1e-12."""
    a_star = torch.cumsum(log_a, dim=0)  # log A_t
    terms = log_b - a_star  # log (b_s / A_s)
    if H is not None:
        terms = torch.cat([torch.log(H).unsqueeze(0), terms])  # H_0 is the s = 0 term, with A_0 = 1
        return torch.exp(a_star + torch.logcumsumexp(terms, dim=0)[1:])
    return torch.exp(a_star + torch.logcumsumexp(terms, dim=0))


class MinGRU(nn.Module):
    """A one-layer minGRU: ``W_x`` of shape ``(num_inputs, 2h)`` (gate and candidate columns), ``b`` of
    shape ``(2h,)``; weights from ``N(0, sigma^2)``, biases zero, as in d2l.

    ``forward(inputs (T, B, num_inputs), H=None, *, parallel=True) -> (outputs (T, B, h), H (B, h))``:
    ``parallel=True`` runs the log-space scan, ``False`` the loop over time; both give the same states.
    """

    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        check_sizes("MinGRU", num_inputs=num_inputs, num_hiddens=num_hiddens)
        check_non_negative_numbers("MinGRU", sigma=sigma)
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.W_x = nn.Parameter(torch.randn(num_inputs, 2 * num_hiddens) * sigma)
        self.b = nn.Parameter(torch.zeros(2 * num_hiddens))

    def forward(self, inputs, H=None, *, parallel=True):
        self._check(inputs, H)
        check_switches("MinGRU", parallel=parallel)
        K, C = (inputs @ self.W_x + self.b).chunk(2, dim=-1)  # gate and candidate pre-activations
        if parallel:
            outputs = log_space_scan(-F.softplus(-K), -F.softplus(K) + log_g(C), H)  # log Z, log (1-Z) H~
        else:
            H0 = inputs.new_zeros(inputs.shape[1], self.num_hiddens) if H is None else H
            outputs = sequential_scan(torch.sigmoid(K), g(C), H0)
        return outputs, outputs[-1]

    def _check(self, inputs, H):
        """Validate the shapes, and that a given state is positive (the log-space scan takes log H)."""
        check_sequence("MinGRU", inputs, self.num_inputs, self.W_x)
        if H is not None and not bool((initial_state("MinGRU", inputs, H, self.num_hiddens, like=self.W_x) > 0).all()):
            raise ValueError("MinGRU needs a positive state H (the log-space scan takes log H; minGRU's "
                             "states stay positive when they start positive); got an entry <= 0")
