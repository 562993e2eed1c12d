import pytest
import torch
from torch import nn

from utils.blog_cells import ConcatGRUCell, SplitGRUCell
from utils.gru import GRUScratch


def loop(cell, X, h):
    """Time-major X (T, B, in) through a one-step cell; returns the states (T, B, h)."""
    states = []
    for x in X:
        h = cell(x, h)
        states.append(h)
    return torch.stack(states)


def scratch(num_inputs, num_hiddens, **kwargs):
    torch.manual_seed(0)
    gru = GRUScratch(num_inputs, num_hiddens, sigma=0.5, **kwargs).double()
    with torch.no_grad():  # non-zero biases, so that a wrong bias mapping shows
        for name in ("b_z", "b_r", "b_h"):
            getattr(gru, name).normal_()
    return gru


def test_concat_cell_from_scratch_gives_the_same_states():
    gru = scratch(3, 5)
    X, H0 = torch.randn(6, 4, 3, dtype=torch.double), torch.randn(4, 5, dtype=torch.double)
    expected, _ = gru(X, H0)
    cell = ConcatGRUCell.from_scratch(gru)
    assert torch.allclose(loop(cell, X, H0), expected, atol=1e-6)


def test_concat_cell_update_gate_is_the_complement_of_d2l():
    gru = scratch(3, 5)
    x, h = torch.randn(4, 3, dtype=torch.double), torch.randn(4, 5, dtype=torch.double)
    cell = ConcatGRUCell.from_scratch(gru)
    z_blog = torch.sigmoid(cell.update_gate(torch.cat((x, h), dim=1)))
    assert torch.allclose(z_blog, 1 - gru.step(x, h).Z, atol=1e-12)


def test_concat_cell_to_scratch_round_trip():
    torch.manual_seed(1)
    cell = ConcatGRUCell(3, 5).double()
    X, H0 = torch.randn(7, 2, 3, dtype=torch.double), torch.randn(2, 5, dtype=torch.double)
    gru = cell.to_scratch()
    assert not gru.reset_after
    assert torch.allclose(gru(X, H0)[0], loop(cell, X, H0), atol=1e-6)
    back = ConcatGRUCell.from_scratch(gru)
    for (name, a), b in zip(cell.named_parameters(), back.parameters()):
        assert torch.allclose(a, b, atol=1e-12), name


def test_split_cell_from_torch_equals_nn_gru_and_gru_scratch():
    torch.manual_seed(2)
    gru = nn.GRU(3, 5).double()
    X, H0 = torch.randn(6, 4, 3, dtype=torch.double), torch.randn(4, 5, dtype=torch.double)
    expected, _ = gru(X, H0[None])
    cell = SplitGRUCell.from_torch(gru)
    assert torch.allclose(loop(cell, X, H0), expected, atol=1e-6)
    assert torch.allclose(GRUScratch.from_torch(gru)(X, H0)[0], loop(cell, X, H0), atol=1e-6)


def test_split_cell_to_torch_round_trip_and_batch_first():
    torch.manual_seed(3)
    cell = SplitGRUCell(3, 5)
    X = torch.randn(2, 7, 3)
    gru = cell.to_torch(batch_first=True)
    outputs, _ = gru(X)
    assert torch.allclose(outputs, loop(cell, X.transpose(0, 1), torch.zeros(2, 5)).transpose(0, 1), atol=1e-6)
    back = SplitGRUCell.from_torch(gru)
    assert all(torch.equal(a, b) for a, b in zip(cell.parameters(), back.parameters()))


def test_the_two_cells_differ_where_the_reset_is_applied():
    """Same weights, different reset placement: the concat cell (reset before the matmul) is not nn.GRU."""
    torch.manual_seed(4)
    gru = nn.GRU(3, 5)
    concat = ConcatGRUCell(3, 5)
    split = SplitGRUCell.from_torch(gru)
    with torch.no_grad():  # give the concat cell the nn.GRU's weights (biases summed)
        for layer, gate, sign in ((concat.reset_gate, "r", 1), (concat.update_gate, "z", -1), (concat.candidate, "n", 1)):
            x_lin, h_lin = getattr(split, f"x_{gate}"), getattr(split, f"h_{gate}")
            layer.weight.copy_(sign * torch.cat((x_lin.weight, h_lin.weight), dim=1))
            layer.bias.copy_(sign * (x_lin.bias + h_lin.bias))
    x, h = torch.randn(4, 3), torch.randn(4, 5)
    assert not torch.allclose(concat(x, h), split(x, h), atol=1e-4)


@pytest.mark.parametrize("make", [lambda: ConcatGRUCell(3, 5), lambda: SplitGRUCell(3, 5)])
@pytest.mark.parametrize("x, h, message", [
    (torch.zeros(6, 4, 3), torch.zeros(4, 5), r"one time step x of shape \(B, 3\), got \(6, 4, 3\)"),
    (torch.zeros(4, 2), torch.zeros(4, 5), r"\(B, 3\), got \(4, 2\)"),
    (torch.zeros(4, 3), torch.zeros(5), r"state h of shape \(4, 5\) \(batch, num_hiddens\), got \(5,\)"),
    (torch.zeros(4, 3), None, r"state h of shape \(4, 5\) \(batch, num_hiddens\), got NoneType"),
])
def test_cells_reject_wrong_shapes(make, x, h, message):
    with pytest.raises(ValueError, match=message):
        make()(x, h)


@pytest.mark.parametrize("call, error, message", [
    (lambda: ConcatGRUCell.from_scratch(nn.GRU(3, 5)), TypeError, "expects a utils.gru.GRUScratch, got GRU"),
    (lambda: ConcatGRUCell.from_scratch(GRUScratch(3, 5, reset_after=True)), ValueError, "reset_after=True"),
    (lambda: ConcatGRUCell.from_scratch(GRUScratch(3, 5, update_gate=False)), ValueError, "update_gate=False"),
    (lambda: SplitGRUCell.from_torch(GRUScratch(3, 5)), TypeError, "expects a torch.nn.GRU, got GRUScratch"),
    (lambda: SplitGRUCell.from_torch(nn.GRU(3, 5, num_layers=2)), ValueError, "num_layers=2"),
    (lambda: SplitGRUCell.from_torch(nn.GRU(3, 5, bidirectional=True)), ValueError, "bidirectional=True"),
    (lambda: SplitGRUCell.from_torch(nn.GRU(3, 5, bias=False)), ValueError, "bias=False"),
])
def test_conversion_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
