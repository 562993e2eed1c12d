"""GRUScratch against an independent plain-NumPy GRU, against torch.nn.GRU, and through its error paths."""
import d2l.torch as d2l
import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from utils.gru import GRUScratch

# (reset_gate, update_gate, reset_after): every valid combination of the switches
VARIANTS = [(True, True, False), (True, True, True), (False, True, False), (True, False, False),
            (True, False, True), (False, False, False)]
VARIANT_IDS = ["d2l", "reset_after", "no_reset", "no_update", "no_update_reset_after", "plain_rnn"]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_gru(p, inputs, H, *, reset_gate, update_gate, reset_after, Z_forced=None, R_forced=None):
    """The GRU equations written out in NumPy float64, one time step and one element at a time for the
    gates' mixing, independent of utils.gru. ``p`` maps d2l's parameter names to arrays."""
    outputs = []
    for t, X in enumerate(inputs):
        Z = sigmoid(X @ p["W_xz"] + H @ p["W_hz"] + p["b_z"]) if update_gate else None
        R = sigmoid(X @ p["W_xr"] + H @ p["W_hr"] + p["b_r"]) if reset_gate else None
        if Z_forced is not None:
            Z = np.broadcast_to(Z_forced[t], H.shape)
        if R_forced is not None:
            R = np.broadcast_to(R_forced[t], H.shape)
        if not reset_gate:
            H_tilde = np.tanh(X @ p["W_xh"] + H @ p["W_hh"] + p["b_h"])
        elif reset_after:
            H_tilde = np.tanh(X @ p["W_xh"] + p["b_h"] + R * (H @ p["W_hh"] + p["b_hh"]))
        else:
            H_tilde = np.tanh(X @ p["W_xh"] + (R * H) @ p["W_hh"] + p["b_h"])
        new = np.empty_like(H)
        for i, j in np.ndindex(*H.shape):  # per element: Z = 1 keeps the old state (d2l's convention)
            new[i, j] = Z[i, j] * H[i, j] + (1 - Z[i, j]) * H_tilde[i, j] if update_gate else H_tilde[i, j]
        H = new
        outputs.append(H)
    return np.stack(outputs), H


def random_model(num_inputs, num_hiddens, variant, dtype=torch.float64, seed=0):
    """A GRUScratch with random weights and random (nonzero) biases, so every term matters."""
    torch.manual_seed(seed)
    reset_gate, update_gate, reset_after = variant
    model = GRUScratch(num_inputs, num_hiddens, sigma=0.5, reset_gate=reset_gate, update_gate=update_gate,
                       reset_after=reset_after).to(dtype)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("b_"):
                param.normal_(0, 0.5)
    return model


