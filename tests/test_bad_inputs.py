"""Bad input never reaches deep inside torch: every public model and function of utils answers a wrong dtype,
a wrong size, a wrong rank or a silently wrong argument with an error that names the argument, what was
expected and what came."""
import json
import math
import socket
import threading

import numpy as np
import pytest
import requests
import torch
from torch import nn

from utils import data, forecasting, notebooks, sweep
from utils.antisymmetric import AntisymmetricRNN, GatedAntisymmetricRNN
from utils.assignments import MANIFEST, ManifestError, generate
from utils.blog_cells import ConcatGRUCell, SplitGRUCell
from utils.classifier import GRUClassifier
from utils.fast_gru import STEPS, FastGRU
from utils.gru import GRUScratch
from utils.gru_variants import GRUVariant
from utils.lstm import LSTM, LSTMScratch
from utils.mingru import MinGRU
from utils.mode import QUICK_ENV
from utils.sampling import encode_prefix
from utils.sequence_models import LastStepModel, loss_fn, train_on_task
from utils.tasks import SequenceTask, adding_problem, recall_task
from utils.training import seed_everything

NUM_INPUTS, NUM_HIDDENS = 3, 4

# name -> constructor of (num_inputs, num_hiddens); every public layer of the course
LAYERS = {
    "GRUScratch": lambda i, h: GRUScratch(i, h),
    "GRUScratch(reset_after)": lambda i, h: GRUScratch(i, h, reset_after=True),
    "GRUVariant": lambda i, h: GRUVariant(i, h, variant="mgu"),
    **{f"FastGRU({step})": (lambda step: lambda i, h: FastGRU(i, h, step))(step)
       for step in STEPS if step != "compile"},
    "MinGRU": lambda i, h: MinGRU(i, h),
    "LSTMScratch": lambda i, h: LSTMScratch(i, h),
    "LSTM": lambda i, h: LSTM(i, h),
    "AntisymmetricRNN": lambda i, h: AntisymmetricRNN(i, h),
    "GatedAntisymmetricRNN": lambda i, h: GatedAntisymmetricRNN(i, h),
}
CELLS = {"ConcatGRUCell": ConcatGRUCell, "SplitGRUCell": SplitGRUCell}
STEPPERS = {  # layers with a public one-step method: name -> (constructor, step(model, X, H))
    "GRUScratch": (LAYERS["GRUScratch"], lambda m, X, H: m.step(X, H)),
    "GRUVariant": (LAYERS["GRUVariant"], lambda m, X, H: m.step(X, H)),
    "AntisymmetricRNN": (LAYERS["AntisymmetricRNN"], lambda m, X, H: m.step(X, H)),
    "GatedAntisymmetricRNN": (LAYERS["GatedAntisymmetricRNN"], lambda m, X, H: m.step(X, H)),
    **{name: (cls, lambda m, X, H: m(X, H)) for name, cls in CELLS.items()},
}
BAD_DTYPES = [torch.float64, torch.int64, torch.bool, torch.float16]


def make_inputs(dtype, shape=(5, 2, NUM_INPUTS)):
    return torch.ones(shape).to(dtype)


# --- wrong dtypes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_names_a_wrong_input_dtype(name, dtype):
    model = LAYERS[name](NUM_INPUTS, NUM_HIDDENS)
    with pytest.raises(TypeError, match=rf"inputs of dtype torch.float32 \(its parameters' dtype\), got {dtype}"):
        model(make_inputs(dtype))


@pytest.mark.parametrize("name", [n for n in LAYERS if n != "LSTM"])
def test_every_layer_names_a_wrong_state_dtype(name):
    model = LAYERS[name](NUM_INPUTS, NUM_HIDDENS)
    inputs = make_inputs(torch.float32)
    state = torch.full((2, NUM_HIDDENS), 0.5, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"state H of dtype torch.float32 .*, got torch.float64"):
        model(inputs, (state, state) if name == "LSTMScratch" else state)


@pytest.mark.parametrize("name", LAYERS)
def test_a_float64_layer_refuses_float32_inputs(name):
    model = LAYERS[name](NUM_INPUTS, NUM_HIDDENS).double()
    with pytest.raises(TypeError, match=r"dtype torch.float64 \(its parameters' dtype\), got torch.float32"):
        model(make_inputs(torch.float32))


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
@pytest.mark.parametrize("name", STEPPERS)
def test_every_step_names_a_wrong_dtype(name, dtype):
    make, step = STEPPERS[name]
    model = make(NUM_INPUTS, NUM_HIDDENS)
    with pytest.raises(TypeError, match=rf"X of dtype torch.float32 .*, got {dtype}"):
        step(model, torch.ones(2, NUM_INPUTS).to(dtype), torch.zeros(2, NUM_HIDDENS))


