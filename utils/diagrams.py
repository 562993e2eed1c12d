"""The course's own GRU diagrams: one step of a GRU drawn as a data-flow graph with matplotlib.

Each node is a value of the step (inputs, gates, candidate, new state) with the formula that computes it;
an arrow means "is used to compute". ``stage`` draws the lesson's three steps (gates, candidate, full
cell) by fading the nodes that are not yet introduced; ``reset_after`` draws PyTorch's / cuDNN's variant,
where the reset gate multiplies the result of the hidden matmul instead of the state.
"""
from dataclasses import dataclass

from matplotlib import pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from utils.shapes import check_switches

STAGES = ("gates", "candidate", "full")
COLORS = {"input": "#e8e8e8", "sigmoid": "#a6cee3", "tanh": "#fdbf6f", "op": "#ffffff", "output": "#b2df8a"}


@dataclass(frozen=True)
class Node:
    """One value of the step: where it is drawn, its text (matplotlib mathtext), its kind (a key of
    ``COLORS``), the stage that introduces it, and the names of the nodes it is computed from."""

    x: float
    y: float
    text: str
    kind: str
    stage: str
    inputs: tuple = ()


def gru_nodes(reset_after: bool = False) -> dict:
    """The nodes of one GRU step in d2l's notation (``H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t``)."""
    check_switches("gru_nodes", reset_after=reset_after)
    nodes = {
        "H": Node(0.0, 4.3, r"$\mathbf{H}_{t-1}$", "input", "gates"),
        "X": Node(0.0, 2.3, r"$\mathbf{X}_t$", "input", "gates"),
        "R": Node(2.4, 3.3, "reset gate\n" r"$\mathbf{R}_t=\sigma(\ldots)$", "sigmoid", "gates", ("X", "H")),
        "Z": Node(2.4, 1.3, "update gate\n" r"$\mathbf{Z}_t=\sigma(\ldots)$", "sigmoid", "gates", ("X", "H")),
        "1-Z": Node(6.6, 0.6, r"$1-\mathbf{Z}_t$", "op", "full", ("Z",)),
        "ZH": Node(9.0, 4.3, r"$\mathbf{Z}_t\odot\mathbf{H}_{t-1}$", "op", "full", ("H", "Z")),
        "(1-Z)H~": Node(9.0, 1.6, r"$(1-\mathbf{Z}_t)\odot\tilde{\mathbf{H}}_t$", "op", "full", ("1-Z", "H~")),
        "H_t": Node(11.0, 2.95, "new state\n" r"$\mathbf{H}_t$ = sum", "output", "full", ("ZH", "(1-Z)H~")),
    }
    candidate = "candidate\n" r"$\tilde{\mathbf{H}}_t=\tanh(\ldots)$"
    if reset_after:
        nodes["HW"] = Node(4.8, 4.3, r"$\mathbf{H}_{t-1}\mathbf{W}_{hh}+\mathbf{b}_{hh}$", "op", "candidate", ("H",))
        nodes["RHW"] = Node(6.3, 3.3, r"$\mathbf{R}_t\odot(\ldots)$", "op", "candidate", ("R", "HW"))
        nodes["H~"] = Node(6.9, 2.3, candidate, "tanh", "candidate", ("X", "RHW"))
    else:
        nodes["RH"] = Node(4.8, 4.3, r"$\mathbf{R}_t\odot\mathbf{H}_{t-1}$", "op", "candidate", ("R", "H"))
        nodes["RHW"] = Node(6.3, 3.3, r"$(\mathbf{R}_t\odot\mathbf{H}_{t-1})\mathbf{W}_{hh}$", "op",
                            "candidate", ("RH",))
        nodes["H~"] = Node(6.9, 2.3, candidate, "tanh", "candidate", ("X", "RHW"))
    return nodes


# Edges drawn as arcs (matplotlib's arc3 ``rad``) so that they pass around the boxes in their way.
BENDS = {("H", "ZH"): -0.12, ("Z", "ZH"): -0.2}


def draw_gru_step(stage: str = "full", *, reset_after: bool = False, ax=None, title=None):
    """Draw one GRU step up to ``stage`` (``'gates'``, ``'candidate'`` or ``'full'``); return the figure.

    Nodes introduced after ``stage`` are drawn faded, so the three stages read as one growing picture.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    nodes = gru_nodes(reset_after)
    if ax is None:
        fig, ax = plt.subplots(figsize=(11, 4.2))
    else:
        fig = ax.figure
    shown = set(STAGES[:STAGES.index(stage) + 1])
    boxes = {}
    for name, node in nodes.items():
        alpha = 1.0 if node.stage in shown else 0.15
        boxes[name] = ax.text(node.x, node.y, node.text, ha="center", va="center", fontsize=9, alpha=alpha,
                              bbox=dict(boxstyle="round,pad=0.4", facecolor=COLORS[node.kind],
                                        edgecolor="black", alpha=alpha))
    for name, node in nodes.items():
        for source in node.inputs:
            alpha = 1.0 if node.stage in shown else 0.15
            ax.add_patch(FancyArrowPatch(posA=(nodes[source].x, nodes[source].y), posB=(node.x, node.y),
                                         patchA=boxes[source].get_bbox_patch(),
                                         patchB=boxes[name].get_bbox_patch(), arrowstyle="-|>",
                                         mutation_scale=12, color="black", alpha=alpha, lw=1.0,
                                         connectionstyle=f"arc3,rad={BENDS.get((source, name), 0.0)}",
                                         zorder=4))  # drawn after the boxes, so it is clipped at their edges
    legend = [FancyBboxPatch((0, 0), 1, 1, facecolor=COLORS[k], edgecolor="black", label=label)
              for k, label in (("sigmoid", "fully connected + sigmoid"), ("tanh", "fully connected + tanh"),
                               ("op", "elementwise / matmul"), ("output", "output"))]
    ax.legend(handles=legend, loc="lower center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8,
              frameon=False)
    ax.set_xlim(-0.6, 11.8)
    ax.set_ylim(0.2, 5.0)
    ax.axis("off")
    if title is not None:
        ax.set_title(title)
    return fig
