"""The two GRU cells of the seed blog post, written correctly, each with an exact weight conversion to the
course's reference GRUs.

Both cells take one time step: ``x`` of shape ``(B, input_size)`` and ``h`` of shape ``(B, hidden_size)``,
and return the new state ``h`` of shape ``(B, hidden_size)`` (nothing else: the blog's extra
``tanh(next_hidden)`` output is not part of a GRU). :class:`utils.classifier.GRUClassifier` loops a cell
over a sequence.

- :class:`ConcatGRUCell`: three ``nn.Linear`` layers on the concatenation ``[x, h]``, the reset applied to
  ``h`` before the candidate's matmul, and the blog's update convention ``h' = (1 - z) * h + z * h~``
  (``z = 1`` takes the candidate). It is ``GRUScratch(reset_after=False)`` with the update gate's
  pre-activation negated, since ``1 - sigmoid(a) = sigmoid(-a)``: :meth:`ConcatGRUCell.from_scratch` and
  :meth:`ConcatGRUCell.to_scratch` convert the weights.
- :class:`SplitGRUCell`: separate input and hidden linears (each with a bias) for every gate, the reset
  applied after the hidden matmul, and ``h' = (1 - z) * n + z * h``: exactly ``nn.GRU``'s equations, so
  :meth:`SplitGRUCell.from_torch` and :meth:`SplitGRUCell.to_torch` copy the weights one to one.
"""
import torch
from torch import nn

from utils.gru import GRUScratch
from utils.shapes import check_sizes, check_state, check_step_input, check_switches


def _check_step(cell, x, h):
    """Checks shared by both cells: ``x`` (B, input_size), ``h`` (B, hidden_size), both in the dtype and on
    the device of the cell's parameters."""
    name = type(cell).__name__
    like = next(cell.parameters())
    if isinstance(x, torch.Tensor) and x.dim() == 3:
        raise ValueError(f"{name} takes one time step x of shape (B, {cell.input_size}), got {tuple(x.shape)}; "
                         "loop over time with utils.classifier.GRUClassifier")
    B = check_step_input(name, x, cell.input_size, like)
    check_state(name, h, B, cell.hidden_size, like, label="h")


class ConcatGRUCell(nn.Module):
    """The blog's first cell, fixed: linears on ``[x, h]``, update rule ``h' = (1 - z) * h + z * h~``.

    ``r = sigmoid(W_r [x, h] + b_r)``, ``z = sigmoid(W_z [x, h] + b_z)``,
    ``h~ = tanh(W_h [x, r * h] + b_h)``; each ``W`` has shape ``(hidden_size, input_size + hidden_size)``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.reset_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.update_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x, h):
        """One step: ``x`` (B, input_size), ``h`` (B, hidden_size) -> new ``h`` (B, hidden_size)."""
        _check_step(self, x, h)
        xh = torch.cat((x, h), dim=1)
        r = torch.sigmoid(self.reset_gate(xh))
        z = torch.sigmoid(self.update_gate(xh))
        h_tilde = torch.tanh(self.candidate(torch.cat((x, r * h), dim=1)))
        return (1 - z) * h + z * h_tilde

    @classmethod
    def from_scratch(cls, gru: GRUScratch) -> "ConcatGRUCell":
        """The cell with the weights of a ``GRUScratch`` with both gates and ``reset_after=False``; its
        states equal the GRUScratch's (the update gate's weights and bias change sign)."""
        if not isinstance(gru, GRUScratch):
            raise TypeError(f"from_scratch expects a utils.gru.GRUScratch, got {type(gru).__name__}")
        if type(gru) is not GRUScratch:
            raise TypeError(f"from_scratch expects a plain utils.gru.GRUScratch (d2l's gates), got the subclass "
                            f"{type(gru).__name__}, whose gates are computed differently")
        if gru.reset_after or not (gru.reset_gate and gru.update_gate):
            raise ValueError("ConcatGRUCell matches a GRUScratch with reset_gate=True, update_gate=True and "
                             f"reset_after=False; got reset_gate={gru.reset_gate}, "
                             f"update_gate={gru.update_gate}, reset_after={gru.reset_after}")
        cell = cls(gru.num_inputs, gru.num_hiddens).to(device=gru.W_xh.device, dtype=gru.W_xh.dtype)
        with torch.no_grad():
            for layer, (W_x, W_h, b), sign in ((cell.reset_gate, (gru.W_xr, gru.W_hr, gru.b_r), 1),
                                               (cell.update_gate, (gru.W_xz, gru.W_hz, gru.b_z), -1),
                                               (cell.candidate, (gru.W_xh, gru.W_hh, gru.b_h), 1)):
                layer.weight.copy_(sign * torch.cat((W_x, W_h), dim=0).T)
                layer.bias.copy_(sign * b)
        return cell

    def to_scratch(self) -> GRUScratch:
        """A ``GRUScratch(reset_after=False)`` whose states equal this cell's."""
        weight = self.candidate.weight
        gru = GRUScratch(self.input_size, self.hidden_size).to(device=weight.device, dtype=weight.dtype)
        n = self.input_size
        with torch.no_grad():
            for layer, (W_x, W_h, b), sign in ((self.reset_gate, (gru.W_xr, gru.W_hr, gru.b_r), 1),
                                               (self.update_gate, (gru.W_xz, gru.W_hz, gru.b_z), -1),
                                               (self.candidate, (gru.W_xh, gru.W_hh, gru.b_h), 1)):
                W_x.copy_(sign * layer.weight[:, :n].T)
                W_h.copy_(sign * layer.weight[:, n:].T)
                b.copy_(sign * layer.bias)
        return gru


