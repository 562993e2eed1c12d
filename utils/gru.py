"""``GRUScratch``: the GRU of d2l's chapter 10.2, with switches for the course's variants.

Notation and parameters are d2l's. For a minibatch ``X_t`` of shape ``(B, num_inputs)`` and the state
``H_{t-1}`` of shape ``(B, num_hiddens)``::

    Z_t = sigmoid(X_t W_xz + H_{t-1} W_hz + b_z)                 # update gate
    R_t = sigmoid(X_t W_xr + H_{t-1} W_hr + b_r)                 # reset gate
    H~_t = tanh(X_t W_xh + (R_t * H_{t-1}) W_hh + b_h)           # candidate (reset before the matmul)
    H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t                       # new state: Z = 1 keeps the old state

Switches (one class, no copies):

- ``reset_after=True``: ``H~_t = tanh(X_t W_xh + b_h + R_t * (H_{t-1} W_hh + b_hh))``, the formulation
  of PyTorch's ``nn.GRU``, cuDNN and Keras' ``reset_after`` (all hidden matmuls of a step in one GEMM).
- ``reset_gate=False``: no reset gate; the candidate sees ``H_{t-1}`` directly.
- ``update_gate=False``: no update gate; the new state is the candidate, ``H_t = H~_t``.
"""
from typing import NamedTuple

import d2l.torch as d2l
import torch
from torch import nn

from utils.shapes import (check_non_negative_numbers, check_sequence, check_sizes, check_state, check_step_input,
                          check_switches, check_tensor_like, initial_state)


class GRUStep(NamedTuple):
    """One step's tensors, each of shape ``(B, num_hiddens)``; a gate the model lacks is None."""

    H: torch.Tensor
    Z: torch.Tensor | None
    R: torch.Tensor | None
    H_tilde: torch.Tensor


