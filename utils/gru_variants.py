"""Gate variants of the GRU: Dey and Salem's GRU1, GRU2 and GRU3 (2017) and the minimal gated unit (MGU)
of Zhou, Wu, Zhang and Zhou (2016), as one switch on top of :class:`utils.gru.GRUScratch`.

Every variant keeps GRUScratch's candidate and update rule, in d2l's convention (``Z = 1`` keeps the old
state); for ``X_t`` of shape ``(B, num_inputs)`` and ``H_{t-1}`` of shape ``(B, num_hiddens)``::

    H~_t = tanh(X_t W_xh + (R_t * H_{t-1}) W_hh + b_h)
    H_t  = Z_t * H_{t-1} + (1 - Z_t) * H~_t

and changes only what the gates are computed from::

    'gru'   Z_t = sigmoid(X_t W_xz + H_{t-1} W_hz + b_z)     R_t = sigmoid(X_t W_xr + H_{t-1} W_hr + b_r)
    'gru1'  Z_t = sigmoid(H_{t-1} W_hz + b_z)                R_t = sigmoid(H_{t-1} W_hr + b_r)
    'gru2'  Z_t = sigmoid(H_{t-1} W_hz)                      R_t = sigmoid(H_{t-1} W_hr)
    'gru3'  Z_t = sigmoid(b_z)                               R_t = sigmoid(b_r)
    'mgu'   F_t = sigmoid(X_t W_xf + H_{t-1} W_hf + b_f)     R_t = F_t,   Z_t = 1 - F_t

GRU1 drops the input from the gates, GRU2 also drops their bias, GRU3 keeps only the bias (the gates are
constant in time and over the batch, learned per unit). The MGU has one gate ``F`` that both resets the
state inside the candidate and lets the candidate in.

Both papers write the update the other way round, ``h_t = (1 - z_t) h_{t-1} + z_t h~_t``. With
``z = sigmoid(a)`` their gate is our ``1 - Z = sigmoid(-a)``: negating the gate's weights and bias maps one
convention onto the other, so each variant is the same family of functions in either notation. The MGU's
``h_t = (1 - f_t) h_{t-1} + f_t h~_t`` with ``h~_t = tanh(W_h [f_t * h_{t-1}, x_t] + b_h)`` is therefore
``R = F`` and ``Z = 1 - F`` here.
"""
import torch
from torch import nn

from utils.gru import GRUScratch

# variant -> {gate: the terms of its pre-activation}: 'x' = X_t W_x*, 'h' = H_{t-1} W_h*, 'b' = b_*
GATE_TERMS = {
    "gru": {"z": "xhb", "r": "xhb"},
    "gru1": {"z": "hb", "r": "hb"},
    "gru2": {"z": "h", "r": "h"},
    "gru3": {"z": "b", "r": "b"},
    "mgu": {"f": "xhb"},
}
VARIANTS = tuple(GATE_TERMS)


class GRUVariant(GRUScratch):
    """A GRU whose gates follow ``variant`` (one of :data:`VARIANTS`, see the module docstring).

    Same interface as :class:`GRUScratch` (``step``, ``forward(inputs (T, B, num_inputs), H=None)`` ->
    ``(outputs (T, B, num_hiddens), H)``, ``gates``, forced ``Z``/``R``, ``num_hiddens``, ``sigma``), so it
    serves as the ``rnn`` of ``d2l.RNNLMScratch``. Parameters: the candidate's ``W_xh``, ``W_hh``, ``b_h``
    and, for each gate ``g`` of the variant, those of ``W_xg`` ``(num_inputs, num_hiddens)``, ``W_hg``
    ``(num_hiddens, num_hiddens)``, ``b_g`` ``(num_hiddens,)`` that its terms use. ``gates`` reports the
    MGU's single gate through ``Z = 1 - F`` and ``R = F``.
    """

    def __init__(self, num_inputs, num_hiddens, sigma=0.01, *, variant="gru1"):
        if not isinstance(variant, str) or variant not in GATE_TERMS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        super().__init__(num_inputs, num_hiddens, sigma)
        self.variant = variant
        for name in ("W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r"):
            delattr(self, name)  # GRUScratch's full gates; the variant's own are made below
        shapes = {"x": (num_inputs, num_hiddens), "h": (num_hiddens, num_hiddens)}
        for gate, terms in GATE_TERMS[variant].items():
            for term in terms:
                if term == "b":
                    setattr(self, f"b_{gate}", nn.Parameter(torch.zeros(num_hiddens)))
                else:
                    setattr(self, f"W_{term}{gate}", nn.Parameter(torch.randn(*shapes[term]) * sigma))

    def gate(self, name, X, H):
        """Gate ``name`` (``'z'``, ``'r'`` or ``'f'``) of this variant: shape ``(B, num_hiddens)``."""
        terms = GATE_TERMS[self.variant][name]
        pre = torch.zeros_like(H)
        if "x" in terms:
            pre = pre + X @ getattr(self, f"W_x{name}")
        if "h" in terms:
            pre = pre + H @ getattr(self, f"W_h{name}")
        if "b" in terms:
            pre = pre + getattr(self, f"b_{name}")
        return torch.sigmoid(pre)

    def step(self, X, H, *, Z=None, R=None):
        """One time step, as :meth:`GRUScratch.step`, with this variant's gates (forced ``Z``/``R``, when
        given, replace them)."""
        GRUScratch._check_step(self, X, H, Z, R)
        if self.variant == "mgu":
            F = self.gate("f", X, H)
            Z = 1 - F if Z is None else Z
            R = F if R is None else R
        else:
            Z = self.gate("z", X, H) if Z is None else Z
            R = self.gate("r", X, H) if R is None else R
        return super().step(X, H, Z=Z, R=R)

    def _check_step(self, X, H, Z, R):
        """Nothing to check here: :meth:`step` checked the call before computing this variant's gates, which
        :meth:`GRUScratch.step` then receives as forced ones (a diverged model's NaN gates are no bad call)."""
