import pytest
import torch
from torch import nn

from utils.blog_cells import ConcatGRUCell, SplitGRUCell
from utils.classifier import GRUClassifier
from utils.sequence_models import evaluate, train_on_task
from utils.tasks import recall_task


def test_logits_equal_nn_gru_last_step_through_a_linear_head():
    torch.manual_seed(0)
    gru = nn.GRU(3, 6, batch_first=True)
    model = GRUClassifier(SplitGRUCell.from_torch(gru), num_classes=4)
    X = torch.randn(5, 7, 3)
    outputs, _ = gru(X)
    assert model(X).shape == (5, 4)
    assert torch.allclose(model(X), model.head(outputs[:, -1]), atol=1e-6)
    assert torch.allclose(model.states(X), outputs, atol=1e-6)


def test_each_example_is_classified_from_its_own_last_step():
    torch.manual_seed(1)
    model = GRUClassifier(ConcatGRUCell(3, 6), num_classes=4)
    X = torch.randn(5, 7, 3)
    changed = X.clone()
    changed[0, -1] += 1.0  # only the last step of example 0
    before, after = model(X), model(changed)
    assert not torch.allclose(before[0], after[0])
    assert torch.equal(before[1:], after[1:])

    def blog_readout(inputs):  # the seed's out[-1, :]: the last example of the batch, every time step
        return model.head(model.states(inputs)[-1, :])

    assert torch.equal(blog_readout(X), blog_readout(changed))


def test_initial_state_is_used():
    torch.manual_seed(2)
    model = GRUClassifier(ConcatGRUCell(3, 6), num_classes=4)
    X = torch.randn(2, 4, 3)
    assert torch.equal(model(X), model(X, torch.zeros(2, 6)))
    assert not torch.allclose(model(X), model(X, torch.ones(2, 6)))


@pytest.fixture
def one_thread():
    """Tiny models train many times faster on one thread than on several competing for busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_classifier_learns_to_recall_the_first_symbol_with_train_on_task(one_thread):
    train, val = recall_task(700, seq_len=5, position=0, num_symbols=4, seed=0).split(600)
    torch.manual_seed(0)
    model = GRUClassifier(ConcatGRUCell(4, 16), num_classes=4)
    history = train_on_task(model, train, val, steps=100, lr=3e-2, eval_every=50)
    assert history.final > 0.9 and evaluate(model, val) == history.final


@pytest.mark.parametrize("X, h0, message", [
    (torch.zeros(4, 3), None, r"batch-first inputs of shape \(B, T, 3\), got \(4, 3\)"),
    (torch.zeros(4, 5, 2), None, r"\(B, T, 3\), got \(4, 5, 2\)"),
    ([[1.0]], None, r"\(B, T, 3\), got list"),
    (torch.zeros(4, 0, 3), None, r"empty sequence"),
    (torch.zeros(4, 5, 3), torch.zeros(6), r"h0 of shape \(4, 6\) \(batch, num_hiddens\), got \(6,\)"),
])
def test_bad_inputs_are_clear_errors(X, h0, message):
    model = GRUClassifier(ConcatGRUCell(3, 6), num_classes=4)
    with pytest.raises(ValueError, match=message):
        model(X, h0)


def test_bad_construction_is_an_error():
    with pytest.raises(TypeError, match="lacks input_size, hidden_size"):
        GRUClassifier(nn.Linear(3, 6), num_classes=4)
    with pytest.raises(ValueError, match="num_classes to be at least 2, got 1"):
        GRUClassifier(ConcatGRUCell(3, 6), num_classes=1)
