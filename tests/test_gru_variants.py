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


def paper_parameters(variant, seed=2):
    """Random parameters in the papers' own notation and layout: column vectors, weight matrices of shape
    (hidden, inputs) applied from the left, and their own names."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    n, m = NUM_HIDDENS, NUM_INPUTS
    if variant == "mgu":  # Zhou et al. 2016: W_f, W_h act on the concatenation [h; x]
        return {"W_f": r(n, n + m), "b_f": r(n), "W_h": r(n, n + m), "b_h": r(n)}
    paper = {"W_h": r(n, m), "U_h": r(n, n), "b_h": r(n)}  # the candidate of Dey and Salem (2017)
    for gate in ("u", "r"):
        if variant in ("gru", "gru1", "gru2"):
            paper[f"U_{gate}"] = r(n, n)
        if variant in ("gru", "gru1", "gru3"):
            paper[f"b_{gate}"] = r(n)
        if variant == "gru":
            paper[f"W_{gate}"] = r(n, m)
    return paper


def paper_step(variant, q, x, h):
    """One step of the papers' equations on column vectors (x: (m,), h: (n,)), written from the papers.
    GRU and its variants (Dey and Salem 2017): u = sigma(W_u x + U_u h + b_u), r = sigma(W_r x + U_r h + b_r),
    GRU1 drops W x, GRU2 also b, GRU3 keeps b only; h~ = tanh(W_h x + U_h (r * h) + b_h); h' = (1 - u) h + u h~.
    MGU (Zhou et al. 2016): f = sigma(W_f [h; x] + b_f), h~ = tanh(W_h [f * h; x] + b_h), h' = (1 - f) h + f h~."""
    sigma = torch.sigmoid
    if variant == "mgu":
        f = sigma(q["W_f"] @ torch.cat([h, x]) + q["b_f"])
        h_tilde = torch.tanh(q["W_h"] @ torch.cat([f * h, x]) + q["b_h"])
        return (1 - f) * h + f * h_tilde

    def gate(g):
        pre = torch.zeros_like(h)
        if f"W_{g}" in q:
            pre = pre + q[f"W_{g}"] @ x
        if f"U_{g}" in q:
            pre = pre + q[f"U_{g}"] @ h
        if f"b_{g}" in q:
            pre = pre + q[f"b_{g}"]
        return sigma(pre)

    u, r = gate("u"), gate("r")
    h_tilde = torch.tanh(q["W_h"] @ x + q["U_h"] @ (r * h) + q["b_h"])
    return (1 - u) * h + u * h_tilde


def to_course(variant, q):
    """The course's parameters for the same function: row vectors (weights transposed) and d2l's update
    convention, Z = 1 - u = sigma(-(...)): the update gate's weights and bias change sign; the MGU's single
    gate is R = F, Z = 1 - F."""
    n = NUM_HIDDENS
    if variant == "mgu":
        return {"W_hf": q["W_f"][:, :n].T, "W_xf": q["W_f"][:, n:].T, "b_f": q["b_f"],
                "W_hh": q["W_h"][:, :n].T, "W_xh": q["W_h"][:, n:].T, "b_h": q["b_h"]}
    course = {"W_xh": q["W_h"].T, "W_hh": q["U_h"].T, "b_h": q["b_h"]}
    for paper_gate, gate, sign in (("u", "z", -1), ("r", "r", 1)):
        for paper_name, name in ((f"W_{paper_gate}", f"W_x{gate}"), (f"U_{paper_gate}", f"W_h{gate}"),
                                 (f"b_{paper_gate}", f"b_{gate}")):
            if paper_name in q:
                course[name] = sign * (q[paper_name] if paper_name.startswith("b") else q[paper_name].T)
    return course


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_computes_its_papers_equations(variant):
    """Parameters drawn in the papers' notation, converted to the course's, give the papers' states."""
    q = paper_parameters(variant)
    model = make(variant)
    with torch.no_grad():
        for name, value in to_course(variant, q).items():
            getattr(model, name).copy_(value)
    X, H0 = inputs(), torch.randn(B, NUM_HIDDENS, dtype=torch.float64)
    outputs, H = model(X, H0)
    expected = []
    for b in range(B):  # the papers' equations, one example (a column vector) at a time
        h, states = H0[b], []
        for x in X[:, b]:
            h = paper_step(variant, q, x, h)
            states.append(h)
        expected.append(torch.stack(states))
    torch.testing.assert_close(outputs, torch.stack(expected, dim=1))
    torch.testing.assert_close(H, outputs[-1])


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
