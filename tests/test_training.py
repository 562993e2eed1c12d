"""The live progress board, the fit helper and the perplexity."""
import math
import re

import d2l.torch as d2l
import pytest
import torch

from utils import training
from utils.data import TimeMachine
from utils.gru import GRUScratch


def test_board_averages_every_n_points_like_d2l():
    ours = training.LiveProgressBoard(display=False)
    theirs = d2l.ProgressBoard(display=False)
    for i in range(9):
        ours.draw(i, i * i, "y", every_n=3)
        theirs.draw(i, i * i, "y", every_n=3)
    flat = lambda board: [v for p in board.data["y"] for v in p]  # noqa: E731
    assert flat(ours) == pytest.approx(flat(theirs)) and len(ours.data["y"]) == 3


@pytest.fixture
def displays(monkeypatch):
    """Records what the board shows: {'shown': [...], 'updated': [...]} (figures, in order)."""
    calls = {"shown": [], "updated": []}

    class Handle:
        def update(self, fig):
            calls["updated"].append(fig)

    monkeypatch.setattr(training.display, "display", lambda fig, display_id: calls["shown"].append(fig) or Handle())
    return calls


@pytest.mark.parametrize("min_interval, updates", [(0.0, 5), (3600.0, 1)], ids=["every-draw", "throttled"])
def test_board_shows_one_display_updated_in_place(displays, min_interval, updates):
    board = training.LiveProgressBoard(min_interval=min_interval)
    for i in range(5):
        board.draw(i, float(i), "train_loss")
    board.finish()
    # one display; then every draw updates it, or (throttled) only the final one does
    assert len(displays["shown"]) == 1 and len(displays["updated"]) == updates
    assert len(board.fig.axes[0].lines) == 1  # cleared before each redraw, not stacked


def test_seed_everything_repeats_a_run():
    def run():
        training.seed_everything(3)
        data = TimeMachine(batch_size=8, num_steps=6, num_train=32, num_val=16)
        model = d2l.RNNLMScratch(GRUScratch(len(data.vocab), 8), vocab_size=len(data.vocab), lr=1)
        result = training.fit(model, data, d2l.Trainer(max_epochs=2, gradient_clip_val=1), display=False)
        return result, training.perplexity(model, data.val_dataloader())

    (first, ppl1), (second, ppl2) = run(), run()
    assert first.curves == second.curves and ppl1 == ppl2
    assert set(first.curves) == {"train_ppl", "val_ppl"}
    assert len(first.curves["val_ppl"][1]) == 2  # one validation point per epoch
    assert first.epochs == 2 and first.seconds > 0 and first.tokens_per_second > 0
    assert first.seconds_per_epoch == pytest.approx(first.seconds / 2)
    assert 1 < ppl1 < 28 * 1.5  # a 28-token vocabulary: near-uniform at worst
    with pytest.raises(KeyError, match="train_ppl"):
        first.final("train_loss")


def test_perplexity_is_exp_of_token_weighted_cross_entropy():
    class Uniform(d2l.Classifier):
        def forward(self, X):
            return torch.zeros(X.shape[0], X.shape[1], 5)

    data = [(torch.zeros(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))]
    assert training.perplexity(Uniform(), data) == pytest.approx(5.0)
    class Diverged(d2l.Classifier):
        def forward(self, X):
            return torch.zeros(X.shape[0], X.shape[1], 5).index_fill_(-1, torch.tensor([0]), 1e6)

    assert training.perplexity(Diverged(), data) == math.inf  # cross-entropy 1e6: exp would overflow
    with pytest.raises(ValueError, match="no tokens"):
        training.perplexity(Uniform(), [])


def test_perplexity_leaves_the_training_flag_as_it_was():
    model = d2l.RNNLMScratch(GRUScratch(28, 4), vocab_size=28)
    model.train()
    X = torch.randint(0, 28, (2, 3))
    training.perplexity(model, [(X, X)])
    assert model.training and math.isfinite(training.perplexity(model, [(X, X)]))


def test_the_live_curve_says_which_epoch_and_how_long(displays):
    board = training.LiveProgressBoard(min_interval=0.0, max_epochs=10)
    board.draw(1.0, 5.0, "train_ppl")
    board.draw(3.0, 4.0, "train_ppl")
    assert re.fullmatch(r"epoch 3 of 10, \d+ s elapsed", board.progress())
    assert board.axes is None and displays["updated"][-1].axes[0].get_title().startswith("epoch 3 of 10")
