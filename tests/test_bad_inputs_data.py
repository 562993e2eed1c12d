"""Bad input to the data, forecasting, training and sampling code gets a clear error from the course's own code
(what was expected, what came), never a silent wrong answer or an error from deep inside torch or NumPy."""
import math
import socket
import threading
import time

import d2l.torch as d2l
import numpy as np
import pytest
import requests
import torch
from torch import nn

from utils import data, language_model as lm, paths
from utils.blog_cells import ConcatGRUCell
from utils.classifier import GRUClassifier
from utils.forecasting import (ChangeFromLast, LinearAR, Standardizer, TimeSplit, forecast_origins,
                               last_value_forecast, seasonal_naive_forecast, time_split, torch_predictor, windows)
from utils.gru import GRUScratch
from utils.language_model import language_model, stream_perplexity, train_language_model
from utils.sampling import generate, next_token
from utils.sequence_models import LastStepModel, evaluate, train_on_task
from utils.stateful import StatefulRun, old_d2l_corpus, train_stateful
from utils.tasks import SequenceTask, adding_problem, recall_task
from utils.training import perplexity

SERIES = np.arange(20.0)
VOCAB = d2l.Vocab(list("abcdefghijklmnopqrstuvwxyz "))  # 28 tokens, as the Time Machine's


def escaped(value):
    return repr(value).replace(".", "[.]")


@pytest.fixture(scope="module")
def tiny_data():
    return data.TimeMachine(batch_size=8, num_steps=6, num_train=32, num_val=16)


def tiny_model():
    torch.manual_seed(0)
    return language_model(GRUScratch(len(VOCAB), 4), len(VOCAB), lr=1)


# --- sizes and indices that must be ints -----------------------------------------------------------------

@pytest.mark.parametrize("max_tokens", [0, -5, 2.5, True])
def test_old_d2l_corpus_names_a_bad_number_of_tokens(max_tokens):
    with pytest.raises(ValueError, match=rf"old_d2l_corpus expects max_tokens to be a positive int, got "
                                         rf"{escaped(max_tokens)}"):
        old_d2l_corpus(max_tokens)


def test_old_d2l_corpus_refuses_more_tokens_than_the_book_has():
    with pytest.raises(ValueError, match=r"first 10000000 characters, but the book has only \d+: pass max_tokens=None"):
        old_d2l_corpus(10**7)


def test_tokens_names_a_float_bound(tiny_data):
    with pytest.raises(ValueError, match=r"TimeMachine.tokens expects start to be an int, got 0[.]5"):
        tiny_data.tokens(0.5, 5)


@pytest.mark.parametrize("call, message", [
    (lambda: time_split(10, 2.5, 2), "time_split expects num_val to be an int, got 2.5"),
    (lambda: time_split(10, True, 2), "time_split expects num_val to be an int, got True"),
    (lambda: TimeSplit(5.5, 7, 10), "TimeSplit expects train_end to be an int, got 5.5"),
    (lambda: TimeSplit(7, 5, 10), r"0 < train_end < val_end < length .* got train_end=7, val_end=5, length=10"),
    (lambda: windows(SERIES, 2.5, 0, 10), "windows expects window to be an int, got 2.5"),
    (lambda: windows(SERIES, True, 0, 10), "windows expects window to be an int, got True"),
    (lambda: windows(SERIES, 2, 0, 9.0), "windows expects stop to be an int, got 9.0"),
    (lambda: forecast_origins(TimeSplit(5, 7, 10), "test", 2.5), "expects horizon to be an int, got 2.5"),
    (lambda: last_value_forecast(SERIES, [3], 2.5), "expects horizon to be an int, got 2.5"),
    (lambda: last_value_forecast(SERIES, [3], True), "expects horizon to be an int, got True"),
    (lambda: seasonal_naive_forecast(SERIES, [5], 1, period=True), "expects period to be an int, got True"),
    (lambda: LinearAR(2.5), "LinearAR expects order to be an int, got 2.5"),
    (lambda: LinearAR(True), "LinearAR expects order to be an int, got True"),
    (lambda: Standardizer(0.0, 0.0), "Standardizer expects std to be a positive finite number, got 0.0"),
    (lambda: Standardizer(math.nan, 1.0), "Standardizer expects mean to be a finite number, got nan"),
    (lambda: recall_task(5.5, 4), "recall_task expects num_samples to be a positive int, got 5.5"),
    (lambda: recall_task(5, 4, position=True), "recall_task expects position to be a non-negative int, got True"),
    (lambda: adding_problem(5, 4, seed=0.5), "adding_problem expects seed to be a non-negative int, got 0.5"),
    (lambda: recall_task(5, 4).split(2.5), "SequenceTask.split expects num_train to be an int, got 2.5"),
])
def test_a_float_or_bool_size_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_forecasts_and_splits_with_good_ints_are_unchanged():
    assert time_split(np.int64(10), 2, 2) == TimeSplit(6, 8, 10)
    assert last_value_forecast(SERIES, [3], 2).tolist() == [[3.0, 3.0]]


