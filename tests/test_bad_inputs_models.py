"""Bad input to the models, the gradient code and the ideal-gate code gets the course's own clear error (what was
expected, what came), never a NaN output, a silently wrong answer or a message from deep inside torch."""
import math

import d2l.torch as d2l
import pytest
import torch
from matplotlib import pyplot as plt
from torch import nn

from utils.antisymmetric import AntisymmetricRNN, GatedAntisymmetricRNN
from utils.blog_cells import ConcatGRUCell, SplitGRUCell
from utils.diagrams import draw_gru_step
from utils.fast_gru import FastGRU, HandBackwardGRU
from utils.gate_plots import plot_gate_heatmaps
from utils.gradients import input_gradient_norms
from utils.gru import GRUScratch
from utils.gru_backward import bptt, params, step_backward, step_forward, step_jacobian
from utils.gru_variants import GRUVariant
from utils.ideal_gates import ideal_gate_schedule, perturbation_effects
from utils.initialisation import bias_update_gate
from utils.lstm import LSTM, LSTMScratch
from utils.mingru import MinGRU

T, B, NUM_INPUTS, NUM_HIDDENS = 5, 2, 3, 4
LAYERS_WITH_SIGMA = {"GRUScratch": GRUScratch, "GRUVariant": GRUVariant, "FastGRU": FastGRU, "MinGRU": MinGRU,
                     "LSTMScratch": LSTMScratch}


def inputs(dtype=torch.float32):
    return torch.randn(T, B, NUM_INPUTS, dtype=dtype)


# --- hyperparameters -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [math.nan, math.inf, -0.1, "0.1", True], ids=repr)
@pytest.mark.parametrize("name", LAYERS_WITH_SIGMA)
def test_every_layer_refuses_a_sigma_that_is_not_a_finite_number(name, sigma):
    with pytest.raises(ValueError, match=rf"{name} expects sigma to be a finite number >= 0, got "
                                         rf"{repr(sigma).replace('.', '[.]')}"):
        LAYERS_WITH_SIGMA[name](NUM_INPUTS, NUM_HIDDENS, sigma=sigma)


@pytest.mark.parametrize("name", LAYERS_WITH_SIGMA)
def test_a_zero_sigma_still_gives_zero_weights(name):
    model = LAYERS_WITH_SIGMA[name](NUM_INPUTS, NUM_HIDDENS, sigma=0)
    assert all((p == 0).all() for p in model.parameters())


@pytest.mark.parametrize("parallel", ["no", 0, None])
def test_min_gru_parallel_must_be_a_bool(parallel):
    with pytest.raises(TypeError, match=rf"MinGRU expects parallel to be True or False, got {parallel!r}"):
        MinGRU(NUM_INPUTS, NUM_HIDDENS)(inputs(), parallel=parallel)


@pytest.mark.parametrize("mode", [["addition"], None, 1])
@pytest.mark.parametrize("cls", [AntisymmetricRNN, GatedAntisymmetricRNN], ids=lambda c: c.__name__)
def test_an_integration_mode_that_is_not_a_string_is_named(cls, mode):
    with pytest.raises(ValueError, match=rf"integration_mode must be one of .*, got {repr(mode).replace('[', '.')}"):
        cls(NUM_INPUTS, NUM_HIDDENS, integration_mode=mode)


# --- forced gates ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("Z, got", [(2.0, "2.0"), (-0.5, "-0.5"), (math.nan, "nan"),
                                    (torch.tensor(2.0), "2.0"), (torch.full((B, NUM_HIDDENS), math.nan), "nan")],
                         ids=["2.0", "-0.5", "nan", "tensor 2.0", "tensor nan"])
@pytest.mark.parametrize("cls", [GRUScratch, GRUVariant], ids=lambda c: c.__name__)
def test_a_forced_gate_outside_0_1_is_refused(cls, Z, got):
    X, H = torch.randn(B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS)
    with pytest.raises(ValueError, match=rf"step expects forced Z to hold gate values, finite numbers in \[0, 1\] "
                                         rf".*, got {got}"):
        cls(NUM_INPUTS, NUM_HIDDENS).step(X, H, Z=Z)


def test_a_forced_sequence_of_gates_outside_0_1_is_refused_before_any_step():
    R = torch.ones(T, 1, 1)
    R[3] = 1.5
    with pytest.raises(ValueError, match=r"GRUScratch expects forced R to hold gate values.*, got 1.5"):
        GRUScratch(NUM_INPUTS, NUM_HIDDENS)(inputs(), R=R)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bool, torch.int64], ids=str)
