"""Both antisymmetric cells against a NumPy transcription of the documented equations, for every keyword."""
import inspect
import itertools
import math

import numpy as np
import pytest
import torch

from utils.antisymmetric import AntisymmetricRNN, GatedAntisymmetricRNN, glorot_uniform_
from utils.sequence_models import LastStepModel

CELLS = (AntisymmetricRNN, GatedAntisymmetricRNN)
DOCUMENTED_DEFAULTS = {"epsilon": 1.0, "gamma": 0.0, "bias": True, "recurrent_bias": True,
                       "independent_recurrence": False, "integration_mode": "addition",
                       "init_kernel": glorot_uniform_, "init_recurrent_kernel": glorot_uniform_}
KEYWORD_GRID = list(itertools.product([1.0, 0.3], [0.0, 0.5], [True, False], [True, False], [True, False],
                                      ["addition", "multiplicative"]))


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference(gated, weights, X, h0, *, epsilon, gamma, independent_recurrence, integration_mode):
    """The documented equations, one example and one step at a time, with column vectors (``W @ h``).

    ``weights`` holds NumPy copies of weight_ih, weight_hh, bias_ih, bias_hh (a missing bias is None).
    """
    W_ih, W_hh, b_ih, b_hh = weights
    n = h0.shape[1]
    W = np.diag(W_hh) if independent_recurrence else W_hh
    A = W - W.T - gamma * np.eye(n)
    combine = (lambda u, v: u + v) if integration_mode == "addition" else (lambda u, v: u * v)
    out = np.zeros((X.shape[0], X.shape[1], n))
    for b in range(X.shape[1]):
        h = h0[b].copy()
        for t in range(X.shape[0]):
            x = X[t, b]
            recurrent = A @ h + (0.0 if b_hh is None else b_hh)
            projected = W_ih @ x + (0.0 if b_ih is None else b_ih)
            if gated:
                z = sigmoid(combine(projected[:n], recurrent))
                h = h + epsilon * z * np.tanh(combine(projected[n:], recurrent))
            else:
                h = h + epsilon * np.tanh(combine(projected, recurrent))
            out[t, b] = h
    return out


