import d2l.torch as d2l
import pytest
import torch
from torch import nn

from utils.lstm import LSTM, LSTMScratch

NUM_INPUTS, NUM_HIDDENS, T, B = 3, 4, 6, 2


def scratch_from_torch(lstm: nn.LSTM) -> LSTMScratch:
    """Copy an nn.LSTM's weights (rows: input, forget, cell, output gates) into an LSTMScratch."""
    model = LSTMScratch(lstm.input_size, lstm.hidden_size).double()
    h = lstm.hidden_size
    bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
    with torch.no_grad():
        for k, gate in enumerate("ifco"):
            rows = slice(k * h, (k + 1) * h)
            getattr(model, f"W_x{gate}").copy_(lstm.weight_ih_l0[rows].T)
            getattr(model, f"W_h{gate}").copy_(lstm.weight_hh_l0[rows].T)
            getattr(model, f"b_{gate}").copy_(bias[rows])
    return model


def test_lstm_scratch_equals_torch_lstm():
    torch.manual_seed(0)
    lstm = nn.LSTM(NUM_INPUTS, NUM_HIDDENS).double()
    scratch = scratch_from_torch(lstm)
    X = torch.randn(T, B, NUM_INPUTS, dtype=torch.float64)
    H0, C0 = torch.randn(2, B, NUM_HIDDENS, dtype=torch.float64)
    outputs, (H, C) = scratch(X, (H0, C0))
    expected, (H_t, C_t) = lstm(X, (H0[None], C0[None]))
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(H, H_t[0])
    torch.testing.assert_close(C, C_t[0])


@pytest.mark.parametrize("make_rnn, lm_class", [(lambda v: LSTMScratch(v, 8), d2l.RNNLMScratch),
                                                (lambda v: LSTM(v, 8), d2l.RNNLM)])
def test_both_lstms_serve_in_d2l_language_models(make_rnn, lm_class):
    torch.manual_seed(0)
    lm = lm_class(make_rnn(28), vocab_size=28, lr=1)
    X = torch.randint(0, 28, (B, T))
    assert lm(X).shape == (B, T, 28)
    vocab = d2l.Vocab(list("abcdefghijklmnopqrstuvwxyz "))
    assert len(lm.predict("ab", 4, vocab)) == 6


def test_concise_lstm_holds_one_torch_lstm():
    model = LSTM(NUM_INPUTS, NUM_HIDDENS)
    assert isinstance(model.rnn, nn.LSTM) and model.num_hiddens == NUM_HIDDENS
    outputs, (H, C) = model(torch.zeros(T, B, NUM_INPUTS))
    assert outputs.shape == (T, B, NUM_HIDDENS) and H.shape == C.shape == (1, B, NUM_HIDDENS)


def test_lstm_scratch_rejects_bad_inputs_and_states():
    model = LSTMScratch(NUM_INPUTS, NUM_HIDDENS)
    with pytest.raises(ValueError, match=r"\(T, B, 3\), got \(6, 2\)"):
        model(torch.zeros(T, B))
    with pytest.raises(ValueError, match=r"\(T, B, 3\), got list"):
        model([[0.0]])
    with pytest.raises(ValueError, match=r"state \(H, C\) of two \(2, 4\) tensors"):
        model(torch.zeros(T, B, NUM_INPUTS), torch.zeros(B, NUM_HIDDENS))
