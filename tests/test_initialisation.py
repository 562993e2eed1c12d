"""The keep-biased update gate: Z starts at sigmoid(b_z) in every kind of GRU of the course."""
import math

import d2l.torch as d2l
import pytest
import torch
from torch import nn

from utils.fast_gru import FastGRU
from utils.gru import GRUScratch
from utils.initialisation import bias_update_gate


def update_gate_at_zero(layer):
    """Z for a zero input and a zero state: (1, h)."""
    X, H = torch.zeros(1, 3), torch.zeros(1, 4)
    if isinstance(layer, GRUScratch):
        return layer.step(X, H).Z
    if isinstance(layer, FastGRU):
        return torch.sigmoid(layer.b[:4])[None]
    gru = layer.rnn if isinstance(layer, d2l.RNN) else layer
    z = torch.sigmoid(gru.bias_ih_l0[4:8] + gru.bias_hh_l0[4:8])
    torch.testing.assert_close(GRUScratch.from_torch(gru).step(X, H).Z, z[None])  # the same gate
    return z[None]


@pytest.mark.parametrize("make", [lambda: GRUScratch(3, 4), lambda: FastGRU(3, 4, "backward"), lambda: nn.GRU(3, 4),
                                  lambda: d2l.GRU(3, 4, num_layers=1)], ids=["scratch", "fast", "nn", "d2l"])
def test_the_update_gate_starts_near_keep(make):
    layer = bias_update_gate(make(), 2.0)
    torch.testing.assert_close(update_gate_at_zero(layer), torch.full((1, 4), 1 / (1 + math.exp(-2.0))))


def test_bad_layers_and_values_are_refused():
    with pytest.raises(TypeError, match="expects a GRUScratch, FastGRU, nn.GRU or d2l.GRU, got LSTM"):
        bias_update_gate(nn.LSTM(3, 4), 1.0)
    with pytest.raises(TypeError, match="expects a number"):
        bias_update_gate(nn.GRU(3, 4), "2")
    with pytest.raises(ValueError, match="no update gate"):
        bias_update_gate(GRUScratch(3, 4, update_gate=False), 1.0)
