"""The LSTM as a baseline for the GRU: ``LSTMScratch`` (d2l's equations, from scratch) and ``LSTM``
(``torch.nn.LSTM`` in d2l's concise wrapper; d2l 1.0.3 ships no LSTM class).

For ``X_t`` of shape ``(B, num_inputs)`` and the state ``(H_{t-1}, C_{t-1})``, each ``(B, num_hiddens)``::

    I_t = sigmoid(X_t W_xi + H_{t-1} W_hi + b_i)      # input gate
    F_t = sigmoid(X_t W_xf + H_{t-1} W_hf + b_f)      # forget gate
    O_t = sigmoid(X_t W_xo + H_{t-1} W_ho + b_o)      # output gate
    C~_t = tanh(X_t W_xc + H_{t-1} W_hc + b_c)        # input node
    C_t = F_t * C_{t-1} + I_t * C~_t                  # memory cell
    H_t = O_t * tanh(C_t)                             # hidden state
"""
import d2l.torch as d2l
import torch
from torch import nn

from utils.shapes import check_non_negative_numbers, check_sequence, check_sizes, check_tensor


def _check_state_pair(name: str, state, shape: tuple, like: torch.Tensor) -> None:
    """``state`` must be a tuple ``(H, C)`` of two tensors of ``shape``, in the dtype and on the device of
    ``like`` (a parameter of the layer)."""
    if not isinstance(state, tuple) or len(state) != 2:
        got = type(state).__name__ + (f" of {len(state)}" if isinstance(state, (tuple, list)) else "")
        raise ValueError(f"{name} expects a state (H, C) of two {shape} tensors, got {got}: pass a tuple (H, C)")
    for label, tensor in zip("HC", state):
        check_tensor(name, f"the state {label}", tensor, shape, like)


class LSTMScratch(d2l.Module):
    """An LSTM layer from scratch; works as the ``rnn`` of ``d2l.RNNLMScratch``.

    Parameters ``W_x*`` ``(num_inputs, num_hiddens)``, ``W_h*`` ``(num_hiddens, num_hiddens)``, ``b_*``
    ``(num_hiddens,)`` for ``*`` in ``i``, ``f``, ``o``, ``c``; weights from ``N(0, sigma^2)``, biases zero.
    """

    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        check_sizes("LSTMScratch", num_inputs=num_inputs, num_hiddens=num_hiddens)
        check_non_negative_numbers("LSTMScratch", sigma=sigma)
        self.save_hyperparameters()

        def triple():
            return (nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma),
                    nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma),
                    nn.Parameter(torch.zeros(num_hiddens)))

        self.W_xi, self.W_hi, self.b_i = triple()  # input gate
        self.W_xf, self.W_hf, self.b_f = triple()  # forget gate
        self.W_xo, self.W_ho, self.b_o = triple()  # output gate
        self.W_xc, self.W_hc, self.b_c = triple()  # input node

    def forward(self, inputs, state=None):
        """``inputs`` of shape ``(T, B, num_inputs)``, ``state`` a pair ``(H, C)`` of ``(B, num_hiddens)``
        tensors or None for zeros. Returns ``(outputs (T, B, num_hiddens), (H, C))``."""
        _, B = check_sequence("LSTMScratch", inputs, self.num_inputs, self.W_xi)
        if state is None:
            zeros = inputs.new_zeros(B, self.num_hiddens)
            state = (zeros, zeros)
        _check_state_pair("LSTMScratch", state, (B, self.num_hiddens), self.W_xi)
        H, C = state
        outputs = []
        for X in inputs:
            I = torch.sigmoid(X @ self.W_xi + H @ self.W_hi + self.b_i)
            F = torch.sigmoid(X @ self.W_xf + H @ self.W_hf + self.b_f)
            O = torch.sigmoid(X @ self.W_xo + H @ self.W_ho + self.b_o)
            C_tilde = torch.tanh(X @ self.W_xc + H @ self.W_hc + self.b_c)
            C = F * C + I * C_tilde
            H = O * torch.tanh(C)
            outputs.append(H)
        return torch.stack(outputs), (H, C)


class LSTM(d2l.RNN):
    """A one-layer ``torch.nn.LSTM`` in d2l's concise wrapper: works as the ``rnn`` of ``d2l.RNNLM``.

    ``forward(inputs (T, B, num_inputs), state=None)`` returns ``(outputs (T, B, num_hiddens), (H, C))``
    with ``H`` and ``C`` of shape ``(1, B, num_hiddens)``.
    """

    def __init__(self, num_inputs, num_hiddens):
        d2l.Module.__init__(self)
        check_sizes("LSTM", num_inputs=num_inputs, num_hiddens=num_hiddens)
        self.save_hyperparameters()
        self.rnn = nn.LSTM(num_inputs, num_hiddens)

    def forward(self, inputs, state=None):
        _, B = check_sequence("LSTM", inputs, self.num_inputs, self.rnn.weight_ih_l0)
        if state is not None:
            _check_state_pair("LSTM", state, (1, B, self.num_hiddens), self.rnn.weight_ih_l0)
        return self.rnn(inputs, state)
