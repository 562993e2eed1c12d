import pytest
import torch

from utils.shapes import check_sequence, initial_state


def test_a_fitting_sequence_gives_its_length_and_batch():
    assert check_sequence("Layer", torch.zeros(5, 3, 2), 2) == (5, 3)


@pytest.mark.parametrize("inputs, message", [
    (torch.zeros(5, 2), r"Layer expects time-major inputs of shape \(T, B, 2\), got \(5, 2\)"),
    ([[0.0]], r"Layer expects time-major inputs of shape \(T, B, 2\), got list"),
    (torch.zeros(5, 3, 4), r"got \(5, 3, 4\): 4 features instead of 2"),
    (torch.zeros(0, 3, 2), r"Layer got an empty sequence \(T = 0\)"),
])
def test_bad_sequences_name_the_layer_and_the_shapes(inputs, message):
    with pytest.raises(ValueError, match=message):
        check_sequence("Layer", inputs, 2)


def test_initial_state_is_zeros_like_the_inputs_or_the_given_state():
    inputs = torch.zeros(4, 3, 2, dtype=torch.float64)
    zeros = initial_state("Layer", inputs, None, 5)
    assert zeros.shape == (3, 5) and zeros.dtype == torch.float64 and not zeros.any()
    H = torch.ones(3, 5)
    assert initial_state("Layer", inputs, H, 5) is H


@pytest.mark.parametrize("H, got", [(torch.zeros(1, 3, 5), r"\(1, 3, 5\)"), (torch.zeros(3, 4), r"\(3, 4\)"), ("h", "str")])
def test_a_state_of_the_wrong_shape_is_an_error(H, got):
    with pytest.raises(ValueError, match=r"Layer expects a state H of shape \(3, 5\) \(batch, num_hiddens\), got " + got):
        initial_state("Layer", torch.zeros(4, 3, 2), H, 5)
