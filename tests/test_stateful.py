"""The lecture's setting: old d2l's corpus, sequential minibatches that continue each other's rows, and
training that carries the state across minibatches, detached."""
import d2l.torch as d2l
import pytest
import torch
from torch import nn

from utils.language_model import language_model
from utils.stateful import (LECTURE_TOKENS, count_minibatches, old_d2l_corpus, sequential_minibatches,
                            train_stateful)


@pytest.fixture(scope="module")
def corpus():
    return old_d2l_corpus()


def test_old_d2l_corpus_joins_stripped_lines_and_keeps_28_tokens(corpus):
    tokens, vocab = corpus
    text = "".join(vocab.idx_to_token[i] for i in tokens[:40])
    assert len(vocab) == 28 and text.startswith("the time machine by h g wellsi")  # lines joined with no space
    short, _ = old_d2l_corpus(LECTURE_TOKENS)
    assert short == tokens[:LECTURE_TOKENS]


def test_consecutive_minibatches_continue_each_others_rows(corpus):
    tokens = corpus[0][:LECTURE_TOKENS]
    batches = list(sequential_minibatches(tokens, 32, 35, offset=3))
    assert len(batches) == count_minibatches(len(tokens), 32, 35, 3) == 8
    for (X, Y), (X_next, _) in zip(batches, batches[1:]):
        assert X.shape == Y.shape == (32, 35)
        assert torch.equal(X[:, 1:], Y[:, :-1]) and torch.equal(X_next[:, 0], Y[:, -1])  # row b goes on in row b
    rows = torch.cat([X for X, _ in batches], dim=1)
    per_row = (len(tokens) - 3 - 1) // 32
    assert torch.equal(rows[1], torch.tensor(tokens[3 + per_row: 3 + per_row + rows.shape[1]]))


class Recording(nn.Module):
    """A GRU that records the state each call starts from."""

    def __init__(self, gru):
        super().__init__()
        self.gru, self.starts = gru, []

    def forward(self, inputs, state=None):
        self.starts.append(None if state is None else (state.detach().clone(), state.requires_grad))
        return self.gru(inputs, state)


@pytest.mark.parametrize("carry", [True, False])
def test_the_state_is_carried_detached_or_restarted(corpus, carry):
    tokens, vocab = corpus[0][:2000], corpus[1]
    torch.manual_seed(0)
    model = language_model(d2l.GRU(len(vocab), 8, num_layers=1), len(vocab), lr=1)
    model.rnn = Recording(model.rnn.rnn)
    run = train_stateful(model, tokens, batch_size=4, num_steps=10, lr=1, num_epochs=2, carry_state=carry,
                         progress=False)
    per_epoch = len(model.rnn.starts) // 2
    assert len(run.train_perplexity) == 2 and run.tokens == 2 * per_epoch * 4 * 10
    for epoch in range(2):
        starts = model.rnn.starts[epoch * per_epoch:(epoch + 1) * per_epoch]
        assert starts[0] is None  # every epoch starts from a zero state
        if carry:
            assert all(s is not None and not s[1] and s[0].abs().sum() > 0 for s in starts[1:])  # carried, detached
        else:
            assert all(s is None for s in starts)


def test_training_is_seeded_and_scored_on_held_out_text(corpus):
    tokens, vocab = corpus
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = language_model(d2l.GRU(len(vocab), 8, num_layers=1), len(vocab), lr=1)
        runs.append(train_stateful(model, tokens[:2000], batch_size=4, num_steps=10, lr=1, num_epochs=3, seed=1,
                                   held_out=torch.tensor(tokens[2000:2300]), eval_every=2, progress=False))
    assert runs[0].train_perplexity == runs[1].train_perplexity and runs[0].eval_epochs == [2, 3]
    assert runs[0].held_out_perplexity == runs[1].held_out_perplexity and runs[0].best_epoch in (2, 3)


def test_bad_offsets_are_refused(corpus):
    with pytest.raises(ValueError, match="offset must be in"):
        next(sequential_minibatches(corpus[0][:100], 4, 5, offset=200))
