"""A recurrent layer with a linear head on its last step, and a small training loop for
:class:`utils.tasks.SequenceTask` problems (classification or regression).

Any recurrent layer of the course works: it takes time-major ``(T, B, num_inputs)`` inputs and returns
``(outputs, state)`` with ``outputs`` of shape ``(T, B, num_hiddens)`` (``GRUScratch``, ``nn.GRU``,
``nn.RNN``, ``nn.LSTM`` and the other cells of ``utils``).
"""
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from utils.shapes import check_positive_numbers, check_sizes
from utils.tasks import SequenceTask
from utils.training import seed_everything


class LastStepModel(nn.Module):
    """``rnn`` followed by a linear layer on the output of the last time step.

    ``forward(X)`` takes batch-first ``X`` of shape ``(B, T, num_inputs)`` and returns ``(B, num_outputs)``.
    """

    def __init__(self, rnn: nn.Module, num_hiddens: int, num_outputs: int):
        super().__init__()
        check_sizes("LastStepModel", num_hiddens=num_hiddens, num_outputs=num_outputs)
        if getattr(rnn, "batch_first", False):
            raise ValueError(f"LastStepModel feeds its rnn time-major inputs (T, B, num_inputs); got a "
                             f"{type(rnn).__name__} with batch_first=True, which would run the recurrence over "
                             "the batch axis: build it with batch_first=False")
        width = getattr(rnn, "num_hiddens", getattr(rnn, "hidden_size", num_hiddens))
        if width != num_hiddens:
            raise ValueError(f"LastStepModel's head reads num_hiddens={num_hiddens} features, but the "
                             f"{type(rnn).__name__} outputs {width}: pass num_hiddens={width}")
        self.rnn = rnn
        self.head = nn.Linear(num_hiddens, num_outputs)

    def forward(self, X):
        if X.dim() != 3:
            raise ValueError(f"LastStepModel expects batch-first inputs (B, T, num_inputs), got {tuple(X.shape)}")
        outputs, _ = self.rnn(X.transpose(0, 1))
        return self.head(outputs[-1])


@dataclass
class TaskHistory:
    """Training loss per step, and the validation metric (accuracy or MSE) at ``eval_steps``."""

    metric: str
    losses: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    val_metric: list = field(default_factory=list)

    @property
    def final(self) -> float:
        return self.val_metric[-1]


def check_outputs(task: SequenceTask, outputs, targets) -> None:
    """A model's ``outputs`` must fit ``targets``: for classification, ``(B, C)`` scores with at least a score
    per class of the task (``C >= task.num_outputs``); for regression, the shape of ``targets``."""
    if task.kind == "classification":
        if outputs.dim() != 2 or outputs.shape[-1] < task.num_outputs:
            raise ValueError(f"the task {task.name!r} has {task.num_outputs} classes (0 to {task.num_outputs - 1}), "
                             f"but the model's outputs have shape {tuple(outputs.shape)}: its head must give "
                             f"(B, {task.num_outputs}) scores, so build it with num_outputs={task.num_outputs}")
    elif outputs.shape != targets.shape:
        raise ValueError(f"regression outputs of shape {tuple(outputs.shape)} and targets of shape "
                         f"{tuple(targets.shape)} differ: the loss would broadcast them to each other; give the "
                         "targets the shape (N, num_outputs)")


def loss_fn(task: SequenceTask, outputs, targets):
    """Cross-entropy for classification (``outputs`` (B, C), ``targets`` (B,) class indices), mean squared
    error for regression (``outputs`` and ``targets`` of the same shape (B, num_outputs))."""
    check_outputs(task, outputs, targets)
    if task.kind == "classification":
        return F.cross_entropy(outputs, targets)
    return F.mse_loss(outputs, targets)


@torch.no_grad()
def evaluate(model: nn.Module, task: SequenceTask, batch_size: int = 1024) -> float:
    """Accuracy (classification) or mean squared error (regression) of ``model`` on ``task``."""
    check_sizes("evaluate", batch_size=batch_size)
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(task.X), batch_size):
        out = model(task.X[start:start + batch_size])
        target = task.y[start:start + batch_size]
        check_outputs(task, out, target)
        if task.kind == "classification":
            total += (out.argmax(dim=-1) == target).sum().item()
        else:
            total += loss_fn(task, out, target).item() * len(target)
    model.train(was_training)
    return total / len(task.X)


def train_on_task(model: nn.Module, train: SequenceTask, val: SequenceTask, *, steps: int,
                  batch_size: int = 64, lr: float = 1e-3, clip: float = 1.0, eval_every: int = 50,
                  seed: int = 0) -> TaskHistory:
    """Train with Adam on random minibatches of ``train`` for ``steps`` steps, clipping the gradient norm
    at ``clip``; evaluate on ``val`` every ``eval_every`` steps and at the end."""
    if train.kind != val.kind:
        raise ValueError(f"train is a {train.kind} task but val is a {val.kind} task")
    check_sizes("train_on_task", steps=steps, batch_size=batch_size, eval_every=eval_every)
    check_positive_numbers("train_on_task", lr=lr, clip=clip)
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = TaskHistory("accuracy" if train.kind == "classification" else "mse")
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(train.X), (batch_size,), generator=generator)
        loss = loss_fn(train, model(train.X[idx]), train.y[idx])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        history.losses.append(loss.item())
        if step % eval_every == 0 or step == steps:
            history.eval_steps.append(step)
            history.val_metric.append(evaluate(model, val))
    return history
