"""Antisymmetric RNNs (Chang et al., 2019): recurrent cells read as forward-Euler steps of a stable ODE.

The keywords and their defaults follow the documentation of ``GatedAntisymmetricRNN`` in the Julia
library RecurrentLayers.jl; the parameters follow PyTorch's naming. With the recurrent matrix
``A = W_hh - W_hh^T - gamma I`` (antisymmetric, minus a diffusion ``gamma``) and, for a minibatch, ``x`` of
shape ``(B, input_size)`` and ``h`` of shape ``(B, hidden_size)``::

    AntisymmetricRNN:       h' = h + epsilon * tanh((W x + b_ih) (+) (A h + b_hh))
    GatedAntisymmetricRNN:  r  = A h + b_hh                                      # shared by both parts
                            z  = sigmoid((W^z x + b^z) (+) r)                    # gate
                            h' = h + epsilon * z * tanh((W^h x + b^h) (+) r)     # gated Euler step

where ``(+)`` is ``+`` for ``integration_mode="addition"`` and the elementwise product for
``"multiplicative"`` (multiplicative integration: the input and recurrent projections, each with its
bias, multiplied instead of added).
"""
import inspect
import math
from numbers import Real

import torch
from torch import nn

from utils.shapes import (check_sequence, check_sizes, check_state, check_step_input, check_switches, check_tensor,
                          initial_state)

INTEGRATION_MODES = ("addition", "multiplicative")
# RecurrentLayers.jl documents the modes as the Julia symbols :addition and :multiplicative_integration
DOCUMENTED_SPELLINGS = {":addition": "addition", "multiplicative_integration": "multiplicative",
                        ":multiplicative_integration": "multiplicative"}


