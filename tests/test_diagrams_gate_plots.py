"""The GRU diagram and the gate heatmaps: what they draw, and their error paths."""
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from utils.diagrams import STAGES, draw_gru_step, gru_nodes
from utils.gate_plots import plot_gate_heatmaps, shown_character
from utils.gru import GRUScratch

matplotlib.use("Agg")


def drawn_texts(fig):
    return {t.get_text(): t.get_alpha() for t in fig.axes[0].texts}


@pytest.mark.parametrize("reset_after", [False, True])
def test_every_node_input_is_a_node_and_the_graph_ends_in_the_new_state(reset_after):
    nodes = gru_nodes(reset_after)
    assert all(source in nodes for node in nodes.values() for source in node.inputs)
    used = {source for node in nodes.values() for source in node.inputs}
    assert set(nodes) - used == {"H_t"}  # every value but the output feeds another one
    assert {"X", "H"} <= used and not nodes["X"].inputs and not nodes["H"].inputs


def test_reset_before_multiplies_the_state_and_reset_after_the_matmul():
    before, after = gru_nodes(False), gru_nodes(True)
    assert before["RH"].inputs == ("R", "H") and before["RHW"].inputs == ("RH",)
    assert after["HW"].inputs == ("H",) and after["RHW"].inputs == ("R", "HW")


@pytest.mark.parametrize("stage", STAGES)
def test_stages_fade_the_nodes_not_yet_introduced(stage):
    fig = draw_gru_step(stage)
    nodes = gru_nodes()
    alphas = drawn_texts(fig)
    assert len(alphas) == len(nodes)
    shown = set(STAGES[:STAGES.index(stage) + 1])
    for node in nodes.values():
        assert alphas[node.text] == (1.0 if node.stage in shown else 0.15)
    plt.close(fig)


def test_draw_gru_step_rejects_an_unknown_stage():
    with pytest.raises(ValueError, match=r"stage must be one of \('gates', 'candidate', 'full'\), got 'all'"):
        draw_gru_step("all")


def test_gate_heatmaps_draw_one_panel_per_gate_with_the_text_as_ticks():
    gates = GRUScratch(3, 4).gates(torch.randn(6, 1, 3))
    fig = plot_gate_heatmaps("ab cd ", gates)
    images = [ax for ax in fig.axes if ax.images and ax.get_ylabel() == "hidden unit"]
    assert len(images) == 2
    for ax, name in zip(images, ("Z", "R")):
        np.testing.assert_array_equal(ax.images[0].get_array(), gates[name][:, 0].detach().numpy().T)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "\u2423", "c", "d", "\u2423"]
        assert ax.images[0].get_clim() == (0.0, 1.0)
    plt.close(fig)
    assert shown_character(" ") == "\u2423" and shown_character("x") == "x"


def test_gate_heatmaps_reject_a_missing_gate_and_a_text_of_the_wrong_length():
    gates = GRUScratch(3, 4, reset_gate=False).gates(torch.randn(6, 1, 3))
    with pytest.raises(ValueError, match=r"no gate 'R' in gates; it has \['H', 'H_tilde', 'Z'\]"):
        plot_gate_heatmaps("ab cd ", gates)
    with pytest.raises(ValueError, match=r"shape \(5, num_hiddens\).*got \(6, 1, 4\)|got \(6, 4\)"):
        plot_gate_heatmaps("ab cd", gates, names=("Z",))


def test_gate_heatmaps_select_and_order_units():
    gates = GRUScratch(3, 4).gates(torch.randn(6, 1, 3))
    fig = plot_gate_heatmaps("ab cd ", gates, names=("Z",), units=[3, 1])
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), gates["Z"][:, 0, [3, 1]].detach().numpy().T)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"units must be indices in \[0, 4\), got \[4\]"):
        plot_gate_heatmaps("ab cd ", gates, units=[4])