def test_a_forced_gate_of_another_dtype_is_refused(dtype):
    X, H = torch.randn(B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS)
    with pytest.raises(TypeError, match=rf"GRUScratch.step expects forced Z of dtype torch.float32 \(its "
                                        rf"parameters' dtype\), got {dtype}: convert forced Z with .to\(torch.float32\)"):
        GRUScratch(NUM_INPUTS, NUM_HIDDENS).step(X, H, Z=torch.ones(B, NUM_HIDDENS).to(dtype))


def test_a_forced_gate_on_another_device_is_refused():
    X, H = torch.randn(B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS)
    with pytest.raises(ValueError, match=r"forced R on cpu \(its parameters' device\), got meta"):
        GRUScratch(NUM_INPUTS, NUM_HIDDENS).step(X, H, R=torch.ones(B, NUM_HIDDENS, device="meta"))


def test_gate_values_at_the_ends_of_0_1_still_work():
    model = GRUScratch(NUM_INPUTS, NUM_HIDDENS)
    X, H = torch.randn(B, NUM_INPUTS), torch.randn(B, NUM_HIDDENS)
    assert torch.equal(model.step(X, H, Z=1).H, H)
    step = model.step(X, H, Z=torch.zeros(1), R=0.0)
    assert torch.equal(step.H, step.H_tilde)


# --- states ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("state, error, message", [
    ((torch.zeros(B, NUM_HIDDENS),) * 2, ValueError, r"LSTM expects the state H of shape \(1, 2, 4\), got \(2, 4\)"),
    ((torch.zeros(1, B, NUM_HIDDENS, device="meta"),) * 2, ValueError, r"state H on cpu .*, got meta"),
    ((torch.zeros(1, B, NUM_HIDDENS, dtype=torch.float64),) * 2, TypeError,
     r"state H of dtype torch.float32 .*, got torch.float64"),
    ([torch.zeros(1, B, NUM_HIDDENS)] * 2, ValueError, r"state \(H, C\) of two \(1, 2, 4\) tensors, got list of 2: "
                                                       r"pass a tuple \(H, C\)"),
    ((torch.zeros(1, B, NUM_HIDDENS), torch.zeros(1, B, 3)), ValueError, r"state C of shape \(1, 2, 4\), got "
                                                                         r"\(1, 2, 3\)"),
], ids=["2-D", "meta", "float64", "list", "C"])
def test_the_concise_lstm_checks_its_state(state, error, message):
    with pytest.raises(error, match=message):
        LSTM(NUM_INPUTS, NUM_HIDDENS)(inputs(), state)


def test_the_concise_lstm_still_takes_its_own_state():
    model = LSTM(NUM_INPUTS, NUM_HIDDENS)
    _, state = model(inputs())
    outputs, _ = model(inputs(), state)
    assert outputs.shape == (T, B, NUM_HIDDENS)


# --- the hand-written backward ---------------------------------------------------------------------------

def hand_arguments(**changes):
    gru = FastGRU(NUM_INPUTS, NUM_HIDDENS, "backward")
    arguments = dict(inputs=inputs(), H0=torch.zeros(B, NUM_HIDDENS), W_x=gru.W_x, b=gru.b, W_h=gru.W_h,
                     b_hh=gru.b_hh, compiled=False)
    return tuple({**arguments, **changes}.values())


@pytest.mark.parametrize("changes, error, message", [
    (dict(b_hh=None), ValueError, r"HandBackwardGRU expects b_hh of shape \(4,\), got NoneType"),
    (dict(H0=torch.zeros(B, NUM_HIDDENS + 1)), ValueError, r"state H0 of shape \(2, 4\) .*, got \(2, 5\)"),
    (dict(inputs=torch.randn(T, B, NUM_INPUTS + 1)), ValueError, r"inputs of shape \(T, B, 3\), got \(5, 2, 4\)"),
    (dict(inputs=inputs(torch.float64)), TypeError, r"inputs of dtype torch.float32 .*, got torch.float64"),
    (dict(W_h=torch.zeros(NUM_HIDDENS, NUM_HIDDENS)), ValueError, r"W_h of shape \(4, 12\), got \(4, 4\)"),
    (dict(W_x=torch.zeros(12)), ValueError, r"W_x to be a matrix .*, got \(12,\)"),
    (dict(b=torch.zeros(12, dtype=torch.float64)), TypeError, r"b of dtype torch.float32 .*, got torch.float64"),
    (dict(compiled="no"), TypeError, r"compiled to be True or False, got 'no'"),
], ids=["b_hh None", "H0", "inputs", "inputs dtype", "W_h", "W_x", "b dtype", "compiled"])
def test_hand_backward_gru_checks_its_arguments(changes, error, message):
    with pytest.raises(error, match=message):
        HandBackwardGRU.apply(*hand_arguments(**changes))


