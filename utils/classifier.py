"""``GRUClassifier``: a one-step recurrent cell looped over a sequence, classified from the last time step.

This is the classifier the seed blog post meant to write. Its version called the cell once (no loop over
time), unpacked the cell's results in the wrong order and took ``out[-1, :]``, the state of the last
*example of the batch*, so every example received the same prediction. Here the cell runs over every time
step and each example is classified from its own state after the last step.

Inputs are batch-first, ``(B, T, input_size)``, like :class:`utils.tasks.SequenceTask`, so the model trains
with :func:`utils.sequence_models.train_on_task`.
"""
import torch
from torch import nn

from utils.shapes import check_sizes, check_state, check_tensor_like


class GRUClassifier(nn.Module):
    """``cell`` looped over time, then ``nn.Linear(cell.hidden_size, num_classes)`` on the last state.

    ``cell`` is any module with ``input_size`` and ``hidden_size`` attributes whose ``forward(x, h)`` maps
    ``x`` of shape ``(B, input_size)`` and ``h`` of shape ``(B, hidden_size)`` to the new ``h``
    (:class:`utils.blog_cells.ConcatGRUCell`, :class:`utils.blog_cells.SplitGRUCell`).
    """

    def __init__(self, cell: nn.Module, num_classes: int):
        super().__init__()
        missing = [name for name in ("input_size", "hidden_size") if not hasattr(cell, name)]
        if missing:
            raise TypeError(f"GRUClassifier needs a cell with input_size and hidden_size attributes; "
                            f"{type(cell).__name__} lacks {', '.join(missing)}")
        check_sizes("GRUClassifier", num_classes=num_classes)
        if num_classes < 2:
            raise ValueError(f"GRUClassifier expects num_classes to be at least 2, got {num_classes}")
        self.cell = cell
        self.head = nn.Linear(cell.hidden_size, num_classes)

    def states(self, X, h0=None):
        """The state after every step: ``X`` of shape ``(B, T, input_size)``, ``h0`` of shape
        ``(B, hidden_size)`` or None for zeros; returns ``(B, T, hidden_size)``."""
        expected = f"(B, T, {self.cell.input_size})"
        if not isinstance(X, torch.Tensor) or X.dim() != 3 or X.shape[-1] != self.cell.input_size:
            got = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
            raise ValueError(f"GRUClassifier expects batch-first inputs of shape {expected}, got {got}")
        B, T = X.shape[0], X.shape[1]
        if T == 0 or B == 0:
            raise ValueError(f"GRUClassifier got an empty {'sequence (T = 0)' if T == 0 else 'batch (B = 0)'}")
        like = next(self.head.parameters())
        check_tensor_like("GRUClassifier", "X", X, like)
        h = X.new_zeros(B, self.cell.hidden_size) if h0 is None else check_state(
            "GRUClassifier", h0, B, self.cell.hidden_size, like, label="h0")
        states = []
        for t in range(T):
            h = self.cell(X[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, X, h0=None):
        """Class scores (logits) of shape ``(B, num_classes)`` from the state after the last step."""
        return self.head(self.states(X, h0)[:, -1])