def test_the_classifier_names_a_wrong_dtype():
    model = GRUClassifier(ConcatGRUCell(NUM_INPUTS, NUM_HIDDENS), num_classes=3)
    with pytest.raises(TypeError, match=r"X of dtype torch.float32 .*, got torch.int64"):
        model(torch.ones(2, 5, NUM_INPUTS, dtype=torch.int64))


# --- wrong sizes -----------------------------------------------------------------------------------------

BAD_SIZES = [2.5, -1, 0, "4", True, None]


@pytest.mark.parametrize("size", BAD_SIZES, ids=repr)
@pytest.mark.parametrize("name", list(LAYERS) + list(CELLS))
@pytest.mark.parametrize("which", ["inputs", "hiddens"])
def test_every_constructor_names_a_bad_size(name, which, size):
    make = LAYERS.get(name) or CELLS[name]
    args = (size, NUM_HIDDENS) if which == "inputs" else (NUM_INPUTS, size)
    with pytest.raises(ValueError, match=rf"expects \w+ to be a positive int, got {repr(size).replace('.', '[.]')}"):
        make(*args)


@pytest.mark.parametrize("size", BAD_SIZES, ids=repr)
def test_the_classifier_names_a_bad_number_of_classes(size):
    with pytest.raises(ValueError, match="num_classes to be a positive int"):
        GRUClassifier(ConcatGRUCell(NUM_INPUTS, NUM_HIDDENS), size)


@pytest.mark.parametrize("switch", ["reset_gate", "update_gate", "reset_after"])
@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_switches_must_be_bools(switch, value):
    with pytest.raises(TypeError, match=rf"{switch} to be True or False, got {value!r}"):
        GRUScratch(NUM_INPUTS, NUM_HIDDENS, **{switch: value})


# --- wrong rank to step ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", STEPPERS)
def test_a_whole_sequence_given_to_step_is_refused(name):
    make, step = STEPPERS[name]
    model = make(NUM_INPUTS, NUM_HIDDENS)
    with pytest.raises(ValueError, match=r"one time step \w* ?of shape \(B, 3\), got \(5, 2, 3\)"):
        step(model, torch.randn(5, 2, NUM_INPUTS), torch.zeros(2, NUM_HIDDENS))


@pytest.mark.parametrize("name", STEPPERS)
def test_a_state_of_the_wrong_shape_given_to_step_is_refused(name):
    make, step = STEPPERS[name]
    model = make(NUM_INPUTS, NUM_HIDDENS)
    with pytest.raises(ValueError, match=r"of shape \(2, 4\) \(batch, num_hiddens\), got \(1, 2, 4\)"):
        step(model, torch.randn(2, NUM_INPUTS), torch.zeros(1, 2, NUM_HIDDENS))


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match=r"empty batch \(B = 0\)"):
        GRUScratch(NUM_INPUTS, NUM_HIDDENS)(torch.zeros(5, 0, NUM_INPUTS))


# --- silent wrong answers closed -------------------------------------------------------------------------

def test_last_step_model_refuses_a_batch_first_rnn():
    with pytest.raises(ValueError, match="batch_first=True, which would run the recurrence over the batch axis"):
        LastStepModel(nn.GRU(3, 4, batch_first=True), 4, 2)


def test_a_regression_target_without_its_output_axis_is_refused():
    task = adding_problem(8, 6)
    with pytest.raises(ValueError, match=r"needs targets y of shape \(8, 1\), got \(8,\)"):
        SequenceTask("adding", task.X, task.y[:, 0], "regression", 1)
    with pytest.raises(ValueError, match=r"outputs of shape \(8, 1\) and targets of shape \(8,\) differ"):
        loss_fn(task, torch.zeros(8, 1), task.y[:, 0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "steps to be a positive int, got 0"),
    (dict(steps=10, eval_every=0), "eval_every to be a positive int, got 0"),
    (dict(steps=10, batch_size=2.5), "batch_size to be a positive int, got 2.5"),
    (dict(steps=10, lr=0), "lr to be a positive finite number, got 0"),
    (dict(steps=10, clip=math.nan), "clip to be a positive finite number, got nan"),
])
def test_train_on_task_names_a_bad_setting(kwargs, message):
    train, val = recall_task(40, 5, seed=0).split(30)
    model = LastStepModel(nn.GRU(8, 4), 4, 8)
    with pytest.raises(ValueError, match=message):
        train_on_task(model, train, val, **kwargs)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_names_a_bad_seed(seed):
    with pytest.raises(ValueError, match=rf"int seed in \[0, 2\*\*32\), got {repr(seed).replace('.', '[.]')}"):
        seed_everything(seed)