# --- the antisymmetric step's recurrent matrix -----------------------------------------------------------

@pytest.mark.parametrize("A, error, message", [
    (torch.zeros(3, 3), ValueError, r"AntisymmetricRNN.step expects A \(the recurrent matrix\) of shape \(4, 4\), "
                                    r"got \(3, 3\)"),
    ([[0.0]], ValueError, r"A \(the recurrent matrix\) of shape \(4, 4\), got list"),
    (torch.zeros(4, 4, dtype=torch.float64), TypeError, r"A \(the recurrent matrix\) of dtype torch.float32"),
])
def test_the_antisymmetric_step_checks_a_given_recurrent_matrix(A, error, message):
    with pytest.raises(error, match=message):
        AntisymmetricRNN(NUM_INPUTS, NUM_HIDDENS).step(torch.randn(B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS), A)


# --- ideal gates -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, "float32"], ids=str)
def test_the_schedule_needs_a_floating_dtype(dtype):
    with pytest.raises(TypeError, match=rf"ideal_gate_schedule expects a floating-point dtype .*, got {dtype}"):
        ideal_gate_schedule(5, 2, dtype=dtype)


@pytest.mark.parametrize("values, got", [(torch.rand(3, 3), r"\(3, 3\)"), (torch.rand(4, 2, 3), r"\(4, 2, 3\)"),
                                         ("0.5", "str")])
def test_filled_refuses_values_of_the_wrong_shape(values, got):
    with pytest.raises(ValueError, match=rf"filled expects values_Z to be a number or a tensor of shape \(5, B, h\), "
                                         rf"one entry per step, got {got}"):
        ideal_gate_schedule(5, 2).filled(values, 0.5)


def test_filled_takes_numbers_and_per_step_tensors():
    Z, R = ideal_gate_schedule(5, 2).filled(0.25, torch.full((5, 1, 1), 0.75, dtype=torch.float64))
    assert Z.flatten().tolist() == [0.25, 0.25, 0.0, 1.0, 1.0]
    assert R.flatten().tolist() == [0.75, 0.75, 0.0, 0.75, 0.75]


@pytest.mark.parametrize("scale", [math.inf, math.nan, True, "1"], ids=repr)
def test_perturbation_effects_refuse_a_scale_that_is_not_finite(scale):
    gru = GRUScratch(NUM_INPUTS, NUM_HIDDENS).double()
    with pytest.raises(ValueError, match=rf"scale must be positive and finite .*, got {scale!r}"):
        perturbation_effects(gru, inputs(torch.float64), scale=scale)


def test_perturbation_effects_need_a_gru_scratch():
    with pytest.raises(TypeError, match="perturbation_effects expects a utils.gru.GRUScratch .*, got GRU"):
        perturbation_effects(nn.GRU(NUM_INPUTS, NUM_HIDDENS), inputs())


@pytest.mark.parametrize("forced", ["Z", "ZR"])
def test_a_float64_schedule_on_a_float32_gru_names_the_forced_gate(forced):
    schedule = ideal_gate_schedule(T, 2)
    gates = {"Z": schedule.Z, "R": schedule.R} if forced == "ZR" else {"Z": schedule.Z}
    with pytest.raises(TypeError, match=r"GRUScratch expects forced Z of dtype torch.float32 \(its parameters' "
                                        r"dtype\), got torch.float64"):
        GRUScratch(NUM_INPUTS, NUM_HIDDENS)(inputs(), **gates)


def test_a_schedule_in_the_grus_dtype_works():
    schedule = ideal_gate_schedule(T, 2, dtype=torch.float32)
    effects = perturbation_effects(GRUScratch(NUM_INPUTS, NUM_HIDDENS, sigma=0.5), inputs(), Z=schedule.Z,
                                   R=schedule.R)
    assert (effects[:2, 2:] == 0).all() and (effects[2, 2:] > 0).all()


