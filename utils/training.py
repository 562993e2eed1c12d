"""Training with d2l's Trainer, a live curve that does not bloat notebooks, and measured results.

d2l's ``ProgressBoard`` plots every line again at each draw without clearing the axes and displays a new
figure each time, so a stored notebook grows by hundreds of KB per training cell and epochs slow down.
:class:`LiveProgressBoard` keeps d2l's averaging but redraws into one display (updated in place) at most
every ``min_interval`` seconds, plus once at the end: the learner still sees a live curve, and the stored
notebook holds one figure per training run.
"""
import collections
import math
import random
import time
from sys import float_info
from dataclasses import dataclass, field

import d2l.torch as d2l
import numpy as np
import torch
from IPython import display
from matplotlib import pyplot as plt

from utils.shapes import check_token_ids

Point = collections.namedtuple("Point", ["x", "y"])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators, so that a run gives the same numbers again."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed_everything expects an int seed in [0, 2**32), got {seed!r} (NumPy accepts no other)")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LiveProgressBoard(d2l.ProgressBoard):
    """A ``d2l.ProgressBoard`` that redraws one figure in place, at most every ``min_interval`` seconds, titled
    with the epoch reached (of ``max_epochs``) and the time elapsed.

    ``data`` maps each label (``'train_ppl'``, ``'val_ppl'``, ...) to its list of averaged points, as in
    d2l. Call :meth:`finish` after training to draw the final curve.
    """

    def __init__(self, *, min_interval=2.0, max_epochs=None, **kwargs):
        super().__init__(**kwargs)
        self.min_interval, self.max_epochs = min_interval, max_epochs
        self._start = time.monotonic()
        self.raw_points = collections.OrderedDict()
        self.data = collections.OrderedDict()
        self._handle = None
        self._last_draw = -math.inf

    def draw(self, x, y, label, every_n=1):
        """Add point ``(x, y)`` to line ``label``; every ``every_n`` points are averaged into one."""
        points = self.raw_points.setdefault(label, [])
        line = self.data.setdefault(label, [])
        points.append(Point(x, y))
        if len(points) < max(int(every_n), 1):
            return
        line.append(Point(float(np.mean([p.x for p in points])), float(np.mean([p.y for p in points]))))
        points.clear()
        if self.display and time.monotonic() - self._last_draw >= self.min_interval:
            self._redraw()

    def progress(self) -> str:
        """What the title of the live curve says: the epoch reached (of ``max_epochs``) and the time elapsed."""
        epoch = max((line[-1].x for line in self.data.values() if line), default=0.0)
        total = f" of {self.max_epochs}" if self.max_epochs else ""
        return f"epoch {epoch:.0f}{total}, {time.monotonic() - self._start:.0f} s elapsed"

    def finish(self):
        """Draw the final state of every line (no-op when ``display`` is False)."""
        if self.display and self.data:
            self._redraw()
        if self.fig is not None:
            plt.close(self.fig)

    def _redraw(self):
        if self.fig is None:
            self.fig = plt.figure(figsize=self.figsize)
            plt.close(self.fig)  # shown through the display handle only, not again at the cell's end
        axes = self.axes if self.axes is not None else (self.fig.axes[0] if self.fig.axes else self.fig.add_subplot())
        axes.cla()
        for (label, line), ls, color in zip(self.data.items(), self.ls, self.colors):
            axes.plot([p.x for p in line], [p.y for p in line], linestyle=ls, color=color, label=label)
        if self.xlim:
            axes.set_xlim(self.xlim)
        if self.ylim:
            axes.set_ylim(self.ylim)
        axes.set_xlabel(self.xlabel or "")
        axes.set_ylabel(self.ylabel or "")
        axes.set_xscale(self.xscale)
        axes.set_yscale(self.yscale)
        axes.legend()
        axes.set_title(self.progress(), fontsize=10)
        if self._handle is None:
            self._handle = display.display(self.fig, display_id=True)
        else:
            self._handle.update(self.fig)
        self._last_draw = time.monotonic()


@dataclass
class TrainingResult:
    """What one training run measured.

    ``curves`` maps each plotted label to ``(xs, ys)`` lists; ``seconds`` is the wall time of
    ``trainer.fit``; ``tokens_per_second`` counts training tokens (forward and backward) when the data
    module has ``num_train`` and ``num_steps``, else it is None.
    """

    curves: dict = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0
    tokens_per_second: float | None = None

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1)

    def final(self, label: str) -> float:
        """Last value of line ``label``, e.g. ``result.final('train_ppl')``."""
        if label not in self.curves:
            raise KeyError(f"no curve {label!r}; this run plotted {sorted(self.curves)}")
        return self.curves[label][1][-1]


def fit(model, data, trainer, *, ylabel=None, yscale="linear", display=True, min_interval=2.0):
    """Train ``model`` on ``data`` with a d2l ``trainer``, showing a live curve; return a TrainingResult.

    The model's d2l board is replaced by a :class:`LiveProgressBoard` before training.
    """
    model.board = LiveProgressBoard(xlabel="epoch", ylabel=ylabel, yscale=yscale, display=display,
                                    min_interval=min_interval, max_epochs=trainer.max_epochs)
    start = time.perf_counter()
    trainer.fit(model, data)
    seconds = time.perf_counter() - start
    model.board.finish()
    curves = {label: ([p.x for p in line], [p.y for p in line]) for label, line in model.board.data.items()}
    tokens = None
    if hasattr(data, "num_train") and hasattr(data, "num_steps"):
        tokens = data.num_train * data.num_steps * trainer.max_epochs / seconds
    return TrainingResult(curves=curves, seconds=seconds, epochs=trainer.max_epochs, tokens_per_second=tokens)


@torch.no_grad()
def perplexity(model, dataloader) -> float:
    """Perplexity ``exp(mean cross-entropy per token)`` of a d2l language model over a dataloader.

    Unlike d2l's plotted ``val_ppl`` (the mean of per-batch perplexities), this weights every token
    equally, so it does not depend on the batch size. A diverged model gives ``inf``. ``X`` and ``Y`` must
    be ``torch.int64`` token indices within the model's vocabulary.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for X, Y in dataloader:
        check_token_ids("perplexity", "the inputs X", X, getattr(model, "vocab_size", None))
        outputs = model(X)
        check_token_ids("perplexity", "the targets Y", Y, outputs.shape[-1])
        total += model.loss(outputs, Y, averaged=False).sum().item()
        count += Y.numel()
    model.train(was_training)
    if count == 0:
        raise ValueError("perplexity: the dataloader yielded no tokens")
    mean = total / count
    return math.exp(mean) if mean < math.log(float_info.max) else math.inf  # a diverged model: inf