# --- forecasting ---------------------------------------------------------------------------------------------

def test_linear_ar_refuses_missing_values_instead_of_nan_coefficients():
    X, y = windows(SERIES, 2, 0, 20)
    y[3] = math.nan
    with pytest.raises(ValueError, match=r"LinearAR.fit expects finite y, got 1 missing .* \(first at index \(3,\)\)"):
        LinearAR(2).fit(X, y)
    X[4, 1] = math.inf
    with pytest.raises(ValueError, match=r"LinearAR\(2\) expects finite windows, got 1 .* \(first at index \(4, 1\)\)"):
        LinearAR(2).fit(X, SERIES[2:])


def test_change_from_last_names_bad_windows():
    model = ChangeFromLast(LastStepModel(nn.GRU(1, 4), 4, 1))
    with pytest.raises(ValueError, match=r"windows of shape \(B, T, 1\), got ndarray"):
        model(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=r"empty windows \(T = 0\)"):
        model(torch.zeros(2, 0, 1))
    with pytest.raises(TypeError, match=r"windows X of dtype torch.float32 .*, got torch.float64"):
        model(torch.zeros(2, 3, 1, dtype=torch.float64))


def test_torch_predictor_names_a_single_window():
    predict = torch_predictor(ChangeFromLast(LastStepModel(nn.GRU(1, 4), 4, 1)))
    with pytest.raises(ValueError, match=r"windows of shape \(N, window\) with window >= 1, got \(5,\); .* w\[None\]"):
        predict(np.zeros(5))
    assert predict(np.zeros((1, 5))).shape == (1,)


# --- sequence tasks --------------------------------------------------------------------------------------

def test_a_task_refuses_float_class_labels_and_labels_outside_its_classes():
    task = recall_task(6, 4, num_symbols=3)
    with pytest.raises(TypeError, match="class indices y of dtype torch.int64, got torch.float32"):
        SequenceTask("t", task.X, task.y.float(), "classification", 3)
    with pytest.raises(ValueError, match=r"num_outputs=2 classes, so y must lie in \[0, 2\), got classes 0 to 2"):
        SequenceTask("t", task.X, task.y, "classification", 2)
    with pytest.raises(TypeError, match="X must hold floats, got torch.int64"):
        SequenceTask("t", task.X.long(), task.y, "classification", 3)


def test_an_empty_task_is_refused():
    with pytest.raises(ValueError, match=r"needs at least one example .* got X of shape \(0, 4, 3\)"):
        SequenceTask("empty", torch.zeros(0, 4, 3), torch.zeros(0, dtype=torch.long), "classification", 3)


def test_a_classifier_head_narrower_than_the_classes_is_named():
    train, val = recall_task(40, 5, seed=0).split(30)  # 8 classes
    for model in (GRUClassifier(ConcatGRUCell(8, 4), num_classes=4), LastStepModel(nn.GRU(8, 4), 4, 4)):
        with pytest.raises(ValueError, match=r"has 8 classes \(0 to 7\), but the model's outputs have shape "
                                             r"\(\d+, 4\): its head must give \(B, 8\) scores"):
            train_on_task(model, train, val, steps=2)
        with pytest.raises(ValueError, match="has 8 classes"):
            evaluate(model, val)


def test_evaluate_names_a_bad_batch_size():
    task = recall_task(6, 4)
    with pytest.raises(ValueError, match="evaluate expects batch_size to be a positive int, got 0"):
        evaluate(LastStepModel(nn.GRU(8, 4), 4, 8), task, batch_size=0)


