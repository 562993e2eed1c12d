import pytest
import torch
from torch import nn

from utils.gradients import input_gradient_norms
from utils.gru import GRUScratch


def jacobian_norms_by_autograd(rnn, X):
    """Independent reference: the full Jacobian of H_T for each example, via torch.autograd.functional."""
    T, B, _ = X.shape
    norms = torch.zeros(T, B)
    for b in range(B):
        jac = torch.autograd.functional.jacobian(lambda x: rnn(x.unsqueeze(1))[0][-1, 0], X[:, b])
        norms[:, b] = jac.pow(2).sum(dim=(0, 2)).sqrt()  # jac: (num_hiddens, T, num_inputs)
    return norms.mean(dim=1)


@pytest.mark.parametrize("make", [lambda: nn.RNN(3, 5), lambda: GRUScratch(3, 5, sigma=0.5)], ids=["rnn", "gru"])
def test_matches_the_full_jacobian(make):
    torch.manual_seed(0)
    rnn = make()
    X = torch.randn(6, 4, 3)
    assert torch.allclose(input_gradient_norms(rnn, X), jacobian_norms_by_autograd(rnn, X), atol=1e-6)


def test_a_gru_that_keeps_its_state_passes_the_gradient_unchanged():
    torch.manual_seed(0)
    gru = GRUScratch(2, 3, sigma=0.5)
    X = torch.randn(8, 2, 2)
    Z = torch.ones(8, 1, 1)
    Z[0] = 0.0  # write at step 0, then keep: H_T = H_0 exactly
    norms = input_gradient_norms(lambda x: gru(x, Z=Z), X)
    assert (norms[1:] == 0).all() and norms[0] > 0


def test_rejects_2d_inputs():
    with pytest.raises(ValueError, match=r"\(T, B, num_inputs\), got \(4, 3\)"):
        input_gradient_norms(nn.RNN(3, 2), torch.zeros(4, 3))