def test_forecast_origins_must_be_integer_indices():
    y = np.arange(20.0)
    with pytest.raises(TypeError, match=r"integer indices, got values of dtype float64 \(first: 2.7\)"):
        forecasting.targets(y, [2.7], 1)
    with pytest.raises(TypeError, match=r"boolean mask; pass np.flatnonzero\(mask\)"):
        forecasting.targets(y, y > 15, 1)
    assert forecasting.targets(y, [2], 1).tolist() == [[3.0]]


def test_torch_predictor_names_a_model_without_parameters():
    with pytest.raises(TypeError, match="a torch model with parameters .* got Identity, which has none"):
        forecasting.torch_predictor(nn.Identity())


def test_from_scratch_refuses_a_gru_variant():
    with pytest.raises(TypeError, match="got the subclass GRUVariant"):
        FastGRU.from_scratch(GRUVariant(3, 4), "hoisted")


def test_fast_gru_defaults_to_the_eager_step():
    assert FastGRU(3, 4).step == "reset_after"


def test_a_grid_given_as_a_generator_is_read_once():
    study = sweep.study("quick", num_steps=(s for s in [8, 16]))
    assert [c["num_steps"] for c in study.configs()] == [8, 16]


@pytest.mark.parametrize("args, message", [
    ((64, 5, -5), "num_train to be a positive int, got -5"),
    ((4, -3), "num_steps to be a positive int, got -3"),
    ((0, 5), "batch_size to be a positive int, got 0"),
    ((4, 5, 10_000, 10**6), r"num_train \+ num_val = 10000 \+ 1000000"),
])
def test_time_machine_checks_its_arguments_before_building(args, message):
    with pytest.raises(ValueError, match=message):
        data.TimeMachine(*args)


def test_a_capitalised_prefix_is_lower_cased_and_unknown_characters_are_named():
    vocab = data.TimeMachine(4, 5, num_train=16, num_val=8).vocab
    assert encode_prefix("Time Traveller", vocab) == encode_prefix("time traveller", vocab)
    with pytest.raises(ValueError, match=r"characters the vocabulary lacks: \['1', '\?'\]"):
        encode_prefix("year 1?", vocab)


# --- files and network -----------------------------------------------------------------------------------