class SplitGRUCell(nn.Module):
    """The blog's second cell, with names that say which gate each linear serves.

    ``r = sigmoid(x_r(x) + h_r(h))``, ``z = sigmoid(x_z(x) + h_z(h))``, ``n = tanh(x_n(x) + r * h_n(h))``,
    ``h' = (1 - z) * n + z * h``; ``x_*`` are ``nn.Linear(input_size, hidden_size)``, ``h_*`` are
    ``nn.Linear(hidden_size, hidden_size)``, all with biases (``nn.GRU``'s equations).
    """

    GATES = ("r", "z", "n")  # the order of the row blocks in nn.GRU's weight_ih_l0 / weight_hh_l0

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        for gate in self.GATES:
            setattr(self, f"x_{gate}", nn.Linear(input_size, hidden_size))
            setattr(self, f"h_{gate}", nn.Linear(hidden_size, hidden_size))

    def forward(self, x, h):
        """One step: ``x`` (B, input_size), ``h`` (B, hidden_size) -> new ``h`` (B, hidden_size)."""
        _check_step(self, x, h)
        r = torch.sigmoid(self.x_r(x) + self.h_r(h))
        z = torch.sigmoid(self.x_z(x) + self.h_z(h))
        n = torch.tanh(self.x_n(x) + r * self.h_n(h))
        return (1 - z) * n + z * h

    @classmethod
    def from_torch(cls, gru: nn.GRU) -> "SplitGRUCell":
        """The cell with the weights of a one-layer, unidirectional ``nn.GRU`` with biases."""
        if not isinstance(gru, nn.GRU):
            raise TypeError(f"from_torch expects a torch.nn.GRU, got {type(gru).__name__}")
        if gru.num_layers != 1 or gru.bidirectional or not gru.bias:
            raise ValueError("SplitGRUCell matches a one-layer, unidirectional nn.GRU with biases; got "
                             f"num_layers={gru.num_layers}, bidirectional={gru.bidirectional}, bias={gru.bias}")
        cell = cls(gru.input_size, gru.hidden_size).to(device=gru.weight_ih_l0.device,
                                                        dtype=gru.weight_ih_l0.dtype)
        with torch.no_grad():
            for mine, theirs in cell._pairs(gru):
                mine.copy_(theirs)
        return cell

    def to_torch(self, *, batch_first: bool = False) -> nn.GRU:
        """A one-layer ``nn.GRU`` whose outputs equal this cell's states."""
        check_switches("SplitGRUCell.to_torch", batch_first=batch_first)
        weight = self.x_n.weight
        gru = nn.GRU(self.input_size, self.hidden_size, batch_first=batch_first).to(device=weight.device,
                                                                                      dtype=weight.dtype)
        with torch.no_grad():
            for mine, theirs in self._pairs(gru):
                theirs.copy_(mine)
        return gru

    def _pairs(self, gru):
        """(this cell's tensor, the matching row block of ``gru``'s tensor) for every parameter."""
        h = self.hidden_size
        for k, gate in enumerate(self.GATES):
            rows = slice(k * h, (k + 1) * h)
            for side, source in (("x", "ih"), ("h", "hh")):
                layer = getattr(self, f"{side}_{gate}")
                yield layer.weight, getattr(gru, f"weight_{source}_l0")[rows]
                yield layer.bias, getattr(gru, f"bias_{source}_l0")[rows]