# --- training --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", [dict(clip=-1), dict(clip=0), dict(clip=math.nan), dict(lr=math.nan),
                                     dict(lr=-1), dict(lr=math.inf)], ids=repr)
def test_train_stateful_names_a_bad_rate_or_clip(setting):
    (name, value), = setting.items()
    settings = dict(lr=1, clip=1.0) | setting
    with pytest.raises(ValueError, match=rf"train_stateful expects {name} to be a positive finite number, got "
                                         rf"{escaped(value)}"):
        train_stateful(tiny_model(), list(range(28)) * 10, batch_size=2, num_steps=5, num_epochs=1, progress=False,
                       **settings)


def test_train_stateful_names_a_corpus_too_short_or_not_token_indices():
    with pytest.raises(ValueError, match=r"at least 56 tokens for batch_size=10 and num_steps=5 .* got 30"):
        train_stateful(tiny_model(), list(range(28)) + [0, 1], batch_size=10, num_steps=5, lr=1, num_epochs=1)
    with pytest.raises(TypeError, match="corpus to be token indices of dtype torch.int64, got torch.float32"):
        train_stateful(tiny_model(), [0.5] * 100, batch_size=2, num_steps=5, lr=1, num_epochs=1)
    with pytest.raises(ValueError, match=r"corpus in \[0, 28\) \(the model's vocabulary\), got indices from 0 to 30"):
        train_stateful(tiny_model(), list(range(31)) * 4, batch_size=2, num_steps=5, lr=1, num_epochs=1)
    with pytest.raises(TypeError, match="tokens to be token indices of dtype torch.int64, got torch.float32"):
        train_stateful(tiny_model(), list(range(28)) * 4, batch_size=2, num_steps=5, lr=1, num_epochs=1,
                       held_out=torch.zeros(10))


def test_best_epoch_of_a_run_without_held_out_scores_is_named():
    with pytest.raises(ValueError, match="no held-out perplexity to pick the best epoch from: train it with held_out"):
        StatefulRun().best_epoch


@pytest.mark.parametrize("setting, message", [
    (dict(lr=math.nan), "lr to be a positive finite number, got nan"),
    (dict(gradient_clip_val=-1), "gradient_clip_val to be a positive finite number, got -1"),
    (dict(gradient_clip_val=math.nan), "gradient_clip_val to be a positive finite number, got nan"),
    (dict(max_epochs=-1), "max_epochs to be a positive int, got -1"),
    (dict(num_preds=-3), "num_preds to be a positive int, got -3"),
    (dict(prefixes=("time", "year 1")), r"characters the vocabulary lacks: \['1'\]"),
], ids=repr)
def test_train_language_model_refuses_a_bad_setting_before_training(tiny_data, monkeypatch, setting, message):
    monkeypatch.setattr(lm, "fit", lambda *a, **k: pytest.fail("trained despite a bad setting"))
    settings = dict(lr=1, max_epochs=1, display=False) | setting
    with pytest.raises(ValueError, match=message):
        train_language_model("gru", lambda v: GRUScratch(v, 4), tiny_data, **settings)


def test_a_string_of_prefixes_is_one_prefix(tiny_data):
    run = train_language_model("gru", lambda v: GRUScratch(v, 4), tiny_data, lr=1, max_epochs=1, display=False,
                               prefixes="time", num_preds=3, validate=False)
    assert list(run.samples) == ["time"] and run.samples["time"].startswith("time")


# --- perplexity ------------------------------------------------------------------------------------------

def test_stream_perplexity_names_float_and_out_of_vocabulary_ids():
    model = tiny_model()
    with pytest.raises(TypeError, match="stream_perplexity expects the tokens to be token indices of dtype "
                                        "torch.int64, got torch.float32"):
        stream_perplexity(model, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"in \[0, 28\) \(the model's vocabulary\), got indices from 1 to 40"):
        stream_perplexity(model, torch.tensor([1, 2, 40]))


def test_perplexity_names_float_and_out_of_vocabulary_ids():
    model = tiny_model()
    X = torch.arange(6).reshape(2, 3)
    with pytest.raises(TypeError, match="the inputs X to be token indices of dtype torch.int64, got torch.float32"):
        perplexity(model, [(X.float(), X)])
    with pytest.raises(ValueError, match=r"the inputs X in \[0, 28\) .* got indices from -1 to 4"):
        perplexity(model, [(X - 1, X)])
    with pytest.raises(ValueError, match=r"the targets Y in \[0, 28\) .* got indices from 23 to 28"):
        perplexity(model, [(X, X + 23)])