@pytest.fixture
def silent_server():
    """A server on localhost that accepts connections and never answers; yields its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/timemachine.txt"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_server_that_never_answers_times_out_with_a_clear_error(course_root, silent_server, monkeypatch):
    monkeypatch.setattr(data, "TIME_MACHINE_URL", silent_server)
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", (1, 1))
    with pytest.raises(data.CorpusError, match="is missing and the download .* failed .*Timeout"):
        data.time_machine_path()
    assert not list((course_root / "data").iterdir())  # no empty or partial file left behind


def test_a_download_cut_off_midway_leaves_the_old_file_and_quotes_the_right_sha1(course_root, monkeypatch):
    cache = course_root / "data" / "timemachine.txt"
    cache.parent.mkdir()
    cache.write_bytes(b"an old, corrupted copy")
    old_sha1 = data.sha1_of(cache)

    class CutOff:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self):
            pass

        def iter_content(self, size):
            yield b"the first block"
            raise requests.exceptions.ChunkedEncodingError("connection broken")
    monkeypatch.setattr(requests, "get", lambda *a, **k: CutOff())
    with pytest.raises(data.CorpusError) as err:
        data.time_machine_path()
    assert f"corrupted (sha1 {old_sha1})" in str(err.value) and "ChunkedEncodingError" in str(err.value)
    assert cache.read_bytes() == b"an old, corrupted copy" and sorted(p.name for p in cache.parent.iterdir()) == [
        "timemachine.txt"]

    class Wrong(CutOff):
        def iter_content(self, size):
            yield b"<html>maintenance</html>"
    monkeypatch.setattr(requests, "get", lambda *a, **k: Wrong())
    with pytest.raises(data.CorpusError) as err:
        data.time_machine_path()
    new_sha1 = __import__("hashlib").sha1(b"<html>maintenance</html>").hexdigest()
    assert f"its sha1 is {new_sha1}" in str(err.value) and f"its sha1 is {old_sha1}" not in str(err.value)
    assert cache.read_bytes() == b"an old, corrupted copy"


def test_a_directory_in_place_of_the_corpus_is_named(course_root):
    (course_root / "data" / "timemachine.txt").mkdir(parents=True)
    with pytest.raises(data.CorpusError, match=r"is a directory, but the corpus must be a file there. Fix: remove"):
        data.time_machine_path()


def test_an_unreadable_corpus_is_named_whoever_runs(course_root, monkeypatch):
    cache = course_root / "data" / "timemachine.txt"
    cache.parent.mkdir()
    cache.write_text("x")

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(data, "sha1_of", unreadable)
    with pytest.raises(data.CorpusError, match=r"cannot be read \(PermissionError: .*Permission denied.*chmod u\+rw"):
        data.time_machine_path()


def test_a_file_in_place_of_the_data_folder_is_named(course_root):
    (course_root / "data").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="data is a file, but the download cache must be a folder"):
        data.time_machine_path()


def test_a_read_only_figures_folder_is_an_error_before_any_work(course_root, monkeypatch):
    from utils import paths
    monkeypatch.setenv(QUICK_ENV, "0")
    monkeypatch.setenv(paths.STORE_ENV, "1")
    (course_root / "figures").write_text("a file where the folder should be")
    with pytest.raises(NotADirectoryError, match="figures is a file, but the stored figures must be a folder"):
        paths.figures_dir()
    (course_root / "figures").unlink()
    (course_root / "figures").mkdir()
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match=r"figures is not writable, and the stored figures go there"):
        paths.figures_dir()


def test_execute_leaves_the_callers_environment_as_it_was(tmp_path, monkeypatch):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ.get('GRU_COURSE_QUICK'), "
                                          "os.environ.get('GRU_COURSE_STORE'))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_env.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv(QUICK_ENV, "1")
    monkeypatch.setenv("GRU_COURSE_ROOT", str(tmp_path))
    notebooks.execute(path)
    assert __import__("os").environ[QUICK_ENV] == "1" and "GRU_COURSE_STORE" not in __import__("os").environ
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == "None 1\n"  # the kernel: full, stored


def _chapter_with_exercise(folder):
    import nbformat
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "f",
                                 "schema_version": 3}
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · Test"), cell]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "99_test.ipynb")


def test_a_corrupted_manifest_is_named_and_force_recovers(tmp_path):
    _chapter_with_exercise(tmp_path / "nb")
    student = tmp_path / "nb" / "student"
    generate(tmp_path / "nb", student)
    (student / MANIFEST).write_text("{not json")
    with pytest.raises(ManifestError, match=rf"{MANIFEST} is corrupted \(JSONDecodeError.*--force"):
        generate(tmp_path / "nb", student)
    assert generate(tmp_path / "nb", student, force=True) == {"99_test_student.ipynb": "unchanged"}
    assert json.loads((student / MANIFEST).read_text())


def test_a_student_copy_cut_inside_a_character_counts_as_edited_and_force_recovers(tmp_path):
    from utils.assignments import StudentCopyEdited
    _chapter_with_exercise(tmp_path / "nb")
    student = tmp_path / "nb" / "student"
    generate(tmp_path / "nb", student)
    copy = student / "99_test_student.ipynb"
    copy.write_bytes(copy.read_bytes()[:-3] + "é".encode()[:1])  # cut inside a two-byte character
    with pytest.raises(StudentCopyEdited, match="99_test_student.ipynb: edited since it was generated"):
        generate(tmp_path / "nb", student)
    assert generate(tmp_path / "nb", student, force=True) == {"99_test_student.ipynb": "wrote"}


def test_sweep_help_works_whatever_the_mode_switch_says(monkeypatch, capsys):
    monkeypatch.setenv(QUICK_ENV, "garbage")
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--help"])
    assert exit_.value.code == 0 and "usage" in capsys.readouterr().out