def numpy_weights(cell):
    return [None if p is None else p.detach().numpy().copy()
            for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("epsilon, gamma, bias, recurrent_bias, independent_recurrence, integration_mode",
                         KEYWORD_GRID)
def test_cell_matches_the_documented_equations(cls, epsilon, gamma, bias, recurrent_bias,
                                               independent_recurrence, integration_mode):
    torch.manual_seed(0)
    kw = dict(epsilon=epsilon, gamma=gamma, bias=bias, recurrent_bias=recurrent_bias,
              independent_recurrence=independent_recurrence, integration_mode=integration_mode)
    cell = cls(3, 4, **kw).double()
    with torch.no_grad():  # nonzero biases, so that a misplaced bias shows
        for p in (cell.bias_ih, cell.bias_hh):
            if p is not None:
                p.uniform_(-0.5, 0.5)
    X, h0 = torch.randn(6, 2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    outputs, H = cell(X, h0)
    expected = reference(cls is GatedAntisymmetricRNN, numpy_weights(cell), X.numpy(), h0.numpy(),
                         epsilon=epsilon, gamma=gamma, independent_recurrence=independent_recurrence,
                         integration_mode=integration_mode)
    assert outputs.shape == (6, 2, 4) and torch.equal(H, outputs[-1])
    np.testing.assert_allclose(outputs.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    step = cell.step(X[0], h0)  # step() computes A itself when not given
    np.testing.assert_allclose(step.detach().numpy(), expected[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls, blocks", [(AntisymmetricRNN, 1), (GatedAntisymmetricRNN, 2)])
@pytest.mark.parametrize("independent_recurrence", [False, True])
def test_parameters_have_pytorch_names_and_shapes(cls, blocks, independent_recurrence):
    cell = cls(3, 5, independent_recurrence=independent_recurrence)
    hh = (5,) if independent_recurrence else (5, 5)
    shapes = {name: tuple(p.shape) for name, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (blocks * 5, 3), "weight_hh": hh, "bias_ih": (blocks * 5,), "bias_hh": (5,)}
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bias, recurrent_bias", [(False, True), (True, False), (False, False)])
def test_switched_off_biases_are_none(cls, bias, recurrent_bias):
    cell = cls(2, 3, bias=bias, recurrent_bias=recurrent_bias)
    assert (cell.bias_ih is None) == (not bias) and (cell.bias_hh is None) == (not recurrent_bias)
    names = {name for name, _ in cell.named_parameters()}
    biases = {"bias_ih"} if bias else set()
    expected = {"weight_ih", "weight_hh"} | biases | ({"bias_hh"} if recurrent_bias else set())
    assert names == expected


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_keywords_and_defaults_are_the_documented_ones(cls):
    assert set(cls.keywords()) == set(DOCUMENTED_DEFAULTS)
    signature = inspect.signature(cls.__init__).parameters
    assert {k: signature[k].default for k in DOCUMENTED_DEFAULTS} == DOCUMENTED_DEFAULTS
    cell = cls(2, 3)
    settings = (cell.epsilon, cell.gamma, cell.independent_recurrence, cell.integration_mode)
    assert settings == (1.0, 0.0, False, "addition")


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("independent_recurrence", [False, True])
def test_initializers_fill_their_weights(cls, independent_recurrence):
    calls = []

    def recorder(value):
        def init(tensor):
            calls.append((value, tuple(tensor.shape)))
            tensor.fill_(value)
        return init

    cell = cls(3, 4, init_kernel=recorder(0.25), init_recurrent_kernel=recorder(-0.5),
               independent_recurrence=independent_recurrence)
    rows = 8 if cls is GatedAntisymmetricRNN else 4
    hh = (4,) if independent_recurrence else (4, 4)
    assert calls == [(0.25, (rows, 3)), (-0.5, hh)]
    assert (cell.weight_ih == 0.25).all() and (cell.weight_hh == -0.5).all()


@pytest.mark.parametrize("shape, fan_sum", [((40, 30), 70), ((60,), 61)])
def test_glorot_uniform_bounds(shape, fan_sum):
    torch.manual_seed(0)
    values = glorot_uniform_(torch.empty(shape))
    bound = math.sqrt(6 / fan_sum)
    assert values.abs().max() <= bound and values.abs().max() > 0.9 * bound


def test_default_initialization_is_glorot_uniform():
    torch.manual_seed(0)
    cell = GatedAntisymmetricRNN(30, 50)
    for weight, fan_sum in ((cell.weight_ih, 30 + 100), (cell.weight_hh, 50 + 50)):
        bound = math.sqrt(6 / fan_sum)
        assert 0.9 * bound < weight.abs().max() <= bound


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_recurrent_matrix_has_eigenvalues_on_the_line_real_part_minus_gamma(gamma):
    torch.manual_seed(0)
    cell = AntisymmetricRNN(2, 12, gamma=gamma).double()
    A = cell.recurrent_matrix()
    assert torch.allclose(A + A.T, -2 * gamma * torch.eye(12, dtype=torch.float64))
    eigenvalues = torch.linalg.eigvals(A)
    assert torch.allclose(eigenvalues.real, torch.full((12,), -gamma, dtype=torch.float64), atol=1e-12)
    assert eigenvalues.imag.abs().max() > 0.1  # a rotation, not zero


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_independent_recurrence_leaves_only_the_diffusion(cls):
    cell = cls(2, 4, gamma=0.2, independent_recurrence=True)
    assert torch.equal(cell.recurrent_matrix(), -0.2 * torch.eye(4))
    X = torch.randn(5, 3, 2)
    outputs, _ = cell(X)
    outputs.sum().backward()
    assert torch.equal(cell.weight_hh.grad, torch.zeros(4))  # diag(w) - diag(w)^T = 0
    with torch.no_grad():
        cell.weight_hh.mul_(10.0)
    assert torch.equal(cell(X)[0], outputs)


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_gradients_reach_every_parameter_and_a_head_trains_on_it(cls):
    torch.manual_seed(0)
    model = LastStepModel(cls(2, 3), 3, 1)
    loss = model(torch.randn(4, 7, 2)).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("kwargs, error, message", [
    ({"epsilom": 0.1}, ValueError, r"unknown keyword\(s\) \['epsilom'\]; allowed keywords: epsilon, gamma, bias"),
    ({"return_state": True}, ValueError, "allowed keywords: .*integration_mode, init_kernel, init_recurrent_kernel"),
    ({"integration_mode": "product"}, ValueError,
     r"integration_mode must be one of \('addition', 'multiplicative'\) \(or the reference documentation's "
     r"spellings ':addition', ':multiplicative_integration'\), got 'product'"),
    ({"epsilon": 0.0}, ValueError, "epsilon is the Euler step size and must be a finite number > 0, got 0.0"),
    ({"epsilon": -1}, ValueError, "epsilon .* got -1"),
    ({"epsilon": True}, ValueError, "epsilon .* got True"),
    ({"gamma": -0.1}, ValueError, "gamma is the diffusion strength and must be a finite number >= 0, got -0.1"),
    ({"gamma": float("inf")}, ValueError, "gamma .* got inf"),
    ({"bias": 1}, TypeError, "bias to be True or False, got 1"),
    ({"independent_recurrence": "yes"}, TypeError, "independent_recurrence to be True or False"),
    ({"init_kernel": "glorot"}, TypeError, "init_kernel must be a callable that fills a tensor"),
    ({"init_recurrent_kernel": None}, TypeError, "init_recurrent_kernel must be a callable"),
])
def test_bad_keywords_are_errors(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(2, 3, **kwargs)


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("sizes, message", [((0, 3), "input_size to be a positive int, got 0"),
                                            ((2, 3.0), "hidden_size to be a positive int, got 3.0")])
def test_bad_sizes_are_errors(cls, sizes, message):
    with pytest.raises(ValueError, match=message):
        cls(*sizes)


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("inputs, H, message", [
    (torch.zeros(4, 2), None, r"time-major inputs of shape \(T, B, 2\), got \(4, 2\)"),
    ([[0.0]], None, r"time-major inputs of shape \(T, B, 2\), got list"),
    (torch.zeros(4, 1, 3), None, r"inputs of shape \(T, B, 2\), got \(4, 1, 3\): 3 features instead of 2"),
    (torch.zeros(0, 1, 2), None, r"got an empty sequence \(T = 0\)"),
    (torch.zeros(4, 5, 2), torch.zeros(5, 2), r"state H of shape \(5, 3\) \(batch, num_hiddens\), got \(5, 2\)"),
    (torch.zeros(4, 5, 2), torch.zeros(3), r"state H of shape \(5, 3\) .* got \(3,\)"),
])
def test_bad_forward_arguments_are_errors(cls, inputs, H, message):
    with pytest.raises(ValueError, match=message):
        cls(2, 3)(inputs, H)


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("spelling, mode", [("multiplicative_integration", "multiplicative"),
                                            (":multiplicative_integration", "multiplicative"),
                                            (":addition", "addition"), ("multiplicative", "multiplicative")])
def test_the_reference_documentations_spellings_are_accepted(cls, spelling, mode):
    assert cls(2, 3, integration_mode=spelling).integration_mode == mode
