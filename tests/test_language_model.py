import math

import d2l.torch as d2l
import pytest
import torch
from torch import nn

from utils.data import TimeMachine
from utils.fast_gru import FastGRU
from utils.gru import GRUScratch
from utils.language_model import language_model, stream_perplexity, train_language_model


@pytest.fixture(scope="module")
def tiny_data():
    return TimeMachine(batch_size=8, num_steps=6, num_train=32, num_val=16)


def test_scratch_and_concise_layers_get_the_right_d2l_model():
    assert type(language_model(GRUScratch(28, 4), 28, lr=1)) is d2l.RNNLMScratch
    assert type(language_model(d2l.GRU(28, 4, num_layers=1), 28, lr=1)) is d2l.RNNLM
    with pytest.raises(TypeError, match="no attribute 'num_hiddens'"):
        language_model(nn.Linear(28, 4), 28, lr=1)


@pytest.mark.parametrize("make_rnn", [lambda v: GRUScratch(v, 8), lambda v: d2l.GRU(v, 8, num_layers=1)],
                         ids=["scratch", "concise"])
def test_train_language_model_measures_a_run(tiny_data, make_rnn):
    run = train_language_model("gru", make_rnn, tiny_data, lr=1, max_epochs=2, display=False, num_preds=5)
    again = train_language_model("gru", make_rnn, tiny_data, lr=1, max_epochs=2, display=False, num_preds=5)
    assert run.val_perplexity == again.val_perplexity and run.samples == again.samples  # seeded
    assert set(run.samples) == {"time traveller", "it has"}
    assert all(s.startswith(p) and len(s) == len(p) + 5 for p, s in run.samples.items())
    assert run.num_params == sum(p.numel() for p in run.model.parameters()) > 0
    row = run.row()
    assert row["model"] == "gru" and row["val ppl"] == run.val_perplexity and row["tokens/s"] > 0


def test_the_fast_gru_is_one_switch_away_and_trains_like_its_eager_twin(tiny_data):
    """The hand-written backward trains a language model exactly as autograd does on the same math."""
    runs = {step: train_language_model("gru", lambda v: FastGRU(v, 8, step), tiny_data, lr=1, max_epochs=2,
                                       display=False, num_preds=5) for step in ("reset_after", "backward")}
    assert abs(runs["backward"].val_perplexity - runs["reset_after"].val_perplexity) < 1e-4
    assert runs["backward"].samples == runs["reset_after"].samples
    assert type(runs["backward"].model.rnn) is FastGRU


def test_stream_perplexity_scores_every_character_from_all_before_it(tiny_data):
    run = train_language_model("gru", lambda v: GRUScratch(v, 8), tiny_data, lr=1, max_epochs=1, display=False)
    tokens = tiny_data.tokens(100, 160)
    model = run.model
    with torch.no_grad():
        logits = model(tokens[None, :-1])[0]
        by_hand = math.exp(-sum(torch.log_softmax(logits[i], -1)[tokens[i + 1]].item() for i in range(59)) / 59)
    assert abs(stream_perplexity(model, tokens) - by_hand) < 1e-6 * by_hand
    with pytest.raises(ValueError, match="at least 2 tokens"):
        stream_perplexity(model, tokens[:1])