# --- input gradient norms --------------------------------------------------------------------------------

@pytest.mark.parametrize("rnn, X, error, message", [
    (nn.GRU(NUM_INPUTS, NUM_HIDDENS, batch_first=True), inputs(), ValueError,
     "got a GRU with batch_first=True, which would take the batch axis for time"),
    (nn.GRU(NUM_INPUTS, NUM_HIDDENS).to("meta"), inputs().to("meta"), ValueError, "got a 'meta' tensor"),
    (nn.GRU(NUM_INPUTS, NUM_HIDDENS), inputs().long(), TypeError, "floating-point inputs .*, got torch.int64"),
    (nn.Linear(NUM_INPUTS, NUM_HIDDENS), inputs(), TypeError,
     r"rnn to return \(outputs, state\) with outputs of shape \(5, 2, num_hiddens\).*got Tensor of shape \(5, 2, 4\)"),
    (None, inputs(), TypeError, "rnn to be a recurrent layer .*, got NoneType"),
    (nn.GRU(NUM_INPUTS, NUM_HIDDENS), torch.zeros(T, 0, NUM_INPUTS), ValueError, r"empty batch \(B = 0\)"),
], ids=["batch_first", "meta", "int", "Linear", "None", "B=0"])
def test_input_gradient_norms_refuse_what_they_cannot_measure(rnn, X, error, message):
    with pytest.raises(error, match=message):
        input_gradient_norms(rnn, X)


def test_input_gradient_norms_still_read_d2ls_list_of_outputs():
    torch.manual_seed(0)
    rnn = d2l.RNNScratch(NUM_INPUTS, NUM_HIDDENS, sigma=0.5)
    assert input_gradient_norms(rnn, inputs()).shape == (T,)


# --- backpropagation by hand -----------------------------------------------------------------------------

def bptt_arguments(gru, steps=T):
    return params(gru), inputs()[:steps], torch.zeros(B, NUM_HIDDENS), torch.ones(steps, B, NUM_HIDDENS)


@pytest.mark.parametrize("truncate", [-1, 0, 2.5, True, "3"], ids=repr)
def test_bptt_truncate_must_be_a_positive_int(truncate):
    with pytest.raises(ValueError, match=rf"bptt expects truncate to be a positive int, got "
                                         rf"{repr(truncate).replace('.', '[.]')}"):
        bptt(*bptt_arguments(GRUScratch(NUM_INPUTS, NUM_HIDDENS)), reset_after=False, truncate=truncate)


def test_bptt_refuses_an_empty_sequence():
    with pytest.raises(ValueError, match=r"bptt got an empty sequence \(T = 0\)"):
        bptt(*bptt_arguments(GRUScratch(NUM_INPUTS, NUM_HIDDENS), steps=0), reset_after=False)


def test_bptt_names_a_missing_parameter():
    p, X, H0, dY = bptt_arguments(GRUScratch(NUM_INPUTS, NUM_HIDDENS))
    with pytest.raises(ValueError, match=r"bptt expects p, a dict with the parameters W_xz, .*, b_h, b_hh "
                                         r"\(params\(gru\) makes it\)"):
        bptt(p, X, H0, dY, reset_after=True)


