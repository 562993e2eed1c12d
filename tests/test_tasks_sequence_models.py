import pytest
import torch
from torch import nn

from utils.gru import GRUScratch
from utils.sequence_models import LastStepModel, evaluate, train_on_task
from utils.tasks import adding_problem, recall_task


def test_recall_task_targets_the_symbol_at_the_position():
    task = recall_task(50, seq_len=10, position=3, num_symbols=5, seed=1)
    assert task.X.shape == (50, 10, 5) and task.y.shape == (50,) and task.num_outputs == 5
    assert torch.equal(task.X[:, 3].argmax(-1), task.y)
    assert torch.equal(task.X, recall_task(50, 10, 3, 5, seed=1).X)
    assert not torch.equal(task.X, recall_task(50, 10, 3, 5, seed=2).X)


def test_adding_problem_marks_one_step_in_each_half_and_sums_them():
    task = adding_problem(40, seq_len=12, seed=0)
    values, markers = task.X[..., 0], task.X[..., 1]
    assert (markers[:, :6].sum(1) == 1).all() and (markers[:, 6:].sum(1) == 1).all()
    assert torch.allclose((values * markers).sum(1, keepdim=True), task.y)


@pytest.mark.parametrize("call, message", [
    (lambda: recall_task(5, 4, position=4), "position must be in 0..3"),
    (lambda: recall_task(5, 4, num_symbols=1), "num_symbols"),
    (lambda: adding_problem(5, 1), "seq_len must be at least 2"),
    (lambda: recall_task(5, 4).split(5), "num_train must be in 1..4"),
])
def test_bad_task_arguments_are_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_gru_learns_short_recall_and_training_is_seeded():
    train, val = recall_task(600, seq_len=5, position=1, num_symbols=4, seed=0).split(500)

    def run():
        torch.manual_seed(0)
        model = LastStepModel(GRUScratch(4, 16, sigma=0.3), 16, 4)
        return model, train_on_task(model, train, val, steps=300, lr=1e-2, eval_every=100)

    (model, history), (_, again) = run(), run()
    assert history.eval_steps == [100, 200, 300] and len(history.losses) == 300
    assert history.val_metric == again.val_metric
    assert history.final > 0.9 and evaluate(model, val) == history.final


def test_regression_metric_is_mse_and_works_with_nn_gru():
    train, val = adding_problem(200, seq_len=6).split(150)
    model = LastStepModel(nn.GRU(2, 8), 8, 1)
    history = train_on_task(model, train, val, steps=20, eval_every=10)
    assert history.metric == "mse" and history.final >= 0
    with torch.no_grad():
        assert evaluate(model, val) == pytest.approx(((model(val.X) - val.y) ** 2).mean().item(), rel=1e-5)


def test_last_step_model_rejects_2d_input():
    with pytest.raises(ValueError, match=r"batch-first inputs \(B, T, num_inputs\), got \(3, 4\)"):
        LastStepModel(nn.GRU(4, 8), 8, 2)(torch.zeros(3, 4))
