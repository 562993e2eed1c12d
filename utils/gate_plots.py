"""Heatmaps of a GRU's gates along a text, one column per character: where the model keeps its state
(update gate ``Z`` near 1 in d2l's convention) and where it resets it (reset gate ``R`` near 0)."""
import operator

import numpy as np
import torch
from matplotlib import pyplot as plt

from utils.shapes import check_positive_numbers

GATE_TITLES = {"Z": "update gate $Z_t$ (1 = keep the old state)",
               "R": "reset gate $R_t$ (0 = ignore the old state in the candidate)",
               "H": "hidden state $H_t$", "H_tilde": r"candidate $\tilde{H}_t$"}


def shown_character(c: str) -> str:
    """A character as a tick label: a space is drawn as an open box, so that it is visible."""
    return "\u2423" if c == " " else c


def _unit_indices(units, num_hiddens: int) -> list[int]:
    """``units`` as a list of ints in ``[0, num_hiddens)`` (all units, in order, when None); a float or a bool is
    refused, not rounded or read as 0 or 1."""
    if units is None:
        return list(range(num_hiddens))
    units = list(units)
    try:
        indices = [operator.index(u) for u in units if not isinstance(u, bool)]
    except TypeError:
        indices = []
    if not units or len(indices) != len(units) or any(not 0 <= u < num_hiddens for u in indices):
        raise ValueError(f"units must be indices in [0, {num_hiddens}), got {units}")
    return indices


def plot_gate_heatmaps(text: str, gates: dict, names=("Z", "R"), *, units=None, cmap="viridis",
                       width_per_char=0.22):
    """One heatmap per gate in ``names``: rows are hidden units, columns are the characters of ``text``.

    ``gates`` maps a name to a tensor or array of shape ``(T, num_hiddens)`` or ``(T, 1, num_hiddens)``
    with ``T == len(text)`` (e.g. what ``GRUScratch.gates`` returns for a batch of one sequence); values of
    ``Z`` and ``R`` lie in (0, 1), so they share one colour scale from 0 to 1. ``units`` (a sequence of
    hidden-unit indices) selects and orders the rows, e.g. sorted by some statistic; default: all, in order.
    Returns the figure.
    """
    check_positive_numbers("plot_gate_heatmaps", width_per_char=width_per_char)
    missing = [name for name in names if name not in gates]
    if missing:
        raise ValueError(f"no gate {missing[0]!r} in gates; it has {sorted(gates)}")
    values = {}
    for name in names:
        value = gates[name].detach().cpu().numpy() if isinstance(gates[name], torch.Tensor) else np.asarray(gates[name])
        if value.ndim == 3 and value.shape[1] == 1:
            value = value[:, 0]
        if value.ndim != 2 or value.shape[0] != len(text):
            raise ValueError(f"gate {name!r} must have shape ({len(text)}, num_hiddens) (one row per character "
                             f"of text), got {value.shape}")
        values[name] = value
    num_hiddens = next(iter(values.values())).shape[1] if values else 0
    units = _unit_indices(units, num_hiddens)
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6.0, width_per_char * len(text)), 2.2 * len(names) + 0.6),
                             squeeze=False, constrained_layout=True)
    for ax, name in zip(axes[:, 0], names):
        bounded = name in ("Z", "R")
        image = ax.imshow(values[name][:, units].T, aspect="auto", cmap=cmap, interpolation="nearest",
                          vmin=0.0 if bounded else None, vmax=1.0 if bounded else None)
        ax.set_xticks(range(len(text)), [shown_character(c) for c in text], fontsize=8, family="monospace")
        ax.set_ylabel("hidden unit")
        ticks = range(0, len(units), max(1, len(units) // 8))
        ax.set_yticks(list(ticks), [str(units[i]) for i in ticks])
        ax.set_title(GATE_TITLES.get(name, name), fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    return fig