def params_numpy(model):
    return {name: param.detach().numpy() for name, param in model.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_parameters_have_d2l_names_and_shapes(variant):
    reset_gate, update_gate, reset_after = variant
    model = GRUScratch(3, 5, reset_gate=reset_gate, update_gate=update_gate, reset_after=reset_after)
    expected = {"W_xh": (3, 5), "W_hh": (5, 5), "b_h": (5,)}
    if update_gate:
        expected |= {"W_xz": (3, 5), "W_hz": (5, 5), "b_z": (5,)}
    if reset_gate:
        expected |= {"W_xr": (3, 5), "W_hr": (5, 5), "b_r": (5,)}
    if reset_after:
        expected |= {"b_hh": (5,)}
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == expected
    assert all(torch.all(p == 0) for name, p in model.named_parameters() if name.startswith("b_"))


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("given_state", [False, True], ids=["zero_state", "given_state"])
def test_forward_matches_the_numpy_equations(variant, given_state):
    model = random_model(3, 4, variant)
    inputs = torch.randn(6, 2, 3, dtype=torch.float64)
    H0 = torch.randn(2, 4, dtype=torch.float64) if given_state else None
    outputs, H = model(inputs, H0)
    reset_gate, update_gate, reset_after = variant
    expected_outputs, expected_H = numpy_gru(
        params_numpy(model), inputs.numpy(), np.zeros((2, 4)) if H0 is None else H0.numpy(),
        reset_gate=reset_gate, update_gate=update_gate, reset_after=reset_after)
    assert outputs.shape == (6, 2, 4) and H.shape == (2, 4)
    np.testing.assert_allclose(outputs.detach().numpy(), expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(H.detach().numpy(), expected_H, rtol=1e-12, atol=1e-12)


def test_reset_before_and_reset_after_are_different_models():
    before = random_model(3, 4, (True, True, False))
    after = GRUScratch(3, 4, reset_after=True).double()
    with torch.no_grad():
        for name, param in before.named_parameters():
            getattr(after, name).copy_(param)  # same weights, b_hh = 0
    inputs = torch.randn(5, 2, 3, dtype=torch.float64)
    H0 = torch.randn(2, 4, dtype=torch.float64)
    assert not torch.allclose(before(inputs, H0)[0], after(inputs, H0)[0], atol=1e-6)
    ones = torch.ones(5, 1, 1, dtype=torch.float64)  # with R = 1 both candidates are the same
    torch.testing.assert_close(before(inputs, H0, R=ones)[0], after(inputs, H0, R=ones)[0])


@pytest.mark.parametrize("variant", [(True, True, False), (True, True, True)], ids=["d2l", "reset_after"])
def test_forced_gates_match_the_numpy_equations(variant):
    model = random_model(3, 4, variant)
    inputs = torch.randn(5, 2, 3, dtype=torch.float64)
    Z = torch.rand(5, 2, 4, dtype=torch.float64)
    R = torch.rand(5, 1, 4, dtype=torch.float64)  # broadcast over the batch
    outputs, _ = model(inputs, Z=Z, R=R)
    expected, _ = numpy_gru(params_numpy(model), inputs.numpy(), np.zeros((2, 4)), reset_gate=True,
                            update_gate=True, reset_after=variant[2], Z_forced=Z.numpy(), R_forced=R.numpy())
    np.testing.assert_allclose(outputs.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_update_gate_one_copies_the_state_and_zero_takes_the_candidate():
    model = random_model(3, 4, (True, True, False))
    inputs, H0 = torch.randn(7, 2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    outputs, H = model(inputs, H0, Z=torch.ones(7, 1, 1, dtype=torch.float64))
    assert torch.equal(H, H0) and all(torch.equal(out, H0) for out in outputs)  # exactly
    step = model.step(inputs[0], H0, Z=torch.zeros(1, dtype=torch.float64))
    assert torch.equal(step.H, step.H_tilde)


def test_reset_gate_zero_makes_the_candidate_independent_of_the_state():
    model = random_model(3, 4, (True, True, False))
    X = torch.randn(2, 3, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    a = model.step(X, torch.randn(2, 4, dtype=torch.float64), R=zero).H_tilde
    b = model.step(X, torch.randn(2, 4, dtype=torch.float64), R=zero).H_tilde
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, torch.tanh(X @ model.W_xh + model.b_h), rtol=0, atol=0)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_gates_are_the_steps_of_forward(variant):
    model = random_model(3, 4, variant)
    inputs, H0 = torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    gates = model.gates(inputs, H0)
    reset_gate, update_gate, _ = variant
    assert set(gates) == {"H", "H_tilde"} | ({"Z"} if update_gate else set()) | ({"R"} if reset_gate else set())
    assert all(g.shape == (5, 2, 4) for g in gates.values())
    torch.testing.assert_close(gates["H"], model(inputs, H0)[0], rtol=0, atol=0)
    if update_gate:
        previous = torch.cat([H0[None], gates["H"][:-1]])
        torch.testing.assert_close(gates["H"], gates["Z"] * previous + (1 - gates["Z"]) * gates["H_tilde"])
        assert torch.all((gates["Z"] > 0) & (gates["Z"] < 1))


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_gradients_pass_gradcheck_in_float64(variant):
    model = random_model(2, 3, variant)
    names = [name for name, _ in model.named_parameters()]

    def run(inputs, H0, *params):
        outputs, H = functional_call(model, dict(zip(names, params)), (inputs, H0))
        return outputs, H

    inputs = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    H0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(run, (inputs, H0, *params))


@pytest.mark.parametrize("num_inputs, num_hiddens, batch", [(1, 1, 1), (3, 5, 2), (28, 32, 4), (7, 64, 3)])
def test_from_torch_equals_nn_gru_in_float32(num_inputs, num_hiddens, batch):
    torch.manual_seed(num_hiddens)
    gru = nn.GRU(num_inputs, num_hiddens)
    model = GRUScratch.from_torch(gru)
    assert model.reset_after and model.reset_gate and model.update_gate
    assert model.W_xz.dtype == torch.float32
    inputs = torch.randn(9, batch, num_inputs)
    H0 = torch.randn(batch, num_hiddens)
    for state in (None, H0):
        expected_outputs, expected_H = gru(inputs, None if state is None else state[None])
        outputs, H = model(inputs, state)
        torch.testing.assert_close(outputs, expected_outputs, rtol=0, atol=1e-5)
        torch.testing.assert_close(H, expected_H[0], rtol=0, atol=1e-5)


def test_from_torch_equals_nn_gru_in_float64_and_keeps_the_source_unchanged():
    torch.manual_seed(1)
    gru = nn.GRU(4, 6).double()
    before = {k: v.clone() for k, v in gru.state_dict().items()}
    model = GRUScratch.from_torch(gru)
    inputs = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(model(inputs)[0], gru(inputs)[0], rtol=0, atol=1e-12)
    with torch.no_grad():
        model.W_hh.add_(1.0)  # a copy, not a view of the nn.GRU's weights
    assert all(torch.equal(v, before[k]) for k, v in gru.state_dict().items())


@pytest.mark.parametrize("kwargs, message", [
    ({"num_layers": 2}, "num_layers=2"), ({"bidirectional": True}, "bidirectional=True"),
    ({"batch_first": True}, "batch_first=True"), ({"bias": False}, "bias=False")])
def test_from_torch_rejects_what_it_cannot_represent(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRUScratch.from_torch(nn.GRU(3, 4, **kwargs))


def test_from_torch_rejects_other_layers():
    with pytest.raises(TypeError, match="expects a torch.nn.GRU, got LSTM"):
        GRUScratch.from_torch(nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="got GRU"):  # d2l's wrapper: pass its .rnn
        GRUScratch.from_torch(d2l.GRU(3, 4, num_layers=1))


@pytest.mark.parametrize("inputs, state, message", [
    (torch.zeros(5, 2, 4), None, r"expects inputs of shape \(T, B, 3\), got \(5, 2, 4\)"),
    (torch.zeros(5, 3), None, r"time-major inputs of shape \(T, B, 3\), got \(5, 3\)"),
    ([[0.0, 1.0, 2.0]], None, r"got list"),
    (torch.zeros(0, 2, 3), None, "empty sequence"),
    (torch.zeros(5, 2, 3), torch.zeros(1, 2, 4), r"state H of shape \(2, 4\) \(batch, num_hiddens\), got \(1, 2, 4\)"),
    (torch.zeros(5, 2, 3), torch.zeros(3, 4), r"state H of shape \(2, 4\).*got \(3, 4\)"),
])
def test_bad_shapes_say_what_was_expected_and_what_came(inputs, state, message):
    model = GRUScratch(3, 4)
    with pytest.raises(ValueError, match=message):
        model(inputs, state)
    with pytest.raises(ValueError, match=message):
        model.gates(inputs, state)


@pytest.mark.parametrize("kwargs, forced, message", [
    ({"update_gate": False}, {"Z": torch.ones(5, 1, 1)}, r"forced Z given, but .* no update gate"),
    ({"reset_gate": False}, {"R": torch.ones(5, 1, 1)}, r"forced R given, but .* no reset gate"),
    ({}, {"Z": torch.ones(3, 1, 1)}, r"one entry per time step, shape \(5, \.\.\.\), got \(3, 1, 1\)"),
    ({}, {"R": 1.0}, r"one entry per time step.*got float"),
    ({}, {"Z": torch.ones(5, 2, 3)}, r"Z\[t\] must broadcast to \(2, 4\)"),
    ({}, {"Z": torch.ones(5, 1, 2, 4)}, "at most 3 dimensions"),
])
def test_bad_forced_gates_are_rejected(kwargs, forced, message):
    model = GRUScratch(3, 4, **kwargs)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(5, 2, 3), **forced)  # also without a given state


def test_step_rejects_a_forced_gate_the_model_lacks():
    with pytest.raises(ValueError, match="no update gate"):
        GRUScratch(3, 4, update_gate=False).step(torch.zeros(2, 3), torch.zeros(2, 4), Z=torch.ones(1))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_inputs": 3, "num_hiddens": 4, "reset_gate": False, "reset_after": True}, "needs reset_gate=True"),
    ({"num_inputs": 0, "num_hiddens": 4}, "num_inputs to be a positive int, got 0"),
    ({"num_inputs": 3, "num_hiddens": 2.5}, "num_hiddens to be a positive int, got 2.5"),
])
def test_bad_constructor_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRUScratch(**kwargs)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_works_as_the_rnn_of_d2l_rnnlm_scratch(variant):
    torch.manual_seed(0)
    reset_gate, update_gate, reset_after = variant
    rnn = GRUScratch(28, 8, reset_gate=reset_gate, update_gate=update_gate, reset_after=reset_after)
    model = d2l.RNNLMScratch(rnn, vocab_size=28, lr=1)
    X = torch.randint(0, 28, (2, 5))
    logits = model(X)
    assert logits.shape == (2, 5, 28)
    outputs, _ = rnn(nn.functional.one_hot(X.T, 28).float())
    torch.testing.assert_close(logits, torch.stack([H @ model.W_hq + model.b_q for H in outputs], 1))
    model.loss(logits, torch.randint(0, 28, (2, 5))).backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in rnn.parameters())
    vocab = d2l.Vocab(list("abcdefghijklmnopqrstuvwxyz "))
    text = model.predict("it has", 4, vocab)
    assert text.startswith("it has") and len(text) == 10
