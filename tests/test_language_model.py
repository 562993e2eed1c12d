import d2l.torch as d2l
import pytest
from torch import nn

from utils.data import TimeMachine
from utils.gru import GRUScratch
from utils.language_model import language_model, train_language_model


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