def glorot_uniform_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill ``tensor`` in place from ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``: for a matrix of
    shape ``(fan_out, fan_in)`` this is ``nn.init.xavier_uniform_``; a vector of ``n`` entries counts as
    ``fan_in = 1``, ``fan_out = n`` (the convention of Flux's ``glorot_uniform``)."""
    if tensor.dim() >= 2:
        return nn.init.xavier_uniform_(tensor)
    bound = math.sqrt(6.0 / (1 + tensor.numel()))
    return nn.init.uniform_(tensor, -bound, bound)


def _affine(x, weight, bias):
    """``x @ weight.T (+ bias)`` in one call."""
    return x @ weight.T if bias is None else torch.addmm(bias, x, weight.T)


class _AntisymmetricBase(nn.Module):
    """What both cells share: keywords, parameters, the recurrent matrix, the projections and the loop.

    Subclasses set ``num_input_blocks`` (how many ``hidden_size`` blocks of rows ``weight_ih`` has) and
    define ``step(x, h, A=None)``, one time step of their equations.
    """

    num_input_blocks = 1

    def __init__(self, input_size: int, hidden_size: int, *, epsilon: float = 1.0, gamma: float = 0.0,
                 bias: bool = True, recurrent_bias: bool = True, independent_recurrence: bool = False,
                 integration_mode: str = "addition", init_kernel=glorot_uniform_,
                 init_recurrent_kernel=glorot_uniform_, **unknown):
        super().__init__()
        name = type(self).__name__
        if unknown:
            raise ValueError(f"{name} got unknown keyword(s) {sorted(unknown)}; "
                             f"allowed keywords: {', '.join(self.keywords())}")
        check_sizes(name, input_size=input_size, hidden_size=hidden_size)
        check_switches(name, bias=bias, recurrent_bias=recurrent_bias, independent_recurrence=independent_recurrence)
        for arg, value in (("init_kernel", init_kernel), ("init_recurrent_kernel", init_recurrent_kernel)):
            if not callable(value):
                raise TypeError(f"{name}: {arg} must be a callable that fills a tensor in place "
                                f"(e.g. torch.nn.init.orthogonal_), got {value!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or not 0 < epsilon < math.inf:
            raise ValueError(f"{name}: epsilon is the Euler step size and must be a finite number > 0, "
                             f"got {epsilon!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, Real) or not 0 <= gamma < math.inf:
            raise ValueError(f"{name}: gamma is the diffusion strength and must be a finite number >= 0, "
                             f"got {gamma!r}")
        if isinstance(integration_mode, str):
            integration_mode = DOCUMENTED_SPELLINGS.get(integration_mode, integration_mode)
        if not isinstance(integration_mode, str) or integration_mode not in INTEGRATION_MODES:
            raise ValueError(f"{name}: integration_mode must be one of {INTEGRATION_MODES} (or the reference "
                             f"documentation's spellings ':addition', ':multiplicative_integration'), "
                             f"got {integration_mode!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.epsilon, self.gamma = float(epsilon), float(gamma)
        self.independent_recurrence = independent_recurrence
        self.integration_mode = integration_mode

        rows = self.num_input_blocks * hidden_size
        recurrent_shape = (hidden_size,) if independent_recurrence else (hidden_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(recurrent_shape))
        self.bias_ih = nn.Parameter(torch.zeros(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.zeros(hidden_size)) if recurrent_bias else None
        with torch.no_grad():
            init_kernel(self.weight_ih)
            init_recurrent_kernel(self.weight_hh)

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The keyword arguments the constructor accepts."""
        params = inspect.signature(_AntisymmetricBase.__init__).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def recurrent_matrix(self) -> torch.Tensor:
        """``A = W - W^T - gamma I`` of shape ``(hidden, hidden)``, with ``W = diag(weight_hh)`` under
        ``independent_recurrence``: a diagonal matrix equals its transpose, so there ``A = -gamma I`` and
        ``weight_hh`` gets no gradient (the recurrence is a pure decay, or nothing when ``gamma = 0``)."""
        W = torch.diag(self.weight_hh) if self.independent_recurrence else self.weight_hh
        eye = torch.eye(self.hidden_size, dtype=W.dtype, device=W.device)
        return W - W.T - self.gamma * eye

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``W x + b_ih`` for ``x`` of shape ``(B, input)``: shape ``(B, num_input_blocks * hidden)``."""
        return _affine(x, self.weight_ih, self.bias_ih)

    def recurrent_projection(self, h: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        """``A h + b_hh`` for ``h`` of shape ``(B, hidden)``: shape ``(B, hidden)``; ``A`` defaults to
        :meth:`recurrent_matrix` (pass it to compute it once per sequence; it must be ``(hidden, hidden)``)."""
        if A is None:
            A = self.recurrent_matrix()
        else:
            check_tensor(f"{type(self).__name__}.step", "A (the recurrent matrix)", A,
                         (self.hidden_size, self.hidden_size), self.weight_ih)
        return _affine(h, A, self.bias_hh)

    def integrate(self, input_part: torch.Tensor, recurrent_part: torch.Tensor) -> torch.Tensor:
        """Combine the two projections: their sum (``"addition"``) or elementwise product
        (``"multiplicative"``)."""
        if self.integration_mode == "multiplicative":
            return input_part * recurrent_part
        return input_part + recurrent_part

    def forward(self, inputs: torch.Tensor, H: torch.Tensor | None = None):
        """Run over a sequence: ``inputs`` of shape ``(T, B, input)``, ``H`` of shape ``(B, hidden)`` or
        None for zeros. Returns ``(outputs, H)``: every state, shape ``(T, B, hidden)``, and the last."""
        check_sequence(type(self).__name__, inputs, self.input_size, self.weight_ih)
        H = initial_state(type(self).__name__, inputs, H, self.hidden_size, like=self.weight_ih)
        A = self.recurrent_matrix()
        outputs = []
        for x in inputs:
            H = self.step(x, H, A)
            outputs.append(H)
        return torch.stack(outputs), H

    def _check_step(self, x, h):
        """One step's ``x`` of shape ``(B, input_size)`` and ``h`` of shape ``(B, hidden_size)``, in the
        parameters' dtype and on their device."""
        name = type(self).__name__
        B = check_step_input(name, x, self.input_size, self.weight_ih)
        check_state(f"{name}.step", h, B, self.hidden_size, self.weight_ih, label="h")

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, epsilon={self.epsilon}, gamma={self.gamma}, "
                f"bias={self.bias_ih is not None}, recurrent_bias={self.bias_hh is not None}, "
                f"independent_recurrence={self.independent_recurrence}, "
                f"integration_mode={self.integration_mode!r}")


class AntisymmetricRNN(_AntisymmetricBase):
    """``h_t = h_{t-1} + epsilon * tanh((W x_t + b_ih) (+) (A h_{t-1} + b_hh))``, ``A = W_hh - W_hh^T - gamma I``.

    Parameters: ``weight_ih`` ``(hidden, input)``; ``weight_hh`` ``(hidden, hidden)``, or ``(hidden,)`` with
    ``independent_recurrence=True`` (then ``A = -gamma I``: see :meth:`recurrent_matrix`); ``bias_ih`` and
    ``bias_hh`` ``(hidden,)``, or None when ``bias`` / ``recurrent_bias`` is False. Weights are filled by
    ``init_kernel`` and ``init_recurrent_kernel`` (default :func:`glorot_uniform_`), biases start at zero.
    Keywords: ``epsilon=1.0`` (Euler step), ``gamma=0.0`` (diffusion), ``bias=True``, ``recurrent_bias=True``,
    ``independent_recurrence=False``, ``integration_mode="addition"`` or ``"multiplicative"``.
    """

    def step(self, x, h, A=None):
        """One Euler step: ``x`` of shape ``(B, input)``, ``h`` of shape ``(B, hidden)`` -> new ``h``;
        ``A`` is :meth:`recurrent_matrix`, computed here when None."""
        self._check_step(x, h)
        pre = self.integrate(self.input_projection(x), self.recurrent_projection(h, A))
        return h + self.epsilon * torch.tanh(pre)


class GatedAntisymmetricRNN(_AntisymmetricBase):
    """The gated antisymmetric RNN: a gate ``z`` scales each unit's Euler step.

    ``r = A h + b_hh`` (shared), ``z = sigmoid((W^z x + b^z) (+) r)``,
    ``h' = h + epsilon * z * tanh((W^h x + b^h) (+) r)`` with ``A = W_hh - W_hh^T - gamma I``.

    Parameters: ``weight_ih`` ``(2 * hidden, input)`` with the gate's rows ``W^z`` first, then the
    candidate's ``W^h``; ``bias_ih`` ``(2 * hidden,)`` ordered the same way; ``weight_hh`` ``(hidden, hidden)``
    or ``(hidden,)`` with ``independent_recurrence=True`` (then ``A = -gamma I``: see
    :meth:`recurrent_matrix`); ``bias_hh`` ``(hidden,)``. A bias is None when its keyword is False. Same
    keywords and defaults as :class:`AntisymmetricRNN`.
    """

    num_input_blocks = 2

    def step(self, x, h, A=None):
        """One gated Euler step: ``x`` of shape ``(B, input)``, ``h`` of shape ``(B, hidden)`` -> new ``h``;
        ``A`` is :meth:`recurrent_matrix`, computed here when None."""
        self._check_step(x, h)
        gate_in, candidate_in = self.input_projection(x).chunk(2, dim=-1)
        recurrent = self.recurrent_projection(h, A)
        z = torch.sigmoid(self.integrate(gate_in, recurrent))
        return h + self.epsilon * z * torch.tanh(self.integrate(candidate_in, recurrent))
