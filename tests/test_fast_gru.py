"""FastGRU: every step equals d2l's GRUScratch (same formulation) and nn.GRU, outputs and gradients."""
import pytest
import torch
from torch import nn

from utils.fast_gru import RESET_AFTER_STEPS, STEPS, FastGRU, HandBackwardGRU, use_repo_compile_cache
from utils.gru import GRUScratch
from utils.paths import build_dir

T, B, NUM_INPUTS, NUM_HIDDENS = 4, 3, 5, 8  # the bench's tiny size: torch.compile reuses its cache
TOL = dict(atol=1e-5, rtol=1e-5)


def scratch(reset_after, seed=0):
    torch.manual_seed(seed)
    return GRUScratch(NUM_INPUTS, NUM_HIDDENS, sigma=0.5, reset_after=reset_after)


def data(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, NUM_INPUTS, generator=generator), torch.randn(B, NUM_HIDDENS, generator=generator),
            torch.randn(T, B, NUM_HIDDENS, generator=generator))


def run(model, X, H0, grad_outputs):
    """Outputs, final state and the gradients of inputs and initial state."""
    X, H0 = X.clone().requires_grad_(), H0.clone().requires_grad_()
    outputs, H = model(X, H0)
    torch.autograd.backward([outputs, H], [grad_outputs, grad_outputs[-1]])
    return outputs.detach(), H.detach(), X.grad, H0.grad


def fused_grads(gru):
    """GRUScratch's parameter gradients in FastGRU's fused layout."""
    grads = {"W_x": torch.cat([gru.W_xz.grad, gru.W_xr.grad, gru.W_xh.grad], dim=1),
             "W_h": torch.cat([gru.W_hz.grad, gru.W_hr.grad, gru.W_hh.grad], dim=1),
             "b": torch.cat([gru.b_z.grad, gru.b_r.grad, gru.b_h.grad])}
    if gru.reset_after:
        grads["b_hh"] = gru.b_hh.grad
    return grads


@pytest.mark.parametrize("step", STEPS)
def test_step_equals_gruscratch_in_outputs_and_gradients(step):
    gru = scratch(reset_after=step in RESET_AFTER_STEPS)
    fast = FastGRU.from_scratch(gru, step)
    X, H0, grad_outputs = data()
    for expected, got in zip(run(gru, X, H0, grad_outputs), run(fast, X, H0, grad_outputs)):
        torch.testing.assert_close(got, expected, **TOL)
    for name, expected in fused_grads(gru).items():
        torch.testing.assert_close(getattr(fast, name).grad, expected, **TOL)


@pytest.mark.parametrize("step", RESET_AFTER_STEPS)
def test_reset_after_steps_equal_nn_gru(step):
    torch.manual_seed(2)
    reference = nn.GRU(NUM_INPUTS, NUM_HIDDENS)
    fast = FastGRU.from_scratch(GRUScratch.from_torch(reference), step)
    X, H0, grad_outputs = data()
    X_ref, H0_ref = X.clone().requires_grad_(), H0.clone().requires_grad_()
    outputs, H = reference(X_ref, H0_ref.unsqueeze(0))
    torch.autograd.backward([outputs, H[0]], [grad_outputs, grad_outputs[-1]])
    for expected, got in zip((outputs.detach(), H[0].detach(), X_ref.grad, H0_ref.grad),
                             run(fast, X, H0, grad_outputs)):
        torch.testing.assert_close(got, expected, **TOL)
    torch.testing.assert_close(fast.W_h.grad, reference.weight_hh_l0.grad.view(3, NUM_HIDDENS, -1)[[1, 0, 2]]
                               .flatten(0, 1).T, **TOL)  # nn.GRU stores the rows r, z, n