# --- sampling --------------------------------------------------------------------------------------------

def test_generate_refuses_a_model_whose_outputs_are_not_finite():
    model = tiny_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(math.nan)
    for temperature in (0, 1.0):
        with pytest.raises(ValueError, match="the model's outputs are not finite"):
            generate(model, "time", 5, VOCAB, temperature=temperature, seed=0)


@pytest.mark.parametrize("logits, message", [
    (torch.tensor([0.0, math.nan, 1.0]), r"not finite \(1 NaN, 0 inf\)"),
    (torch.tensor([0.0, math.inf, 1.0]), r"not finite \(0 NaN, 1 inf\)"),
    (torch.zeros(2, 3), r"of shape \(vocab_size,\), got \(2, 3\)"),
])
@pytest.mark.parametrize("temperature", [0, 1.0])
def test_next_token_names_logits_that_are_not_one_finite_step(logits, message, temperature):
    with pytest.raises(ValueError, match=message):
        next_token(logits, temperature, None, None)


@pytest.mark.parametrize("temperature", [-1, math.nan, True])
def test_next_token_names_a_bad_temperature(temperature):
    with pytest.raises(ValueError, match="next_token expects temperature to be a finite number >= 0"):
        next_token(torch.zeros(3), temperature, None, None)


def test_generate_names_a_bad_seed_vocab_or_model():
    model = tiny_model()
    with pytest.raises(ValueError, match="generate expects seed to be a non-negative int, got 'a'"):
        generate(model, "time", 5, VOCAB, temperature=1.0, seed="a")
    with pytest.raises(TypeError, match="expected vocab to be a d2l.Vocab .* got NoneType"):
        generate(model, "time", 5, None)
    with pytest.raises(ValueError, match="a model of 28 tokens and a vocabulary of 4"):
        generate(model, "ab", 5, d2l.Vocab(list("abc")))
    with pytest.raises(TypeError, match="a d2l language model with parameters, got Identity, which has none"):
        generate(nn.Identity(), "time", 5, VOCAB)
    with pytest.raises(ValueError, match="a model on the 'meta' device, whose weights hold no values"):
        generate(tiny_model().to("meta"), "time", 5, VOCAB)
    with pytest.raises(ValueError, match="generate expects num_preds to be a positive int, got -2"):
        generate(model, "time", -2, VOCAB)
    assert generate(model, "time", 3, VOCAB).startswith("time")


# --- the download ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verified_text():
    """The verified corpus bytes from the real cache, read before ``course_root`` points the cache elsewhere."""
    return data.time_machine_path().read_bytes()


@pytest.fixture
def trickling_server():
    """A server on localhost that sends the headers of a 1 MB answer, then one byte every 0.2 s; yields its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection = server.accept()[0]
            except OSError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                while not stop.wait(0.2):
                    connection.sendall(b"x")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/timemachine.txt"
    stop.set()
    thread.join()
    server.close()


def test_a_server_that_trickles_bytes_meets_the_overall_deadline(course_root, trickling_server, monkeypatch):
    monkeypatch.setattr(data, "TIME_MACHINE_URL", trickling_server)
    monkeypatch.setattr(data, "DOWNLOAD_DEADLINE", 1)
    start = time.monotonic()
    with pytest.raises(data.CorpusError) as err:
        data.time_machine_path()
    assert time.monotonic() - start < 5  # each read is answered within the 30 s timeout: only the deadline stops it
    message = str(err.value)
    assert trickling_server in message and "within the deadline of 1 s" in message
    assert "utils.data.DOWNLOAD_DEADLINE" in message and "copy a verified timemachine.txt" in message
    assert not list((course_root / "data").iterdir())  # no partial file left behind


def test_a_valid_cache_in_a_read_only_folder_is_read(course_root, verified_text, monkeypatch):
    cache = course_root / "data" / "timemachine.txt"
    cache.parent.mkdir()
    cache.write_bytes(verified_text)
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)  # read-only, even for root
    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("no download needed"))
    assert data.time_machine_path() == cache
    cache.unlink()
    with pytest.raises(PermissionError, match="data is not writable, and the download cache go there"):
        data.time_machine_path()
