"""MinGRU: the log-space scan equals the loop over time, and both follow the paper's equations."""
import pytest
import torch

from utils.mingru import MinGRU, g, log_g

T, B, NUM_INPUTS, NUM_HIDDENS = 6, 3, 5, 4


def model(dtype=torch.float64):
    torch.manual_seed(0)
    return MinGRU(NUM_INPUTS, NUM_HIDDENS, sigma=0.8).to(dtype)


def inputs(dtype=torch.float64, T=T):
    return torch.randn(T, B, NUM_INPUTS, generator=torch.Generator().manual_seed(1), dtype=dtype)


def by_hand(m, X, H):
    """The paper's recurrence written out step by step (d2l's convention: Z = 1 keeps the state)."""
    W_xz, W_xh = m.W_x.detach().chunk(2, dim=1)
    b_z, b_h = m.b.detach().chunk(2)
    states = []
    for X_t in X:
        Z = torch.sigmoid(X_t @ W_xz + b_z)
        pre = X_t @ W_xh + b_h
        H_tilde = torch.where(pre >= 0, pre + 0.5, torch.sigmoid(pre))
        H = Z * H + (1 - Z) * H_tilde
        states.append(H)
    return torch.stack(states)


def test_g_is_positive_continuous_and_log_g_is_its_log():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), torch.log(g(x)))
    torch.testing.assert_close(g(torch.tensor([-1e-12, 0.0], dtype=torch.float64)),
                               torch.tensor([0.5, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_both_modes_follow_the_equations(parallel, with_state):
    m, X = model(), inputs()
    H0 = torch.rand(B, NUM_HIDDENS, dtype=torch.float64) + 0.1 if with_state else None
    outputs, H = m(X, H0, parallel=parallel)
    expected = by_hand(m, X, torch.zeros(B, NUM_HIDDENS, dtype=torch.float64) if H0 is None else H0)
    torch.testing.assert_close(outputs.detach(), expected)
    torch.testing.assert_close(H.detach(), expected[-1])


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_scan_and_loop_have_equal_gradients(dtype, tol):
    m, X = model(dtype), inputs(dtype)
    H0 = torch.rand(B, NUM_HIDDENS, dtype=dtype) + 0.1
    grad_outputs = torch.randn(T, B, NUM_HIDDENS, dtype=dtype)
    grads = []
    for parallel in (False, True):
        X_, H0_ = X.clone().requires_grad_(), H0.clone().requires_grad_()
        m.zero_grad()
        outputs, _ = m(X_, H0_, parallel=parallel)
        outputs.backward(grad_outputs)
        grads.append([outputs.detach(), X_.grad, H0_.grad, m.W_x.grad.clone(), m.b.grad.clone()])
    for loop, scan in zip(*grads):
        torch.testing.assert_close(scan, loop, atol=tol, rtol=tol)


@pytest.mark.parametrize("inputs_, H, match", [
    (torch.randn(T, NUM_INPUTS), None, r"shape \(T, B, 5\), got \(6, 5\)"),
    (torch.randn(T, B, 2), None, r"got \(6, 3, 2\)"),
    ("text", None, "got str"),
    (torch.randn(0, B, NUM_INPUTS), None, "empty sequence"),
    (torch.randn(T, B, NUM_INPUTS), torch.ones(B, 1), r"state H of shape \(3, 4\) \(batch, num_hiddens\), got \(3, 1\)"),
    (torch.randn(T, B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS), "positive state"),
])
@pytest.mark.parametrize("parallel", [False, True])
def test_bad_inputs(inputs_, H, match, parallel):
    with pytest.raises(ValueError, match=match):
        MinGRU(NUM_INPUTS, NUM_HIDDENS)(inputs_, H, parallel=parallel)


@pytest.mark.parametrize("T", [1000, 4000])
def test_the_float32_scan_drifts_with_length_within_its_documented_bound(T):
    """The log-space scan sums T logarithms in float32: its relative error grows with T (about 1e-4 at
    T=1000), bounded by 1e-6 * T; the loop over time stays at float32's rounding."""
    torch.manual_seed(0)
    m = MinGRU(4, 8, sigma=0.5).double()
    x = torch.randn(T, 3, 4, dtype=torch.float64)
    exact, _ = m(x)
    m = m.float()
    scan, _ = m(x.float(), parallel=True)
    loop, _ = m(x.float(), parallel=False)
    relative = lambda got: ((got.double() - exact).abs() / exact.abs()).max().item()
    assert relative(loop) < 1e-5 and 10 * relative(loop) < relative(scan) < 1e-6 * T