def backward_nodes(step):
    """Names of the autograd nodes in one FastGRU forward pass."""
    outputs, _ = FastGRU(NUM_INPUTS, NUM_HIDDENS, step)(torch.randn(T, B, NUM_INPUTS))
    names, stack, seen = [], [outputs.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_indexing_inside_the_loop_makes_one_select_per_step_and_unbind_one_node():
    indexed, hoisted = backward_nodes("indexed"), backward_nodes("hoisted")
    assert indexed.count("SelectBackward0") == T and "UnbindBackward0" not in indexed
    assert hoisted.count("UnbindBackward0") == 1 and "SelectBackward0" not in hoisted


def test_default_state_is_zeros_and_shapes():
    fast = FastGRU(NUM_INPUTS, NUM_HIDDENS, "reset_after")
    X = torch.randn(T, B, NUM_INPUTS)
    outputs, H = fast(X)
    assert outputs.shape == (T, B, NUM_HIDDENS) and H.shape == (B, NUM_HIDDENS)
    torch.testing.assert_close(fast(X, torch.zeros(B, NUM_HIDDENS))[0], outputs)
    assert not fast(X)[0].eq(FastGRU(NUM_INPUTS, NUM_HIDDENS, "reset_after")(X)[0]).all()  # fresh weights


def test_compile_cache_lives_in_the_repository_build_folder():
    folder = use_repo_compile_cache()
    assert folder == str(build_dir() / "torchinductor")


@pytest.mark.parametrize("kwargs, match", [
    (dict(step="fastest"), "unknown step"),
])
def test_bad_step(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FastGRU(NUM_INPUTS, NUM_HIDDENS, **kwargs)


@pytest.mark.parametrize("inputs, H, match", [
    (torch.randn(T, NUM_INPUTS), None, r"time-major inputs of shape \(T, B, 5\), got \(4, 5\)"),
    (torch.randn(T, B, NUM_INPUTS + 1), None, r"got \(4, 3, 6\)"),
    ([[0.0]], None, "got list"),
    (torch.randn(0, B, NUM_INPUTS), None, "empty sequence"),
    (torch.randn(T, B, NUM_INPUTS), torch.randn(B, NUM_HIDDENS + 1), r"state H of shape \(3, 8\) \(batch, num_hiddens\), got \(3, 9\)"),
])
def test_bad_inputs(inputs, H, match):
    with pytest.raises(ValueError, match=match):
        FastGRU(NUM_INPUTS, NUM_HIDDENS, "hoisted")(inputs, H)


def test_from_scratch_rejects_other_models_and_formulations():
    with pytest.raises(TypeError, match="expects a utils.gru.GRUScratch, got GRU"):
        FastGRU.from_scratch(nn.GRU(NUM_INPUTS, NUM_HIDDENS), "hoisted")
    with pytest.raises(ValueError, match="both gates"):
        FastGRU.from_scratch(GRUScratch(NUM_INPUTS, NUM_HIDDENS, update_gate=False), "hoisted")
    with pytest.raises(ValueError, match="reset-after GRU but the GRUScratch has reset_after=False"):
        FastGRU.from_scratch(scratch(reset_after=False), "jit")
    with pytest.raises(ValueError, match="reset-before GRU but the GRUScratch has reset_after=True"):
        FastGRU.from_scratch(scratch(reset_after=True), "fused")


@pytest.mark.parametrize("step, sizes", [("backward", (1, 1, 2, 3)), ("backward", (6, 4, 3, 5)),
                                         ("backward", (T, B, NUM_INPUTS, NUM_HIDDENS)),
                                         ("backward_compile", (T, B, NUM_INPUTS, NUM_HIDDENS))])
def test_the_hand_written_backward_equals_autograd_in_float64(step, sizes):
    """Outputs, the final state and every gradient (inputs, initial state, parameters) to 1e-10."""
    steps, batch, num_inputs, num_hiddens = sizes
    torch.manual_seed(3)
    gru = GRUScratch(num_inputs, num_hiddens, sigma=0.5, reset_after=True).double()
    with torch.no_grad():
        for name, param in gru.named_parameters():
            if name.startswith("b"):
                param.normal_(0, 0.5)
    fast = FastGRU.from_scratch(gru, step)
    generator = torch.Generator().manual_seed(4)
    X, H0, grad_outputs = (torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in
                           ((steps, batch, num_inputs), (batch, num_hiddens), (steps, batch, num_hiddens)))
    for expected, got in zip(run(gru, X, H0, grad_outputs), run(fast, X, H0, grad_outputs)):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    for name, expected in fused_grads(gru).items():
        torch.testing.assert_close(getattr(fast, name).grad, expected, atol=1e-10, rtol=1e-10)


def test_the_hand_written_backward_is_used_and_skipped_without_gradients():
    fast = FastGRU(NUM_INPUTS, NUM_HIDDENS, "backward")
    X = torch.randn(T, B, NUM_INPUTS)
    outputs, H = fast(X)
    assert type(outputs.grad_fn).__name__ == "HandBackwardGRUBackward" and H.grad_fn is not None
    with torch.no_grad():
        torch.testing.assert_close(fast(X)[0], outputs.detach())


def test_the_hand_written_backward_checks_with_gradcheck():
    torch.manual_seed(5)
    fast = FastGRU(2, 3, "backward", sigma=0.5).double()
    X, H0 = torch.randn(3, 2, 2, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    inputs = (X.requires_grad_(), H0.requires_grad_(), *(p.detach().requires_grad_() for p in
                                                          (fast.W_x, fast.b, fast.W_h, fast.b_hh)))
    assert torch.autograd.gradcheck(lambda *args: HandBackwardGRU.apply(*args, False), inputs)


def test_from_scratch_leaves_the_global_random_state_as_it_was():
    gru = GRUScratch(5, 4, reset_after=True)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    FastGRU.from_scratch(gru, "reset_after")
    assert torch.equal(torch.rand(3), expected)
