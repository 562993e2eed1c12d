import d2l.torch as d2l
import pytest
import torch

from utils.gru import GRUScratch
from utils.gru_variants import VARIANTS, GRUVariant

NUM_INPUTS, NUM_HIDDENS, T, B = 3, 4, 5, 2


def make(variant, seed=0):
    torch.manual_seed(seed)
    return GRUVariant(NUM_INPUTS, NUM_HIDDENS, sigma=0.5, variant=variant).double()


def inputs(seed=1):
    return torch.randn(T, B, NUM_INPUTS, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference_step(variant, p, x, h):
    """The published equations, one step, written independently of utils (papers' update convention
    h = (1 - u) h + u h~, where u = 1 - Z lets the candidate in)."""
    sig = torch.sigmoid
    if variant == "mgu":  # Zhou et al. 2016: one gate f, candidate on the concatenation [f * h, x]
        f = sig(torch.cat([h, x], 1) @ torch.cat([p["W_hf"], p["W_xf"]]) + p["b_f"])
        h_cand = torch.tanh(torch.cat([f * h, x], 1) @ torch.cat([p["W_hh"], p["W_xh"]]) + p["b_h"])
        return (1 - f) * h + f * h_cand
    if variant == "gru":
        keep, r = sig(x @ p["W_xz"] + h @ p["W_hz"] + p["b_z"]), sig(x @ p["W_xr"] + h @ p["W_hr"] + p["b_r"])
    elif variant == "gru1":
        keep, r = sig(h @ p["W_hz"] + p["b_z"]), sig(h @ p["W_hr"] + p["b_r"])
    elif variant == "gru2":
        keep, r = sig(h @ p["W_hz"]), sig(h @ p["W_hr"])
    else:  # gru3
        keep, r = sig(p["b_z"]).expand_as(h), sig(p["b_r"]).expand_as(h)
    u = 1 - keep
    h_cand = torch.tanh(x @ p["W_xh"] + (r * h) @ p["W_hh"] + p["b_h"])
    return (1 - u) * h + u * h_cand


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_follows_its_published_equations(variant):
    model = make(variant)
    with torch.no_grad():  # nonzero biases, so that dropping or keeping one is visible
        for name, param in model.named_parameters():
            if name.startswith("b_"):
                param.copy_(torch.randn(NUM_HIDDENS, dtype=torch.float64))
    p = dict(model.named_parameters())
    X, H0 = inputs(), torch.randn(B, NUM_HIDDENS, dtype=torch.float64)
    outputs, H = model(X, H0)
    h, expected = H0, []
    for x in X:
        h = reference_step(variant, p, x, h)
        expected.append(h)
    assert outputs.shape == (T, B, NUM_HIDDENS)
    torch.testing.assert_close(outputs, torch.stack(expected))
    torch.testing.assert_close(H, expected[-1])


@pytest.mark.parametrize("variant, gate_parameters", [
    ("gru", {"W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r"}),
    ("gru1", {"W_hz", "b_z", "W_hr", "b_r"}),
    ("gru2", {"W_hz", "W_hr"}),
    ("gru3", {"b_z", "b_r"}),
    ("mgu", {"W_xf", "W_hf", "b_f"}),
])
def test_each_variant_has_exactly_its_parameters_and_all_of_them_learn(variant, gate_parameters):
    model = make(variant)
    assert set(dict(model.named_parameters())) == gate_parameters | {"W_xh", "W_hh", "b_h"}
    model(inputs())[0].sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_the_gru_variant_is_gru_scratch():
    variant = make("gru")
    gru = GRUScratch(NUM_INPUTS, NUM_HIDDENS).double()
    gru.load_state_dict(variant.state_dict())
    X = inputs()
    torch.testing.assert_close(variant(X)[0], gru(X)[0], rtol=0, atol=0)


def test_gru3_gates_are_constant_and_mgu_ties_its_gates():
    gates = make("gru3").gates(inputs())
    assert torch.equal(gates["Z"], gates["Z"][:1, :1].expand(T, B, NUM_HIDDENS))
    gates = make("mgu").gates(inputs())
    assert gates["Z"].shape == (T, B, NUM_HIDDENS)
    torch.testing.assert_close(gates["Z"], 1 - gates["R"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_forced_gates_replace_the_variants_gates(variant):
    model, X = make(variant), inputs()
    keep = torch.ones(T, 1, 1, dtype=torch.float64)  # Z = 1 everywhere keeps the initial state
    H0 = torch.randn(B, NUM_HIDDENS, dtype=torch.float64)
    outputs, H = model(X, H0, Z=keep)
    assert torch.equal(H, H0) and torch.equal(outputs, H0.expand(T, B, NUM_HIDDENS))


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_trains_inside_d2l_rnnlm_scratch(variant):
    torch.manual_seed(0)
    lm = d2l.RNNLMScratch(GRUVariant(28, 8, variant=variant), vocab_size=28, lr=1)
    X = torch.randint(0, 28, (B, T))
    loss = lm.loss(lm(X), X)
    loss.backward()
    assert lm(X).shape == (B, T, 28) and torch.isfinite(loss)
    vocab = d2l.Vocab(list("abcdefghijklmnopqrstuvwxyz "))
    assert len(lm.predict("ab", 3, vocab)) == 5


@pytest.mark.parametrize("variant, error", [("gru4", ValueError), (None, ValueError), (["mgu"], ValueError)])
def test_unknown_variant_is_an_error_that_lists_the_variants(variant, error):
    with pytest.raises(error, match=r"variant must be one of \('gru', 'gru1', 'gru2', 'gru3', 'mgu'\)"):
        GRUVariant(NUM_INPUTS, NUM_HIDDENS, variant=variant)


def test_bad_shapes_are_errors():
    model = make("mgu")
    with pytest.raises(ValueError, match=r"\(T, B, 3\), got \(5, 2, 4\)"):
        model(torch.zeros(T, B, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state H of shape \(2, 4\)"):
        model(inputs(), torch.zeros(B, 3, dtype=torch.float64))
