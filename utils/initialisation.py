"""A keep-biased update gate: the GRU's analogue of the LSTM's forget-gate bias.

In d2l's convention ``H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t``, and so in ``nn.GRU`` (whose ``z`` plays the
same role), ``Z = 1`` keeps the old state. With the usual initialisation the gate's pre-activation is near 0,
so ``Z`` starts near ``sigmoid(0) = 0.5`` and every step halves what the state held. A positive bias ``b_z``
starts every unit near "keep": ``Z`` near ``sigmoid(b_z)`` (0.88 for ``b_z = 2``).
"""
import d2l.torch as d2l
import torch
from torch import nn

from utils.fast_gru import FastGRU
from utils.gru import GRUScratch
from utils.shapes import check_finite_numbers


@torch.no_grad()
def bias_update_gate(layer, value: float):
    """Set the update gate's bias of a one-layer GRU to ``value`` (in place; returns the layer): ``b_z`` of a
    :class:`utils.gru.GRUScratch`, the ``z`` block of :class:`utils.fast_gru.FastGRU`'s ``b``, or, for
    ``nn.GRU`` (also inside ``d2l.GRU``), the ``z`` rows of ``bias_ih_l0`` (those of ``bias_hh_l0`` set to 0,
    so that the two add up to ``value``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"bias_update_gate expects a number, got {value!r}")
    check_finite_numbers("bias_update_gate", value=value)
    gru = layer.rnn if isinstance(layer, d2l.RNN) else layer
    if isinstance(gru, GRUScratch):
        if not gru.update_gate:
            raise ValueError("this GRUScratch has no update gate (update_gate=False)")
        if not hasattr(gru, "b_z"):
            raise ValueError(f"this {type(gru).__name__} has no update-gate bias b_z to set (the gates of "
                             "GRUVariant's 'gru2' and 'mgu' have none)")
        gru.b_z.fill_(value)
    elif isinstance(gru, FastGRU):
        gru.b[:gru.num_hiddens].fill_(value)
    elif isinstance(gru, nn.GRU):
        if gru.num_layers != 1 or gru.bidirectional or not gru.bias:
            raise ValueError("bias_update_gate handles a one-layer, unidirectional nn.GRU with biases")
        h = gru.hidden_size
        gru.bias_ih_l0[h:2 * h].fill_(value)  # nn.GRU's rows are r, z, n
        gru.bias_hh_l0[h:2 * h].fill_(0.0)
    else:
        raise TypeError(f"bias_update_gate expects a GRUScratch, FastGRU, nn.GRU or d2l.GRU, got {type(layer).__name__}")
    return layer