@pytest.mark.parametrize("change, message", [
    (lambda a: (a[0], a[1], a[2][:1], a[3]), r"state H0 of shape \(2, 4\) .*, got \(1, 4\)"),
    (lambda a: (a[0], a[1], a[2], a[3][:, :1]), r"grad_outputs of shape \(5, 2, 4\), got \(5, 1, 4\)"),
    (lambda a: ({**a[0], "W_hh": a[0]["W_hh"][:3]}, *a[1:]), r"W_hh of shape \(4, 4\), got \(3, 4\)"),
    (lambda a: (a[0], a[1].double(), *a[2:]), r"inputs of dtype torch.float32 .*, got torch.float64"),
], ids=["H0", "grad_outputs", "W_hh", "dtype"])
def test_bptt_checks_shapes_and_dtypes(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bptt(*change(bptt_arguments(GRUScratch(NUM_INPUTS, NUM_HIDDENS))), reset_after=False)


def test_the_step_functions_check_their_arguments():
    gru = GRUScratch(NUM_INPUTS, NUM_HIDDENS, reset_after=True)
    p, X, H = params(gru), torch.randn(B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS)
    with pytest.raises(ValueError, match=r"step_forward expects one time step X of shape \(B, 3\), got \(5, 2, 3\); bptt runs"):
        step_forward(p, inputs(), H, reset_after=True)
    with pytest.raises(TypeError, match="step_forward expects reset_after to be True or False, got 'yes'"):
        step_forward(p, X, H, reset_after="yes")
    cache = step_forward(p, X, H, reset_after=True)
    with pytest.raises(ValueError, match=r"step_backward expects dH_new of shape \(2, 4\), got \(4,\)"):
        step_backward(p, cache, torch.ones(NUM_HIDDENS), reset_after=True)
    with pytest.raises(ValueError, match="step_jacobian expects p, a dict with the parameters"):
        step_jacobian({k: v for k, v in p.items() if k != "b_hh"}, cache, reset_after=True)


@pytest.mark.parametrize("gru, error, message", [
    (GRUVariant(NUM_INPUTS, NUM_HIDDENS), TypeError, "params expects a plain utils.gru.GRUScratch .*, got GRUVariant"),
    (GRUScratch(NUM_INPUTS, NUM_HIDDENS, update_gate=False), ValueError, "both gates, got reset_gate=True, "
                                                                         "update_gate=False"),
])
def test_params_needs_d2ls_gru(gru, error, message):
    with pytest.raises(error, match=message):
        params(gru)


# --- initialisation, cells and figures -------------------------------------------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf], ids=repr)
def test_bias_update_gate_refuses_a_value_that_is_not_finite(value):
    with pytest.raises(ValueError, match=rf"bias_update_gate expects value to be a finite number, got {value!r}"):
        bias_update_gate(GRUScratch(NUM_INPUTS, NUM_HIDDENS), value)


@pytest.mark.parametrize("variant", ["gru2", "mgu"])
def test_bias_update_gate_names_a_variant_without_an_update_gate_bias(variant):
    with pytest.raises(ValueError, match="this GRUVariant has no update-gate bias b_z to set"):
        bias_update_gate(GRUVariant(NUM_INPUTS, NUM_HIDDENS, variant=variant), 2.0)


def test_concat_cell_from_scratch_refuses_a_gru_variant():
    with pytest.raises(TypeError, match="got the subclass GRUVariant, whose gates are computed differently"):
        ConcatGRUCell.from_scratch(GRUVariant(NUM_INPUTS, NUM_HIDDENS))


def test_split_cell_to_torch_needs_a_bool_batch_first():
    with pytest.raises(TypeError, match="batch_first to be True or False, got 'no'"):
        SplitGRUCell(NUM_INPUTS, NUM_HIDDENS).to_torch(batch_first="no")


def test_the_diagram_needs_a_bool_reset_after():
    with pytest.raises(TypeError, match="reset_after to be True or False, got 'no'"):
        draw_gru_step("full", reset_after="no")


@pytest.mark.parametrize("kwargs, message", [
    (dict(units=[1.5]), r"units must be indices in \[0, 4\), got \[1.5\]"),
    (dict(units=[True]), r"units must be indices in \[0, 4\), got \[True\]"),
    (dict(width_per_char=math.nan), "width_per_char to be a positive finite number, got nan"),
])
def test_gate_heatmaps_refuse_float_units_and_a_bad_width(kwargs, message):
    gates = GRUScratch(NUM_INPUTS, NUM_HIDDENS).gates(torch.randn(6, 1, NUM_INPUTS))
    with pytest.raises(ValueError, match=message):
        plot_gate_heatmaps("ab cd ", gates, **kwargs)
    plt.close("all")


def test_a_head_narrower_or_wider_than_the_layer_and_an_empty_batch_are_refused():
    from utils.classifier import GRUClassifier
    from utils.blog_cells import SplitGRUCell
    from utils.sequence_models import LastStepModel
    with pytest.raises(ValueError, match="head reads num_hiddens=5 features, but the GRUScratch outputs 4"):
        LastStepModel(GRUScratch(3, 4), 5, 2)
    assert LastStepModel(GRUScratch(3, 4), 4, 2)(torch.zeros(2, 6, 3)).shape == (2, 2)
    with pytest.raises(ValueError, match="GRUClassifier got an empty batch \\(B = 0\\)"):
        GRUClassifier(SplitGRUCell(3, 5), 4)(torch.zeros(0, 6, 3))