class GRUScratch(d2l.Module):
    """A GRU layer built from d2l's parameters; works as the ``rnn`` of ``d2l.RNNLMScratch``.

    Parameters: ``W_x*`` of shape ``(num_inputs, num_hiddens)``, ``W_h*`` of shape
    ``(num_hiddens, num_hiddens)``, ``b_*`` of shape ``(num_hiddens,)`` for ``*`` in ``z``, ``r``, ``h``
    (only those of the gates that are switched on), plus ``b_hh`` of shape ``(num_hiddens,)`` when
    ``reset_after=True``. Weights are drawn from ``N(0, sigma^2)``, biases start at zero.
    """

    def __init__(self, num_inputs, num_hiddens, sigma=0.01, *, reset_gate=True, update_gate=True,
                 reset_after=False):
        super().__init__()
        check_sizes(type(self).__name__, num_inputs=num_inputs, num_hiddens=num_hiddens)
        check_switches(type(self).__name__, reset_gate=reset_gate, update_gate=update_gate, reset_after=reset_after)
        check_non_negative_numbers(type(self).__name__, sigma=sigma)  # the weights' standard deviation
        if reset_after and not reset_gate:
            raise ValueError("reset_after=True places the reset gate after the hidden matmul, so it needs "
                             "reset_gate=True; got reset_gate=False")
        self.save_hyperparameters()

        def weight(*shape):
            return nn.Parameter(torch.randn(*shape) * sigma)

        def triple():
            return (weight(num_inputs, num_hiddens), weight(num_hiddens, num_hiddens),
                    nn.Parameter(torch.zeros(num_hiddens)))

        if update_gate:
            self.W_xz, self.W_hz, self.b_z = triple()  # update gate
        if reset_gate:
            self.W_xr, self.W_hr, self.b_r = triple()  # reset gate
        self.W_xh, self.W_hh, self.b_h = triple()  # candidate hidden state
        if reset_after:
            self.b_hh = nn.Parameter(torch.zeros(num_hiddens))  # hidden bias, inside the reset

    def step(self, X, H, *, Z=None, R=None) -> GRUStep:
        """One time step: ``X`` of shape ``(B, num_inputs)``, ``H`` of shape ``(B, num_hiddens)``.

        ``Z`` or ``R`` (broadcastable to ``(B, num_hiddens)``), when given, replace the computed gate:
        this is how the course sets gates by hand.
        """
        self._check_step(X, H, Z, R)
        if self.update_gate and Z is None:
            Z = torch.sigmoid(X @ self.W_xz + H @ self.W_hz + self.b_z)
        if self.reset_gate and R is None:
            R = torch.sigmoid(X @ self.W_xr + H @ self.W_hr + self.b_r)
        if not self.reset_gate:
            H_tilde = torch.tanh(X @ self.W_xh + H @ self.W_hh + self.b_h)
        elif self.reset_after:
            H_tilde = torch.tanh(X @ self.W_xh + self.b_h + R * (H @ self.W_hh + self.b_hh))
        else:
            H_tilde = torch.tanh(X @ self.W_xh + (R * H) @ self.W_hh + self.b_h)
        H_new = Z * H + (1 - Z) * H_tilde if self.update_gate else H_tilde
        return GRUStep(H_new, Z, R, H_tilde)

    def forward(self, inputs, H=None, *, Z=None, R=None):
        """Run over a sequence: ``inputs`` of shape ``(T, B, num_inputs)``, ``H`` of shape
        ``(B, num_hiddens)`` or None for zeros. Returns ``(outputs, H)`` with ``outputs`` of shape
        ``(T, B, num_hiddens)`` and the final state ``H`` of shape ``(B, num_hiddens)``.

        ``Z`` and ``R``, when given, hold forced gate values indexed by time: a tensor of shape ``(T, ...)``
        whose ``Z[t]`` broadcasts to ``(B, num_hiddens)``, e.g. ``(T, 1, 1)`` or ``(T, B, num_hiddens)``.
        """
        H = self._check(inputs, H, Z, R)
        outputs = []
        for t, X in enumerate(inputs):
            H = self.step(X, H, Z=None if Z is None else Z[t], R=None if R is None else R[t]).H
            outputs.append(H)
        return torch.stack(outputs), H

    def gates(self, inputs, H=None):
        """The gates along a sequence, for inspection: a dict of ``(T, B, num_hiddens)`` tensors with keys
        ``'H'``, ``'H_tilde'`` and ``'Z'`` / ``'R'`` for the gates the model has."""
        H = self._check(inputs, H)
        steps = []
        for X in inputs:
            steps.append(self.step(X, H))
            H = steps[-1].H
        return {name: torch.stack([getattr(s, name) for s in steps])
                for name in GRUStep._fields if getattr(steps[0], name) is not None}

    def _check_forced_gates(self, Z, R):
        """A forced gate needs the gate to exist: forcing a missing gate would be silently ignored."""
        for name, forced, present, gate in (("Z", Z, self.update_gate, "update"),
                                            ("R", R, self.reset_gate, "reset")):
            if forced is not None and not present:
                raise ValueError(f"forced {name} given, but this GRUScratch has no {gate} gate "
                                 f"({gate}_gate=False)")

    def _check_step(self, X, H, Z, R):
        """Validate one step's call: ``X`` (B, num_inputs), ``H`` (B, num_hiddens) in the parameters' dtype and
        on their device, forced gates only for gates the model has, broadcastable to (B, num_hiddens)."""
        name = type(self).__name__
        B = check_step_input(name, X, self.num_inputs, self.W_xh)
        check_state(f"{name}.step", H, B, self.num_hiddens, self.W_xh)
        self._check_forced_gates(Z, R)
        for label, forced in (("Z", Z), ("R", R)):
            if forced is not None:
                self._check_broadcast(label, forced, (B, self.num_hiddens))
                self._check_gate_values(f"{name}.step", label, forced)

    @staticmethod
    def _check_broadcast(label, forced, shape):
        """A forced gate for one step must be a number or a tensor that broadcasts to ``shape``."""
        if isinstance(forced, (int, float)) and not isinstance(forced, bool):
            return
        if not isinstance(forced, torch.Tensor):
            raise TypeError(f"forced {label} must be a tensor or a number, got {type(forced).__name__}")
        try:
            if torch.broadcast_shapes(tuple(forced.shape), shape) != torch.Size(shape):
                raise RuntimeError
        except RuntimeError:
            raise ValueError(f"forced {label} must broadcast to {shape} (batch, num_hiddens), got shape "
                             f"{tuple(forced.shape)}") from None

    def _check_gate_values(self, name, label, forced):
        """A forced gate must hold gate values: finite, in [0, 1], a tensor in the parameters' dtype and on their
        device (a float64 gate would turn the state float64; a bool or 'meta' one would fail deep inside)."""
        if isinstance(forced, torch.Tensor):
            check_tensor_like(name, f"forced {label}", forced, self.W_xh)
            outside = forced[~((forced >= 0) & (forced <= 1))]
            got = outside.flatten()[0].item() if outside.numel() else None
        else:
            got = None if 0 <= forced <= 1 else forced
        if got is not None:
            raise ValueError(f"{name} expects forced {label} to hold gate values, finite numbers in [0, 1] "
                             f"(a sigmoid's range), got {got}")

    def _check(self, inputs, H, Z=None, R=None):
        """Validate a sequence call (shapes, dtypes, devices); return the initial state (zeros when ``H``
        is None)."""
        name = type(self).__name__
        T, B = check_sequence(name, inputs, self.num_inputs, self.W_xh)
        self._check_forced_gates(Z, R)
        for label, forced in (("Z", Z), ("R", R)):
            if forced is None:
                continue
            shape = tuple(forced.shape) if isinstance(forced, torch.Tensor) else None
            if shape is None or len(shape) == 0 or shape[0] != T:
                raise ValueError(f"forced {label} must be a tensor with one entry per time step, shape "
                                 f"({T}, ...), got {shape if shape is not None else type(forced).__name__}")
            if len(shape[1:]) > 2:
                raise ValueError(f"forced {label} must have at most 3 dimensions (T, B, num_hiddens), "
                                 f"got shape {shape}")
            self._check_broadcast(f"{label}[t]", forced[0], (B, self.num_hiddens))
            self._check_gate_values(name, label, forced)
        return initial_state(name, inputs, H, self.num_hiddens, like=self.W_xh)

    @classmethod
    def from_torch(cls, gru: nn.GRU) -> "GRUScratch":
        """A ``reset_after=True`` GRUScratch with the weights of a one-layer, unidirectional,
        time-major ``nn.GRU`` with biases; its outputs and final state equal the ``nn.GRU``'s up to float
        rounding.

        PyTorch stores ``weight_ih_l0`` of shape ``(3h, num_inputs)`` and ``weight_hh_l0`` of shape
        ``(3h, h)`` with the rows of the reset, update and candidate parts in that order, and two biases
        per block (the two gates and the candidate); the gate biases add up (``b_r = b_ir + b_hr``), the
        candidate keeps both (``b_h = b_in``, ``b_hh = b_hn``).
        """
        if not isinstance(gru, nn.GRU):
            raise TypeError(f"from_torch expects a torch.nn.GRU, got {type(gru).__name__}")
        unsupported = {"num_layers": (gru.num_layers, 1), "bidirectional": (gru.bidirectional, False),
                       "batch_first": (gru.batch_first, False), "bias": (gru.bias, True)}
        wrong = [f"{k}={got!r} (needs {need!r})" for k, (got, need) in unsupported.items() if got != need]
        if wrong:
            raise ValueError("GRUScratch.from_torch can represent only a one-layer, unidirectional, "
                             "time-major nn.GRU with biases; this one has " + ", ".join(wrong))
        h = gru.hidden_size
        model = cls(gru.input_size, h, reset_after=True)
        w_ih, w_hh = gru.weight_ih_l0.detach(), gru.weight_hh_l0.detach()
        b_ih, b_hh = gru.bias_ih_l0.detach(), gru.bias_hh_l0.detach()
        r, z, n = slice(0, h), slice(h, 2 * h), slice(2 * h, 3 * h)
        values = {"W_xr": w_ih[r].T, "W_xz": w_ih[z].T, "W_xh": w_ih[n].T,
                  "W_hr": w_hh[r].T, "W_hz": w_hh[z].T, "W_hh": w_hh[n].T,
                  "b_r": b_ih[r] + b_hh[r], "b_z": b_ih[z] + b_hh[z], "b_h": b_ih[n], "b_hh": b_hh[n]}
        model.to(device=w_ih.device, dtype=w_ih.dtype)
        with torch.no_grad():
            for name, value in values.items():
                getattr(model, name).copy_(value)
        return model
